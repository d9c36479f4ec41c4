"""Contacts with a customer that staff record by hand: calls, visits, meetings, e-mails, notes."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from customers.models import Customer, Interaction


@transaction.atomic
def log_interaction(
    *,
    customer: Customer,
    kind: str,
    summary: str,
    occurred_at: datetime | None = None,
    by=None,
) -> Interaction:
    """Record that ``by`` had an interaction of ``kind`` with ``customer`` (now by default)."""
    return Interaction.objects.create(
        customer=customer,
        kind=kind,
        summary=summary,
        occurred_at=occurred_at or timezone.now(),
        user=by if by is not None and by.is_authenticated else None,
    )
