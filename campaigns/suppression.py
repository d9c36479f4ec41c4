"""The suppression list: addresses that must never get marketing mail again (unsubscribed,
hard-bounced, complained, erased), kept as hashes of the normalised address.

``email_hash`` is the one hashing helper: erasure (customers.privacy) records the same hash, so
an erased customer's address is refused even when it comes back on a new record.
"""

from __future__ import annotations

from collections.abc import Iterable

from campaigns.models import Message, Suppression, SuppressionReason
from customers.models import ErasureLog
from customers.privacy import email_hash

__all__ = ["blocked_hashes", "email_hash", "is_suppressed", "suppress"]

# Enough hashes per IN list to keep the query count low, few enough to keep each plan an
# index lookup.
_CHUNK = 5_000


def blocked_hashes(hashes: Iterable[str]) -> set[str]:
    """Those of ``hashes`` that must not be written to: suppressed or of an erased customer."""
    hashes = list(dict.fromkeys(hashes))
    blocked: set[str] = set()
    if not hashes:
        return blocked
    listed = Suppression.objects.count() + ErasureLog.objects.count()
    if listed <= 4 * len(hashes):
        # A big audience against a smaller list: reading the whole list is cheaper than
        # shipping the audience's hashes to the database.
        wanted = set(hashes)
        for model in (Suppression, ErasureLog):
            blocked.update(
                h for h in model.objects.values_list("email_hash", flat=True) if h in wanted
            )
        return blocked
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        blocked.update(
            Suppression.objects.filter(email_hash__in=chunk).values_list("email_hash", flat=True)
        )
        blocked.update(
            ErasureLog.objects.filter(email_hash__in=chunk).values_list("email_hash", flat=True)
        )
    return blocked


def is_suppressed(email: str) -> bool:
    return bool(blocked_hashes([email_hash(email)]))


def suppress(
    *,
    email: str,
    reason: SuppressionReason | str,
    source_message: Message | None = None,
    note: str = "",
) -> Suppression:
    """Add ``email`` to the suppression list; an address already on it keeps its first reason."""
    suppression, _created = Suppression.objects.get_or_create(
        email_hash=email_hash(email),
        defaults={"reason": reason, "source_message": source_message, "note": note},
    )
    return suppression
