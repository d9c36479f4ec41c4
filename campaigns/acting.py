"""Act (PDCA): what the review page lets a marketer do with a campaign's results.

- ``save_notes``: what to change next time (``act_notes``).
- ``send_winner_to_rest``: after an A/B test share, the waiting part of the audience gets the
  chosen variant: its messages are queued with that variant and the senders are kicked.
- ``resend_to_non_openers``: a new draft campaign, derived from this one, with a new subject
  on every variant, whose audience is frozen (when it is sent) from this campaign's delivered
  messages that nobody opened (human opens), still eligible then.
- ``duplicate_campaign``: a draft copy with its variants, goals and hypothesis.

Copies are drafts linked to their origin (``parent``) so the list shows the PDCA history.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import (
    PLAN_FIELDS,
    AudienceRule,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Message,
    MessageStatus,
    Trigger,
    Variant,
)
from campaigns.sending import kick_sending

# The settings a copy takes from its origin (the plan, not what happened).
_COPIED = ("kind", "segment_id", *PLAN_FIELDS)
_TRIGGER_COPIED = ("kind", "days", "gap_multiplier", "send_hour")
NAME_MAX = Campaign._meta.get_field("name").max_length
SUBJECT_MAX = Variant._meta.get_field("subject").max_length


@transaction.atomic
def save_notes(*, campaign: Campaign, notes: str) -> Campaign:
    campaign.act_notes = notes.strip()
    campaign.save(update_fields=["act_notes", "updated_at"])
    return campaign


@transaction.atomic
def send_winner_to_rest(*, campaign: Campaign, variant: Variant, by=None) -> int:
    """Send ``variant`` to the audience waiting for the A/B test's winner; returns how many
    messages were queued. Only a campaign waiting for its winner (status testing) and only
    one of its own variants."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.status != CampaignStatus.TESTING:
        raise ValidationError(_("This campaign is not waiting for a winning variant."))
    if variant.campaign_id != locked.pk:
        raise ValidationError(_("Choose one of this campaign's variants."))
    queued = Message.objects.filter(campaign=locked, status=MessageStatus.WAITING).update(
        status=MessageStatus.QUEUED, variant=variant
    )
    locked.winner = variant
    locked.status = CampaignStatus.SENDING
    locked.finished_at = None
    locked.save(update_fields=["winner", "status", "finished_at", "updated_at"])
    kick_sending(campaign_id=locked.pk)
    campaign.refresh_from_db()
    return queued


@transaction.atomic
def resend_to_non_openers(*, campaign: Campaign, subject: str, by=None) -> Campaign:
    """A draft derived from ``campaign`` for its delivered recipients who did not open it,
    with ``subject`` on every variant (the winner's content only, if one was chosen)."""
    subject = subject.strip()
    if not subject:
        raise ValidationError(_("Enter the new subject."))
    if campaign.kind != CampaignKind.CAMPAIGN:
        raise ValidationError(_("Only a campaign can be resent to its non-openers."))
    if not Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).exists():
        raise ValidationError(_("Nothing has been delivered yet: there are no non-openers."))
    name = _("%(name)s (resend to non-openers)") % {"name": campaign.name}
    variants = [campaign.winner] if campaign.winner_id else None
    return _copy(
        campaign,
        name=name,
        by=by,
        subject=subject,
        variants=variants,
        audience_rule=AudienceRule.NON_OPENERS_OF_PARENT,
    )


@transaction.atomic
def duplicate_campaign(*, campaign: Campaign, by=None) -> Campaign:
    """A draft copy of ``campaign``: settings, goals, hypothesis, variants (and trigger)."""
    return _copy(campaign, name=_("%(name)s (copy)") % {"name": campaign.name}, by=by)


def _copy(
    campaign: Campaign,
    *,
    name: str,
    by,
    subject: str | None = None,
    variants: list[Variant] | None = None,
    audience_rule: str = AudienceRule.SEGMENT,
) -> Campaign:
    copy = Campaign(
        name=name[:NAME_MAX],
        parent=campaign,
        created_by=by if by is not None and by.is_authenticated else None,
        created_at=timezone.now(),
        status=CampaignStatus.DRAFT,
        audience_rule=audience_rule,
        **{field: getattr(campaign, field) for field in _COPIED},
    )
    if variants is not None:
        # One variant left: no A/B test share to wait on.
        copy.test_percent = 0
    copy.save()
    originals = variants if variants is not None else list(campaign.variants.order_by("label"))
    Variant.objects.bulk_create(
        [
            Variant(
                campaign=copy,
                label=original.label,
                subject=(subject or original.subject)[:SUBJECT_MAX],
                html_body=original.html_body,
                text_body=original.text_body,
                weight=100 if variants is not None else original.weight,
            )
            for original in originals
        ]
    )
    trigger = Trigger.objects.filter(campaign=campaign).first()
    if trigger is not None:
        Trigger.objects.create(
            campaign=copy, **{field: getattr(trigger, field) for field in _TRIGGER_COPIED}
        )
    return copy
