"""Plan and Do pages of a campaign: create and edit (settings, goal, variants), its page
(status, schedule, send now, pause, resume, cancel, a progress bar fed by the progress JSON),
the preview for a chosen customer and the test send to oneself.

Everyone with ``campaigns.view_campaign`` reads; admins and marketers, who hold
add/change, plan and send. Each view checks access, validates, calls one function of
campaigns.planning, campaigns.sending or campaigns.previews and responds.
"""

from __future__ import annotations

import smtplib

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from analytics.forms_goals import plain
from campaigns import sending
from campaigns.forms import (
    CampaignForm,
    PreviewForm,
    ScheduleForm,
    check_split,
    variant_formset,
)
from campaigns.models import Campaign, CampaignKind, CampaignStatus
from campaigns.planning import is_editable, save_plan
from campaigns.previews import CHOICES, preview_candidates, preview_for, send_test_email
from campaigns.rendering import VARIABLES, preview
from campaigns.triggers import look_back_days
from crm.access import permission_required

VIEW = "campaigns.view_campaign"
ADD = "campaigns.add_campaign"
CHANGE = "campaigns.change_campaign"
VIEW_CUSTOMER = "customers.view_customer"

CANCELLABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
    CampaignStatus.TESTING,
)
# While the page polls the progress: sending, or about to start.
POLL_AHEAD_SECONDS = 60


def campaign_for(pk: int, kind: str | None = None) -> Campaign:
    """The campaign (or automation) ``pk`` of the pages: every role that reaches a campaign
    page may see every campaign; 404 if there is none (of that kind)."""
    campaigns = Campaign.objects.select_related("segment", "created_by")
    if kind:
        campaigns = campaigns.filter(kind=kind)
    return get_object_or_404(campaigns, pk=pk)


def variable_help() -> list[tuple[str, str]]:
    """What each personalisation variable holds, in the page's language."""
    meanings = {
        "family_name": _("Family name (山田)"),
        "given_name": _("Given name (花子)"),
        "full_name": _("Full name in the customer's order (山田 花子)"),
        "family_name_kana": _("Family name in kana (ヤマダ)"),
        "given_name_kana": _("Given name in kana (ハナコ)"),
        "kana_name": _("Full name in kana (ヤマダ ハナコ)"),
        "email": _("E-mail address"),
        "prefecture": _("Prefecture"),
        "last_product": _("Product of the last completed purchase"),
        "last_purchase_date": _("Date of the last completed purchase"),
        "coupon_code": _("The campaign's coupon code"),
        "rfm_label": _("RFM label of the latest scoring run (e.g. Champions)"),
        "campaign_name": _("The campaign's name"),
        "unsubscribe_url": _("The recipient's unsubscribe link (the footer has one already)"),
    }
    return [(name, meanings.get(name, "")) for name in VARIABLES]


def plan_context(*, form, variants, campaign: Campaign | None, **extra) -> dict:
    return {
        "form": form,
        "variants": variants,
        "campaign": campaign,
        "variables": variable_help(),
        **extra,
    }


def _save_or_error(request, *, form, variants, trigger_form=None) -> Campaign | None:
    """Save a valid plan; None (with the reason in the form) if it cannot be saved."""
    forms_valid = form.is_valid() & variants.is_valid()
    if trigger_form is not None:
        forms_valid &= trigger_form.is_valid()
    if not (forms_valid and check_split(form=form, variants=variants)):
        return None
    try:
        return save_plan(
            campaign_form=form, variants=variants, trigger_form=trigger_form, by=request.user
        )
    except ValidationError as error:
        form.add_error(None, error)
        return None


# --- Create and edit --------------------------------------------------------------------------


def plan_page(request, campaign: Campaign, *, form_class=CampaignForm, trigger_form=None):
    """The form of a plan, new (``campaign`` unsaved) or edited; an automation's comes with
    its bound ``trigger_form``. Saved: on to its page."""
    data = request.POST if request.method == "POST" else None
    saved_name = campaign.name
    form = form_class(data, instance=campaign)
    variants = variant_formset(data, instance=campaign)
    if data is not None:
        saved = _save_or_error(request, form=form, variants=variants, trigger_form=trigger_form)
        if saved:
            messages.success(request, _("%(name)s was saved.") % {"name": saved.name})
            return redirect("campaigns:detail", pk=saved.pk)
    context = plan_context(
        form=form,
        variants=variants,
        campaign=campaign if campaign.pk else None,
        saved_name=saved_name,
        trigger_form=trigger_form,
        # The trigger's count comes from campaigns:trigger-count once the page is shown.
        look_back_days=look_back_days(),
    )
    return render(request, "campaigns/form.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, ADD)
def campaign_create(request):
    return plan_page(request, Campaign(kind=CampaignKind.CAMPAIGN))


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, CHANGE)
def campaign_edit(request, pk: int):
    campaign = campaign_for(pk)
    if campaign.kind == CampaignKind.AUTOMATION:
        return redirect("campaigns:automation-edit", pk=pk)
    if not is_editable(campaign):
        messages.info(request, _("A campaign under way or finished can no longer be changed."))
        return redirect("campaigns:detail", pk=pk)
    return plan_page(request, campaign)


# --- The campaign's page and its progress ------------------------------------------------------


def progress_data(campaign: Campaign) -> dict:
    progress = sending.campaign_progress(campaign)
    due_soon = (
        campaign.status == CampaignStatus.SCHEDULED
        and campaign.scheduled_at is not None
        and (campaign.scheduled_at - timezone.now()).total_seconds() < POLL_AHEAD_SECONDS
    )
    started = campaign.status in (CampaignStatus.SENT, CampaignStatus.TESTING)
    return {
        "status": campaign.status,
        "status_label": campaign.get_status_display(),
        "active": campaign.status == CampaignStatus.SENDING or due_soon,
        "audience": progress.audience,
        "queued": progress.queued,
        "sending": progress.sending,
        "sent": progress.sent,
        "failed": progress.failed,
        "bounced": progress.bounced,
        "skipped": progress.skipped - progress.holdout,
        "holdout": progress.holdout,
        "waiting": progress.waiting,
        "possibly_duplicated": progress.possibly_duplicated,
        "to_send": progress.to_send,
        "done": progress.done,
        # Before the freeze there is nothing to count: 0%, not the 100% of an empty audience.
        "percent": progress.percent if progress.audience or started else 0,
    }


def detail_context(campaign: Campaign, schedule_form: ScheduleForm | None = None):
    if schedule_form is None:
        at = campaign.scheduled_at or timezone.now().replace(second=0, microsecond=0)
        schedule_form = ScheduleForm(initial={"at": timezone.localtime(at)})
    return {
        "campaign": campaign,
        "variants": list(campaign.variants.order_by("label")),
        "progress": progress_data(campaign),
        "schedule_form": schedule_form,
        "time_zone": timezone.get_current_timezone_name(),
        "editable": is_editable(campaign),
        "cancellable": campaign.kind == CampaignKind.CAMPAIGN and campaign.status in CANCELLABLE,
        "goal_rates": [
            (label, None if value is None else plain(value * 100))
            for label, value in (
                (_("Goal: open rate"), campaign.goal_open_rate),
                (_("Goal: click rate"), campaign.goal_click_rate),
                (_("Goal: conversion rate"), campaign.goal_conversion_rate),
            )
        ],
        "trigger": getattr(campaign, "trigger", None)
        if campaign.kind == CampaignKind.AUTOMATION
        else None,
    }


@require_GET
@permission_required(VIEW)
def campaign_detail(request, pk: int):
    campaign = campaign_for(pk)
    return render(request, "campaigns/detail.html", detail_context(campaign))


@require_GET
@permission_required(VIEW)
def campaign_progress(request, pk: int):
    return JsonResponse(progress_data(campaign_for(pk)))


# --- Sending actions --------------------------------------------------------------------------


def _report(request, error: ValidationError) -> None:
    for text in error.messages:
        messages.error(request, text)


@require_POST
@permission_required(VIEW, CHANGE)
def campaign_schedule(request, pk: int):
    campaign = campaign_for(pk, CampaignKind.CAMPAIGN)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        context = detail_context(campaign, schedule_form=form)
        return render(request, "campaigns/detail.html", context, status=400)
    try:
        sending.schedule_campaign(campaign=campaign, at=form.cleaned_data["at"], by=request.user)
    except ValidationError as error:
        _report(request, error)
    else:
        messages.success(
            request,
            _("Scheduled for %(at)s (%(zone)s).")
            % {
                "at": timezone.localtime(campaign.scheduled_at).strftime("%Y-%m-%d %H:%M"),
                "zone": timezone.get_current_timezone_name(),
            },
        )
    return redirect("campaigns:detail", pk=pk)


@require_POST
@permission_required(VIEW, CHANGE)
def campaign_send_now(request, pk: int):
    campaign = campaign_for(pk, CampaignKind.CAMPAIGN)
    try:
        sending.start_campaign(campaign=campaign, by=request.user)
    except ValidationError as error:
        _report(request, error)
    else:
        messages.success(request, _("Sending has started."))
    return redirect("campaigns:detail", pk=pk)


def _state_change_view(act, done, refused):
    """A view for one of sending's state changes (``act`` returns False when the campaign
    is not in a state it applies to); ``done`` and ``refused`` are lazy messages."""

    @require_POST
    @permission_required(VIEW, CHANGE)
    def view(request, pk: int):
        campaign = campaign_for(pk, CampaignKind.CAMPAIGN)
        if act(campaign=campaign, by=request.user):
            messages.success(request, done)
        else:
            messages.error(request, refused)
        return redirect("campaigns:detail", pk=pk)

    return view


campaign_pause = _state_change_view(
    sending.pause_campaign,
    gettext_lazy("Paused: the messages in flight finish, the rest wait."),
    gettext_lazy("Only a campaign being sent can be paused."),
)
campaign_resume = _state_change_view(
    sending.resume_campaign,
    gettext_lazy("Sending again."),
    gettext_lazy("Only a paused campaign can be resumed."),
)
campaign_cancel = _state_change_view(
    sending.cancel_campaign,
    gettext_lazy("Cancelled: nothing more will be sent; what was sent stays sent."),
    gettext_lazy("This campaign is finished and cannot be cancelled."),
)


# --- Preview and test send --------------------------------------------------------------------


def _chosen_variant(campaign: Campaign, variant_id: int | None):
    variants = list(campaign.variants.order_by("label"))
    chosen = next((v for v in variants if v.pk == variant_id), variants[0] if variants else None)
    return variants, chosen


@require_GET
@permission_required(VIEW, CHANGE, VIEW_CUSTOMER)
def campaign_preview(request, pk: int):
    campaign = campaign_for(pk)
    form = PreviewForm(request.GET or None)
    choice = form.cleaned_data if form.is_valid() else {}
    variants, variant = _chosen_variant(campaign, choice.get("variant"))
    search = choice.get("q") or ""
    found = list(preview_candidates(campaign=campaign, search=search)[:CHOICES]) if search else []
    customer_id = choice.get("customer") or (found[0].pk if found else None)
    customer = preview_for(campaign=campaign, customer_id=customer_id)
    email = preview(variant=variant, customer=customer) if variant and customer else None
    context = {
        "campaign": campaign,
        "form": form,
        "variants": variants,
        "variant": variant,
        "customer": customer,
        "found": found,
        "search": search,
        "asked_customer": customer_id,
        "email": email,
        "html": email.alternatives[0][0] if email else "",
        "headers": _shown_headers(email) if email else [],
    }
    return render(request, "campaigns/preview.html", context)


def _shown_headers(email) -> list[tuple[str, str]]:
    shown = [("From", email.from_email), ("To", ", ".join(email.to))]
    if email.reply_to:
        shown.append(("Reply-To", ", ".join(email.reply_to)))
    shown += [(name, value) for name, value in email.extra_headers.items() if name != "Message-ID"]
    return shown


@require_POST
@permission_required(VIEW, CHANGE, VIEW_CUSTOMER)
def campaign_test_send(request, pk: int):
    campaign = campaign_for(pk)
    form = PreviewForm(request.POST)
    choice = form.cleaned_data if form.is_valid() else {}
    _variants, variant = _chosen_variant(campaign, choice.get("variant"))
    customer = preview_for(campaign=campaign, customer_id=choice.get("customer"))
    back = redirect("campaigns:preview", pk=pk)
    if variant is not None and customer is not None:
        back["Location"] += f"?variant={variant.pk}&customer={customer.pk}"
    if not request.user.email:
        messages.error(
            request,
            _(
                "Your account has no e-mail address to send the test to: "
                "ask an administrator to add one."
            ),
        )
    elif variant is None or customer is None:
        messages.error(request, _("Nothing to send: the campaign needs a variant and a recipient."))
    else:
        try:
            send_test_email(variant=variant, customer=customer, to=request.user.email)
        except (smtplib.SMTPException, OSError) as error:
            messages.error(
                request, _("The mail server refused the test: %(error)s") % {"error": error}
            )
        else:
            messages.success(
                request,
                _("Test of variant %(label)s sent to %(email)s.")
                % {"label": variant.label, "email": request.user.email},
            )
    return back
