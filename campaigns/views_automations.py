"""Automation pages: the list (trigger, state, last evaluation, messages sent), create and
edit (content, goal and variants as a campaign's, plus the trigger), activate and pause.

Reading needs ``campaigns.view_campaign``; planning and switching, add/change. Activation
and pausing are campaigns.automations' functions; saving is campaigns.planning's.

The form's "today the trigger would match N customers" is a few seconds' work at scale: the
page never waits for it; its script asks ``trigger_count`` (JSON, cached a few minutes).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.automations import (
    activate_automation,
    cached_trigger_preview_count,
    pause_automation,
)
from campaigns.forms import AutomationForm, TriggerForm
from campaigns.models import Campaign, CampaignKind, Trigger
from campaigns.planning import is_editable
from campaigns.views_plan import ADD, CHANGE, VIEW, campaign_for, plan_page
from crm.access import permission_required
from segments.models import Segment


@require_GET
@permission_required(VIEW)
def automation_list(request):
    automations = (
        Campaign.objects.filter(kind=CampaignKind.AUTOMATION)
        .select_related("trigger", "segment")
        .order_by("name", "id")
    )
    return render(request, "campaigns/automation_list.html", {"automations": automations})


def _automation_page(request, automation: Campaign):
    """The plan's form with the automation's trigger."""
    data = request.POST if request.method == "POST" else None
    trigger = getattr(automation, "trigger", None) if automation.pk else None
    trigger_form = TriggerForm(data, instance=trigger or Trigger(), prefix="trigger")
    return plan_page(request, automation, form_class=AutomationForm, trigger_form=trigger_form)


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, ADD)
def automation_create(request):
    return _automation_page(request, Campaign(kind=CampaignKind.AUTOMATION))


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, CHANGE)
def automation_edit(request, pk: int):
    automation = campaign_for(pk, CampaignKind.AUTOMATION)
    if not is_editable(automation):
        messages.info(request, _("Pause the automation before changing it."))
        return redirect("campaigns:detail", pk=pk)
    return _automation_page(request, automation)


@require_POST
@permission_required(VIEW, CHANGE)
def automation_activate(request, pk: int):
    automation = campaign_for(pk, CampaignKind.AUTOMATION)
    try:
        activate_automation(campaign=automation, by=request.user)
    except ValidationError as error:
        for text in error.messages:
            messages.error(request, text)
    else:
        messages.success(request, _("Active: the trigger is evaluated every day from now on."))
    return redirect("campaigns:detail", pk=pk)


@require_POST
@permission_required(VIEW, CHANGE)
def automation_pause(request, pk: int):
    automation = campaign_for(pk, CampaignKind.AUTOMATION)
    if pause_automation(campaign=automation, by=request.user):
        messages.success(request, _("Paused: nothing is evaluated or sent until it is activated."))
    else:
        messages.error(request, _("Only an active automation can be paused."))
    return redirect("campaigns:detail", pk=pk)


class TriggerCountForm(forms.Form):
    """The rest of the automation form the count depends on (the trigger: TriggerForm)."""

    segment = forms.ModelChoiceField(queryset=Segment.objects.all(), required=False)
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.filter(kind=CampaignKind.AUTOMATION), required=False
    )


@require_GET
@permission_required(VIEW, CHANGE)
def trigger_count(request):
    """How many customers the trigger on the form (``trigger-*`` fields, ``segment``, the
    edited automation's ``campaign`` id) would match today, as JSON: ``count`` and its
    sentence. 400 with the form's errors when the fields are not valid yet."""
    form = TriggerCountForm(request.GET)
    trigger_form = TriggerForm(request.GET, instance=Trigger(), prefix="trigger")
    if not (form.is_valid() & trigger_form.is_valid()):
        errors = {**form.errors.get_json_data(), **trigger_form.errors.get_json_data()}
        return JsonResponse({"errors": errors}, status=400)
    trigger = trigger_form.instance
    automation = form.cleaned_data["campaign"]
    if automation is not None:
        # Its customers who have the period's message already are not counted again.
        trigger.campaign = automation
    count = cached_trigger_preview_count(trigger, segment=form.cleaned_data["segment"])
    text = ngettext(
        "Today the trigger would match %(count)s customer.",
        "Today the trigger would match %(count)s customers.",
        count,
    ) % {"count": f"{count:,}"}
    return JsonResponse({"count": count, "text": text})
