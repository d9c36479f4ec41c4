"""Automations: campaigns whose Trigger adds recipients day after day (birthday coupon,
win-back of lapsing customers, thank-you after a purchase).

An automation is a Campaign of kind "automation": its variants, goal, holdout and optional
segment work as a campaign's; its Trigger says whom and when. While it is active (status
"sending") beat evaluates its trigger once a day from the trigger's sending hour; each match
becomes a Message of the automation with the trigger's period key, so a customer gets at most
one message per trigger per period however often it runs, and the ordinary sender
(campaigns.sending) sends it. Paused, nothing is evaluated or sent; it never finishes.

Machine events never fire automations: our three triggers depend on purchases and birthdays,
not on opens or clicks. Event-based triggers would hook on the ``human_events_recorded``
signal of campaigns.tracking, which carries human events only.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignKind, CampaignStatus, Message, MessageStatus
from campaigns.rendering import store_links
from campaigns.sending import check_sendable, kick_sending

_ACTIVATABLE = [CampaignStatus.DRAFT, CampaignStatus.PAUSED]


@transaction.atomic
def activate_automation(*, campaign: Campaign, by=None) -> Campaign:
    """Start (or resume) an automation: its trigger is evaluated from now on. Its content is
    checked as a campaign's is before sending; no segment is needed. Raises ValidationError
    when it cannot be activated."""
    if campaign.kind != CampaignKind.AUTOMATION:
        raise ValidationError(_("Only an automation can be activated."))
    if not hasattr(campaign, "trigger"):
        raise ValidationError(_("Set the automation's trigger before activating it."))
    check_sendable(campaign)
    # Links first: a message rendered once it is active must find them all.
    store_links(campaign=campaign)
    now = timezone.now()
    activated = Campaign.objects.filter(
        pk=campaign.pk, kind=CampaignKind.AUTOMATION, status__in=_ACTIVATABLE
    ).update(
        status=CampaignStatus.SENDING,
        # Since when the automation runs: its first activation.
        started_at=Coalesce(F("started_at"), Value(now)),
        updated_at=now,
    )
    campaign.refresh_from_db()
    if not activated:
        raise ValidationError(_("Only a draft or paused automation can be activated."))
    # Messages queued before a pause go out now.
    if Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED).exists():
        kick_sending(campaign_id=campaign.pk)
    return campaign


@transaction.atomic
def pause_automation(*, campaign: Campaign, by=None) -> bool:
    """Stop an active automation: its trigger is no longer evaluated and its queued messages
    wait (the group in flight finishes). Returns False if it was not active."""
    paused = Campaign.objects.filter(
        pk=campaign.pk, kind=CampaignKind.AUTOMATION, status=CampaignStatus.SENDING
    ).update(status=CampaignStatus.PAUSED, updated_at=timezone.now())
    campaign.refresh_from_db()
    return bool(paused)
