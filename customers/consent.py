"""E-mail consent: every change is recorded (who, when, how, which form) and the customer's
current state follows the latest record."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from customers.models import ConsentRecord, ConsentSource, Customer


def is_consent_change(*, opted_in: bool, current: bool, current_at) -> bool:
    """Whether a decision is worth recording: a first decision always is, a repeat of the
    current state is not. Shared with the bulk import, which writes records in bulk."""
    return not (current == opted_in and current_at is not None)


@transaction.atomic
def record_consent(
    *,
    customer: Customer,
    opted_in: bool,
    source: ConsentSource | str,
    form: str = "",
    by=None,
    at=None,
) -> ConsentRecord | None:
    """Record a consent decision; nothing is written when it does not change the state."""
    if not is_consent_change(
        opted_in=opted_in, current=customer.email_opt_in, current_at=customer.email_opt_in_at
    ):
        return None
    at = at or timezone.now()
    record = ConsentRecord.objects.create(
        customer=customer,
        opted_in=opted_in,
        recorded_at=at,
        source=source,
        form=form,
        recorded_by=by if by is not None and by.is_authenticated else None,
    )
    customer.email_opt_in = opted_in
    customer.email_opt_in_at = at
    customer.save(update_fields=["email_opt_in", "email_opt_in_at"])
    return record
