"""Creating and editing customer profiles by staff.

The profile fields arrive validated and normalised (see customers.forms); what this module
adds is the part that spans tables: tags created as needed and the e-mail consent, which
changes only through customers.consent.record_consent so that every change leaves its legal
record (who, when, how, which form).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from customers.consent import record_consent
from customers.models import ConsentSource, Customer, Tag


def tags_named(names: Iterable[str]) -> list[Tag]:
    """The tags with these names, creating the missing ones (two queries at most)."""
    wanted = list(dict.fromkeys(name for name in names if name))
    existing = {tag.name: tag for tag in Tag.objects.filter(name__in=wanted)}
    missing = [Tag(name=name) for name in wanted if name not in existing]
    if missing:
        # Another user may create the same tag at the same moment: ignore the clash and read
        # the winner's row back.
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        existing.update({tag.name: tag for tag in Tag.objects.filter(name__in=wanted)})
    return [existing[name] for name in wanted]


def _apply_consent(*, customer: Customer, email_opt_in: bool, consent_note: str, by) -> None:
    if customer.email_opt_in_at is None and not email_opt_in:
        return  # never asked and still not given: nothing to record
    record_consent(
        customer=customer,
        opted_in=email_opt_in,
        source=ConsentSource.STAFF,
        form=consent_note,
        by=by,
    )


@transaction.atomic
def create_customer(
    *,
    fields: Mapping[str, Any],
    tags: Iterable[str] = (),
    email_opt_in: bool = False,
    consent_note: str = "",
    by=None,
) -> Customer:
    """A new customer with ``fields`` (model field names), ``tags`` (names) and, if given,
    e-mail consent recorded as changed by staff (``consent_note``: how and on which form)."""
    customer = Customer(**fields)
    customer._history_user = by
    customer.save()
    customer.tags.set(tags_named(tags))
    _apply_consent(customer=customer, email_opt_in=email_opt_in, consent_note=consent_note, by=by)
    return customer


@transaction.atomic
def update_customer(
    *,
    customer: Customer,
    fields: Mapping[str, Any],
    tags: Iterable[str],
    email_opt_in: bool,
    consent_note: str = "",
    by=None,
) -> Customer:
    """Save the new ``fields`` of ``customer``, replace its tags, record a consent change."""
    for name, value in fields.items():
        setattr(customer, name, value)
    customer._history_user = by
    customer.save()
    customer.tags.set(tags_named(tags))
    _apply_consent(customer=customer, email_opt_in=email_opt_in, consent_note=consent_note, by=by)
    return customer
