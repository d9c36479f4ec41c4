"""Personal data requests: a customer's copy of everything held on them, and erasure.

Erasure anonymises rather than deletes: purchases stay (amounts, dates, items) so revenue,
RFM and cohort figures do not change when someone asks to be forgotten, but nothing that
identifies the person survives, not even in the change history.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal
from email.utils import getaddresses
from typing import Any

from django.db import transaction
from django.db.models import CharField, Prefetch, Q, Value
from django.db.models.functions import Cast, Concat
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext

from crm.models import OutboxEmail
from customers.consent import record_consent
from customers.models import (
    ConsentSource,
    Customer,
    ErasureLog,
    MergeLog,
    PersonalDataExport,
    Purchase,
    PurchaseItem,
    SupportTicket,
    TicketReply,
)
from customers.normalize import normalize_email

# Sent inside erase_customer's transaction, before the record is blanked, with ``customer``
# and ``email`` (the address being erased): other apps erase their own copies of the person
# (campaigns: the addresses frozen on messages) without this module knowing them.
customer_erased = Signal()

EXPORT_FORMAT = "crm-personal-data/1"

# The profile fields a customer's copy shows, in this order (search_text is derived).
PROFILE_FIELDS = [
    "id",
    "external_id",
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
    "sns_accounts",
    "notes",
    "email_opt_in",
    "email_opt_in_at",
    "erased_at",
    "created_at",
    "updated_at",
]

# What erasure writes over each personal field. Gender, prefecture and source channel stay:
# on their own they identify nobody and the area and gender analyses still count the row.
# The history keeps every profile field but the derived ones (see Customer.history).
HISTORY_FIELDS = [name for name in PROFILE_FIELDS if name not in ("id", "updated_at")]

ERASED_VALUES: dict[str, Any] = {
    "family_name": "",
    "given_name": "",
    "family_name_kana": "",
    "given_name_kana": "",
    "email": "",
    "phone": "",
    "birthday": None,
    "postal_code": "",
    "address": "",
    "sns_accounts": {},
    "notes": "",
}


def _plain(value: Any) -> Any:
    """A JSON-ready value: dates in ISO 8601, amounts as exact decimal strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _staff(user):
    """The user to record as the actor (None for anonymous or system calls)."""
    return user if user is not None and user.is_authenticated else None


def _user(user) -> str | None:
    return user.get_username() if user is not None else None


def export_customer_data(customer: Customer) -> dict:
    """Everything held on ``customer``, as JSON-ready data (a fixed number of queries)."""
    customer = (
        Customer.objects.select_related("owner")
        .prefetch_related(
            "tags",
            "consent_records__recorded_by",
            Prefetch(
                "purchases",
                queryset=Purchase.objects.prefetch_related(
                    Prefetch("items", queryset=PurchaseItem.objects.select_related("product"))
                ),
            ),
            Prefetch(
                "tickets",
                queryset=SupportTicket.objects.select_related("assignee").prefetch_related(
                    Prefetch("replies", queryset=TicketReply.objects.select_related("author"))
                ),
            ),
            "interactions__user",
        )
        .get(pk=customer.pk)
    )
    profile = {name: _plain(getattr(customer, name)) for name in PROFILE_FIELDS}
    profile["owner"] = _user(customer.owner)
    profile["tags"] = [tag.name for tag in customer.tags.all()]
    history = Customer.history.filter(id=customer.pk).select_related("history_user")
    return {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "customer": profile,
        "consent_records": [
            {
                "opted_in": record.opted_in,
                "recorded_at": _plain(record.recorded_at),
                "source": record.source,
                "form": record.form,
                "recorded_by": _user(record.recorded_by),
            }
            for record in customer.consent_records.all()
        ],
        "purchases": [
            {
                "order_id": purchase.order_id,
                "purchased_at": _plain(purchase.purchased_at),
                "channel": purchase.channel,
                "status": purchase.status,
                "total": _plain(purchase.total),
                "items": [
                    {
                        "sku": item.product.sku,
                        "product": item.product.name,
                        "quantity": item.quantity,
                        "unit_price": _plain(item.unit_price),
                    }
                    for item in purchase.items.all()
                ],
            }
            for purchase in customer.purchases.all()
        ],
        "tickets": [
            {
                "id": ticket.pk,
                "opened_at": _plain(ticket.opened_at),
                "channel": ticket.channel,
                "subject": ticket.subject,
                "body": ticket.body,
                "status": ticket.status,
                "priority": ticket.priority,
                "assignee": _user(ticket.assignee),
                "resolved_at": _plain(ticket.resolved_at),
                "replies": [
                    {
                        "created_at": _plain(reply.created_at),
                        "author": _user(reply.author),
                        "internal": reply.internal,
                        "body": reply.body,
                    }
                    for reply in ticket.replies.all()
                ],
            }
            for ticket in customer.tickets.all()
        ],
        "interactions": [
            {
                "kind": interaction.kind,
                "occurred_at": _plain(interaction.occurred_at),
                "user": _user(interaction.user),
                "summary": interaction.summary,
            }
            for interaction in customer.interactions.all()
        ],
        "history": [
            {
                "changed_at": _plain(record.history_date),
                "change": record.history_type,
                "changed_by": _user(record.history_user),
                "reason": record.history_change_reason,
                "values": {name: _plain(getattr(record, name)) for name in HISTORY_FIELDS},
            }
            for record in history
        ],
    }


@transaction.atomic
def disclose_customer_data(*, customer: Customer, by) -> dict:
    """``export_customer_data`` for a person's request, recording who received it and when."""
    PersonalDataExport.objects.create(customer=customer, exported_by=_staff(by))
    return export_customer_data(customer)


def email_hash(email: str) -> str:
    """The SHA-256 (hex) of the normalised address, as erasure records it."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


def is_erased_email(email: str) -> bool:
    """True if a customer with this address was erased: campaigns must not write to it."""
    if not normalize_email(email):
        return False
    return ErasureLog.objects.filter(email_hash=email_hash(email)).exists()


@transaction.atomic
def _erase_outbox_mail(email: str) -> int:
    """Delete the outbox's copies of e-mails sent to ``email`` (the embedded mail backend keeps
    every message it captured, names and all); other recipients' mail stays."""
    address = normalize_email(email)
    if not address:
        return 0
    # The substring filter narrows the candidates in SQL; the exact comparison below keeps
    # "xhanako@example.jp" safe when "hanako@example.jp" is erased.
    candidates = OutboxEmail.objects.filter(
        Q(to__icontains=address) | Q(cc__icontains=address) | Q(bcc__icontains=address)
    ).only("id", "to", "cc", "bcc")
    ids = [
        mail.id
        for mail in candidates
        if any(
            normalize_email(recipient) == address
            for _name, recipient in getaddresses([mail.to, mail.cc, mail.bcc])
        )
    ]
    OutboxEmail.objects.filter(id__in=ids).delete()
    return len(ids)


def erase_customer(*, customer: Customer, by) -> ErasureLog:
    """Anonymise ``customer`` for good; erasing an erased customer changes nothing."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.is_erased:
        return ErasureLog.objects.get_or_create(
            customer=customer, defaults={"erased_by": _staff(by), "erased_at": customer.erased_at}
        )[0]
    log = ErasureLog.objects.create(
        customer=customer,
        erased_by=_staff(by),
        email_hash=email_hash(customer.email) if normalize_email(customer.email) else "",
    )
    record_consent(
        customer=customer,
        opted_in=False,
        source=ConsentSource.STAFF,
        # Stored like any form name, in the language of the staff member who erased.
        form=gettext("Personal data erasure"),
        by=by,
        at=log.erased_at,
    )
    _erase_outbox_mail(customer.email)
    customer_erased.send(sender=Customer, customer=customer, email=customer.email)
    anonymous = {**ERASED_VALUES, "external_id": f"erased-{customer.pk}"}
    for name, value in anonymous.items():
        setattr(customer, name, value)
    customer.erased_at = log.erased_at
    customer._history_user = _staff(by)  # the history's actor outside a web request too
    customer.save(update_fields=[*anonymous, "erased_at"])
    customer.tags.clear()

    # Ticket threads and interaction notes are free text about the person: keep the rows
    # (support and activity counts) without their words.
    tickets = SupportTicket.objects.filter(customer=customer)
    tickets.update(subject="", body="")
    TicketReply.objects.filter(ticket__customer=customer).update(body="")
    customer.interactions.update(summary="")

    # The history must not keep what was erased: every past version is blanked the same way
    # (who changed the record and when stays, for the audit trail).
    Customer.history.filter(id=customer.pk).update(**anonymous, history_change_reason=None)
    SupportTicket.history.filter(customer_id=customer.pk).update(
        subject="", body="", history_change_reason=None
    )
    # The shop IDs of duplicates merged into this customer identify the same person.
    MergeLog.objects.filter(kept=customer).update(
        merged_external_id=Concat(Value("erased-"), Cast("merged_customer_id", CharField()))
    )
    return log
