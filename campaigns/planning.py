"""Saving a campaign's or an automation's plan: its settings and goal, its variants and, for
an automation, its trigger, in one transaction.

Only a plan not yet under way can change: a campaign while it is a draft or scheduled (a
sent one is the record of what was sent), an automation while it is a draft or paused.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignKind, CampaignStatus

EDITABLE = {
    CampaignKind.CAMPAIGN: (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED),
    CampaignKind.AUTOMATION: (CampaignStatus.DRAFT, CampaignStatus.PAUSED),
}


def is_editable(campaign: Campaign) -> bool:
    return campaign.status in EDITABLE[campaign.kind]


@transaction.atomic
def save_plan(*, campaign_form, variants, trigger_form=None, by=None) -> Campaign:
    """Save the valid ``campaign_form`` with its ``variants`` formset (and an automation's
    ``trigger_form``). Raises ValidationError if the campaign got under way meanwhile (the
    row is locked, so a send cannot start half-way through the save)."""
    campaign = campaign_form.instance
    if campaign.pk:
        current = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not is_editable(current):
            raise ValidationError(
                _("This campaign is %(status)s: it can no longer be changed.")
                % {"status": current.get_status_display()}
            )
    campaign.updated_at = timezone.now()
    if campaign.pk:
        # Only what the form holds: a schedule set meanwhile on another page stays.
        campaign.save(update_fields=[*campaign_form.fields, "updated_at"])
    else:
        campaign.created_by = by
        campaign.save()
    variants.instance = campaign
    # Deletions first: a label freed by a removed variant may be taken by a new one.
    for form in variants.deleted_forms:
        if form.instance.pk:
            form.instance.delete()
    for form in variants.kept():
        form.instance.campaign = campaign
        form.save()
    if trigger_form is not None:
        trigger = trigger_form.save(commit=False)
        trigger.campaign = campaign
        trigger.save()
    return campaign
