"""Creating and changing campaigns and automations with their variants (and an automation's
trigger) in one transaction, as the API receives them: whole, already validated.

Only a campaign that has not started can change (campaigns.planning.EDITABLE: a campaign
while it is a draft or scheduled, an automation while it is a draft or paused): the row is
locked first, so a change and a launch never interleave. The pages save through
campaigns.planning.save_plan, from forms; the API's input is already-validated data.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignKind, CampaignStatus, Trigger, Variant
from campaigns.planning import is_editable


@transaction.atomic
def create_campaign(
    *,
    kind: CampaignKind,
    fields: dict,
    variants: list[dict],
    trigger: dict | None = None,
    by=None,
) -> Campaign:
    """A draft campaign (or automation, with its trigger) with its variants."""
    campaign = Campaign.objects.create(kind=kind, created_by=by, **fields)
    Variant.objects.bulk_create(Variant(campaign=campaign, **variant) for variant in variants)
    if trigger is not None:
        Trigger.objects.create(campaign=campaign, **trigger)
    return campaign


@transaction.atomic
def update_campaign(
    *,
    campaign: Campaign,
    fields: dict,
    variants: list[dict] | None = None,
    trigger: dict | None = None,
    by=None,
) -> Campaign:
    """Change what was given. ``variants`` replaces the whole list, matched by label: a
    variant whose label is kept is updated in place (an automation's sent messages keep
    pointing to it). Raises ValidationError if the campaign can no longer be changed."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if not is_editable(locked):
        raise ValidationError(
            _("A campaign can only be changed before it starts (status: %(status)s).")
            % {"status": locked.get_status_display()},
            code="not_editable",
        )
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=[*fields, "updated_at"])
    if variants is not None:
        _replace_variants(campaign=locked, variants=variants)
    if trigger is not None:
        Trigger.objects.update_or_create(campaign=locked, defaults=trigger)
    return locked


def _replace_variants(*, campaign: Campaign, variants: list[dict]) -> None:
    existing = {variant.label: variant for variant in campaign.variants.all()}
    wanted = {variant["label"] for variant in variants}
    dropped = [variant for label, variant in existing.items() if label not in wanted]
    if Variant.objects.filter(pk__in=[v.pk for v in dropped], messages__isnull=False).exists():
        raise ValidationError(
            _("A variant that has already been sent cannot be removed."), code="variant_sent"
        )
    Variant.objects.filter(pk__in=[variant.pk for variant in dropped]).delete()
    changed, added = [], []
    for values in variants:
        variant = existing.get(values["label"]) or Variant(campaign=campaign)
        for name, value in values.items():
            setattr(variant, name, value)
        (changed if variant.pk else added).append(variant)
    names = ["subject", "html_body", "text_body", "weight"]
    Variant.objects.bulk_update(changed, names)
    Variant.objects.bulk_create(added)


@transaction.atomic
def delete_draft(*, campaign: Campaign) -> None:
    """Delete a campaign (or automation) that was never started; anything else is history
    the review reads, and is cancelled rather than deleted."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.status != CampaignStatus.DRAFT:
        raise ValidationError(
            _("Only a draft can be deleted; cancel a campaign that has been scheduled."),
            code="not_draft",
        )
    locked.delete()
