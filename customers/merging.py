"""Merging probable duplicates into one customer record.

Everything attached to the duplicates (purchases, tickets, interactions, consent records,
tags, change history) moves to the record that is kept; its empty profile fields are filled
from the duplicates; the duplicates are then deleted without a trace other than the MergeLog.
All of it happens in one transaction: a failure leaves both records as they were.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _

from customers.freshness import purchases_changed
from customers.models import (
    ConsentRecord,
    Customer,
    Interaction,
    MergeLog,
    PersonalDataExport,
    Purchase,
    SupportTicket,
)

# A group of probable duplicates is a handful of records; more is a mistake in the choice.
MAX_MERGED = 50

# Profile fields a duplicate can fill when the kept record has no value, in form order.
FILLABLE_FIELDS = [
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "email",
    "phone",
    "birthday",
    "gender",
    "prefecture",
    "postal_code",
    "address",
    "channel",
    "owner",
]


def check_mergeable(*, keep: Customer, duplicates: Sequence[Customer]) -> None:
    """Raise ValidationError (with a message for the user) if the merge cannot be done."""
    if not duplicates:
        raise ValidationError(_("Choose at least one record to merge into the kept one."))
    ids = [customer.pk for customer in duplicates]
    if keep.pk in ids:
        raise ValidationError(_("The kept record cannot also be merged into itself."))
    if len(set(ids)) != len(ids):
        raise ValidationError(_("A record is listed twice."))
    if any(customer.is_erased for customer in [keep, *duplicates]):
        raise ValidationError(_("Erased customers cannot be merged."))
    if len(duplicates) > MAX_MERGED:
        raise ValidationError(
            _("At most %(max)d records can be merged at once.") % {"max": MAX_MERGED}
        )


def _is_empty(value) -> bool:
    return value in ("", None)


def _absorb_profile(keep: Customer, other: Customer) -> list[str]:
    """Fill ``keep``'s gaps from ``other``; return the names of the fields filled."""
    filled = []
    for name in FILLABLE_FIELDS:
        attname = keep._meta.get_field(name).attname
        if _is_empty(getattr(keep, attname)) and not _is_empty(getattr(other, attname)):
            setattr(keep, attname, getattr(other, attname))
            filled.append(name)
    if other.sns_accounts and any(key not in keep.sns_accounts for key in other.sns_accounts):
        keep.sns_accounts = {**other.sns_accounts, **keep.sns_accounts}
        filled.append("sns_accounts")
    # Notes are staff's free text: both records' notes are kept rather than one dropped.
    if other.notes and other.notes not in keep.notes:
        keep.notes = f"{keep.notes}\n\n{other.notes}" if keep.notes else other.notes
        filled.append("notes")
    # Consent belongs to the person: the most recent decision on either record stands. Its
    # ConsentRecord moves with the others, so the state still follows the latest record.
    if other.email_opt_in_at is not None and (
        keep.email_opt_in_at is None or other.email_opt_in_at > keep.email_opt_in_at
    ):
        keep.email_opt_in = other.email_opt_in
        keep.email_opt_in_at = other.email_opt_in_at
        filled.append("email_opt_in")
    return filled


# Rows that belong to a customer and move with a merge: kind -> model (FK named "customer").
MOVED_MODELS = {
    "purchases": Purchase,
    "tickets": SupportTicket,
    "interactions": Interaction,
    "consent_records": ConsentRecord,
    "tags": Customer.tags.through,
}
# simple_history's change reason is a CharField(max_length=100).
_REASON_MAX_LENGTH = 100


@transaction.atomic
def merge_customers(*, keep: Customer, duplicates: Sequence[Customer], by) -> list[MergeLog]:
    """Merge every customer in ``duplicates`` into ``keep``; one MergeLog per duplicate."""
    ids = [keep.pk, *(customer.pk for customer in duplicates)]
    # Locked in id order, so two merges touching the same records cannot deadlock.
    locked = Customer.objects.select_for_update().filter(pk__in=ids).order_by("pk").in_bulk()
    if len(locked) != len(set(ids)):
        raise ValidationError(_("One of the records no longer exists."))
    keep = locked[keep.pk]
    duplicates = [locked[customer.pk] for customer in duplicates]
    check_mergeable(keep=keep, duplicates=duplicates)

    merged_ids = [other.pk for other in duplicates]
    filled = {other.pk: _absorb_profile(keep, other) for other in duplicates}
    moved = _move_related(keep=keep, merged_ids=merged_ids)
    Customer.objects.filter(pk__in=merged_ids).delete()
    # Deleting writes a "deleted" history entry under the old id; the MergeLog says it better.
    Customer.history.filter(id__in=merged_ids).delete()

    actor = by if by is not None and by.is_authenticated else None
    keep._history_user = actor  # the history's actor outside a web request too
    reason = _("Merged %(ids)s") % {"ids": ", ".join(o.external_id for o in duplicates)}
    keep._change_reason = reason[:_REASON_MAX_LENGTH]
    keep.save()
    return MergeLog.objects.bulk_create(
        MergeLog(
            kept=keep,
            merged_customer_id=other.pk,
            merged_external_id=other.external_id,
            merged_by=actor,
            moved=moved[other.pk],
            filled_fields=filled[other.pk],
        )
        for other in duplicates
    )


def _count_per_customer(merged_ids: list[int]) -> dict[int, dict[str, int]]:
    """Rows of each kind per merged customer (one GROUP BY per kind)."""
    counts: dict[int, dict[str, int]] = {pk: dict.fromkeys(MOVED_MODELS, 0) for pk in merged_ids}
    for kind, model in MOVED_MODELS.items():
        rows = model.objects.filter(customer__in=merged_ids).values_list("customer")
        for pk, n in rows.annotate(n=Count("pk")).order_by():
            counts[pk][kind] = n
    return counts


def _move_related(*, keep: Customer, merged_ids: list[int]) -> dict[int, dict[str, int]]:
    """Re-point every row of the merged customers at ``keep``; how many moved, per customer
    and kind."""
    moved = _count_per_customer(merged_ids)
    history = Customer.history.filter(id__in=merged_ids)
    for pk, n in history.values_list("id").annotate(n=Count("pk")).order_by():
        moved[pk]["history"] = n
    for pk in merged_ids:
        moved[pk].setdefault("history", 0)

    # The moved purchases count for another customer now: the analytics recompute their days.
    purchases_changed(Purchase.objects.filter(customer__in=merged_ids))
    # Tags the kept customer already has would be a duplicate row: only the others move.
    Customer.tags.through.objects.filter(customer__in=merged_ids).exclude(
        tag__in=keep.tags.values("pk")
    ).update(customer=keep)
    for kind, model in MOVED_MODELS.items():
        if kind != "tags":
            model.objects.filter(customer__in=merged_ids).update(customer=keep)
    SupportTicket.history.filter(customer_id__in=merged_ids).update(customer_id=keep.pk)
    history.update(id=keep.pk)
    PersonalDataExport.objects.filter(customer__in=merged_ids).update(customer=keep)
    MergeLog.objects.filter(kept__in=merged_ids).update(kept=keep)
    return moved


@dataclass(frozen=True)
class MergePreview:
    moved: dict[str, int]
    filled_fields: list[str]

    @property
    def filled_labels(self) -> list[str]:
        return [str(_field_label(name)) for name in self.filled_fields]


def _field_label(name: str):
    return Customer._meta.get_field(name).verbose_name


def preview_merge(*, keep: Customer, duplicates: Sequence[Customer]) -> MergePreview:
    """What ``merge_customers`` would move and fill, without changing anything."""
    per_customer = _count_per_customer([customer.pk for customer in duplicates])
    moved = {kind: sum(counts[kind] for counts in per_customer.values()) for kind in MOVED_MODELS}
    draft = copy.copy(keep)
    draft.sns_accounts = dict(keep.sns_accounts)
    filled: list[str] = []
    for other in duplicates:
        filled += [name for name in _absorb_profile(draft, other) if name not in filled]
    return MergePreview(moved=moved, filled_fields=filled)
