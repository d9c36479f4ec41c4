"""Unsubscribing from a campaign e-mail: the page's button and RFC 8058 one-click alike.

The link carries the message's token (campaigns.tokens), which never expires, so links keep
working for as long as the secret key (or a fallback of it) does: well beyond the 60 days
RFC 8058 senders are expected to honour.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from campaigns.models import Message, MessageStatus, Suppression, SuppressionReason
from campaigns.sending import OPTED_OUT_NOTE
from campaigns.suppression import email_hash, suppress
from campaigns.tokens import parse_message_token
from customers.consent import record_consent
from customers.models import ConsentSource


def message_for_token(token: str) -> Message | None:
    """The message a genuine token names, with its campaign and customer, or None."""
    message_id = parse_message_token(token)
    if message_id is None:
        return None
    return Message.objects.select_related("campaign", "customer").filter(pk=message_id).first()


def is_unsubscribed(message: Message) -> bool:
    return (
        not message.customer.email_opt_in
        and Suppression.objects.filter(email_hash=email_hash(message.email)).exists()
    )


@transaction.atomic
def unsubscribe(*, message: Message) -> int:
    """Stop marketing mail to the message's recipient, at once and for good.

    Suppresses the address the message went to, withdraws the customer's e-mail consent
    (recorded with the campaign as the form), and skips every message of theirs still queued
    in any campaign (the sender re-checks consent and suppression when it claims a batch, so a
    message already claimed is stopped there). Idempotent: a second call changes nothing.
    Returns the number of queued messages skipped.
    """
    customer = type(message.customer).objects.select_for_update().get(pk=message.customer_id)
    # Staff read both; the recipient's page language must not decide what is stored.
    source = f"campaign {message.campaign_id}: {message.campaign.name}"[:200]
    suppress(
        email=message.email,
        reason=SuppressionReason.UNSUBSCRIBED,
        source_message=message,
        note=f"unsubscribe link, {source}",
    )
    record_consent(
        customer=customer,
        opted_in=False,
        source=ConsentSource.UNSUBSCRIBE,
        form=source,
        at=timezone.now(),
    )
    return Message.objects.filter(customer_id=customer.pk, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SKIPPED, error=OPTED_OUT_NOTE
    )
