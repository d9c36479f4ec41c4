"""E-mail consent: every change is recorded (who, when, how, which form) and the customer's
current state follows the latest record."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from customers.models import ConsentRecord, ConsentSource, Customer


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
    if customer.email_opt_in == opted_in and customer.email_opt_in_at is not None:
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
