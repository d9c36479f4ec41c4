"""What erasing a customer means for campaigns: the address frozen on each of their messages
is blanked, and a message not sent yet never will be (customers.privacy.customer_erased)."""

from __future__ import annotations

from django.db.models import Q

from campaigns.models import Message, MessageStatus

ERASED_NOTE = "Customer erased before sending."  # stored, like the sender's notes


def erase_campaign_copies(sender, *, customer, email: str, **kwargs) -> None:
    messages = Message.objects.filter(customer=customer)
    messages.filter(status=MessageStatus.QUEUED).update(
        status=MessageStatus.SKIPPED, error=ERASED_NOTE
    )
    messages.filter(~Q(email="")).update(email="")
