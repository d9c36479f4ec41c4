"""The preview of a campaign's e-mail for one customer, and the test send to the marketer.

The customers offered are those who could receive it: members of the campaign's segment (any
customer for an automation without one) with e-mail consent, not erased, with an address.
A test send goes through Django's mail backend like a campaign message, to the user's own
address, with "[TEST]" before the subject; it writes no Message row and counts nowhere.
"""

from __future__ import annotations

from django.core.mail import get_connection
from django.db.models import Exists, OuterRef, QuerySet

from campaigns.mime import CampaignEmail, send_one
from campaigns.models import Campaign, Variant
from campaigns.rendering import preview
from customers.models import ConsentRecord, Customer

CHOICES = 20


def preview_candidates(*, campaign: Campaign, search: str = "") -> QuerySet[Customer]:
    """Customers the campaign may be previewed for, oldest first; ``search``: part of a
    name, kana or e-mail address, as the customer search takes it."""
    recorded = ConsentRecord.objects.filter(customer=OuterRef("pk"), opted_in=True)
    customers = (
        Customer.objects.filter(email_opt_in=True, erased_at__isnull=True)
        .exclude(email="")
        .filter(Exists(recorded))
    )
    if campaign.segment_id:
        customers = customers.filter(segment_memberships__segment_id=campaign.segment_id)
    if search:
        customers = customers.search(search)
    return customers.order_by("id")


def preview_for(*, campaign: Campaign, customer_id: int | None = None) -> Customer | None:
    """The customer ``customer_id`` if the campaign may be previewed for them, else (no id)
    the first one it may be."""
    candidates = preview_candidates(campaign=campaign)
    if customer_id is not None:
        return candidates.filter(pk=customer_id).first()
    return candidates.first()


def send_test_email(*, variant: Variant, customer: Customer, to: str) -> CampaignEmail:
    """Send ``variant`` as ``customer`` would get it to ``to`` (the marketer), subject
    prefixed with "[TEST]"; returns the e-mail sent. Errors of the mail server propagate."""
    email = preview(variant=variant, customer=customer)
    email.subject = f"[TEST] {email.subject}"
    email.to = [to]
    with get_connection() as connection:
        send_one(connection, email)
    return email
