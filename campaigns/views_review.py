"""Check and Act pages: the campaign list with goal attainment (the PDCA history), a
campaign's review page and its CSV, and the actions taken from the review (notes, send the
winning variant to the rest, resend to non-openers, duplicate).

Everyone with ``campaigns.view_campaign`` reads; the actions need add/change (admins and
marketers). Each view checks access, validates, calls one function of campaigns.results or
campaigns.acting and responds.
"""

from __future__ import annotations

import time

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from campaigns import acting
from campaigns.models import Campaign, CampaignStatus, Variant
from campaigns.results import (
    DEFINITIONS,
    METRIC_NAMES,
    CampaignResults,
    Figures,
    GoalState,
    Metric,
    campaign_results,
    goal_attainment_for,
)
from campaigns.views_plan import campaign_for
from crm import exporting, number_formats
from crm.access import has_permissions, permission_required
from crm.templatetags.crm_tags import money

VIEW = "campaigns.view_campaign"
ADD = "campaigns.add_campaign"
CHANGE = "campaigns.change_campaign"
LIST_PAGE_SIZE = 25
WEEKDAYS = (
    gettext_lazy("Mon"),
    gettext_lazy("Tue"),
    gettext_lazy("Wed"),
    gettext_lazy("Thu"),
    gettext_lazy("Fri"),
    gettext_lazy("Sat"),
    gettext_lazy("Sun"),
)


class NotesForm(forms.Form):
    notes = forms.CharField(
        label=gettext_lazy("What to change next"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=5000,
    )


class ResendForm(forms.Form):
    subject = forms.CharField(
        label=gettext_lazy("New subject"),
        max_length=Variant._meta.get_field("subject").max_length,
    )


class ListFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("Every status")), *CampaignStatus.choices],
    )


# --- Formatting -------------------------------------------------------------------------------


def percent(rate, digits: int = 1) -> str:
    if rate is None:
        return "—"
    return f"{number_formats.number(float(rate) * 100, digits)}%"


def count(value) -> str:
    return number_formats.number(value, 0, force_grouping=True)


def _goal_text(metric: Metric, value) -> str:
    if value is None:
        return "—"
    return money(value) if metric == Metric.REVENUE else percent(value)


def goal_badges(goals) -> list[dict]:
    """The goals a campaign set, as badges: the metric, actual vs goal and the state."""
    return [
        {
            "name": goal.name,
            "state": goal.state.value,
            "state_name": goal.state_name,
            "actual": _goal_text(goal.metric, goal.actual),
            "goal": _goal_text(goal.metric, goal.goal),
            "attainment": percent(goal.attainment, 0) if goal.attainment is not None else "",
        }
        for goal in goals
        if goal.state != GoalState.NO_GOAL
    ]


def _rates(figures: Figures) -> dict:
    return {
        "delivered": count(figures.delivered),
        "opened": count(figures.opened),
        "open_rate": percent(figures.open_rate),
        "clicked": count(figures.clicked),
        "click_rate": percent(figures.click_rate),
        "click_to_open": percent(figures.click_to_open),
        "machine_opened": count(figures.machine_opened),
        "machine_clicked": count(figures.machine_clicked),
        "unsubscribed": count(figures.unsubscribed),
        "unsubscribe_rate": percent(figures.unsubscribe_rate),
        "converted": count(figures.converted),
        "conversion_rate": percent(figures.conversion_rate),
        "revenue": money(figures.revenue),
    }


def _cards(results: CampaignResults) -> list[dict]:
    total = results.total
    goals = {goal.metric: goal for goal in results.goals}
    cards = [
        {"key": "delivered", "label": _("Delivered"), "value": count(total.delivered)},
        {
            "key": Metric.OPEN.value,
            "label": METRIC_NAMES[Metric.OPEN],
            "value": percent(total.open_rate),
            "detail": _("%(count)s opened") % {"count": count(total.opened)},
        },
        {
            "key": Metric.CLICK.value,
            "label": METRIC_NAMES[Metric.CLICK],
            "value": percent(total.click_rate),
            "detail": _("%(count)s clicked · click-to-open %(rate)s")
            % {"count": count(total.clicked), "rate": percent(total.click_to_open)},
        },
        {
            "key": "unsubscribe_rate",
            "label": _("unsubscribe rate"),
            "value": percent(total.unsubscribe_rate),
            "detail": _("%(count)s unsubscribed") % {"count": count(total.unsubscribed)},
        },
        {
            "key": Metric.CONVERSION.value,
            "label": METRIC_NAMES[Metric.CONVERSION],
            "value": percent(total.conversion_rate),
            "detail": _("%(count)s converted") % {"count": count(total.converted)},
        },
        {
            "key": Metric.REVENUE.value,
            "label": METRIC_NAMES[Metric.REVENUE],
            "value": money(total.revenue),
        },
    ]
    for card in cards:
        card["definition"] = DEFINITIONS.get(card["key"], "")
        goal = goals.get(card["key"])
        if goal is not None and goal.state != GoalState.NO_GOAL:
            card["goal"] = goal_badges([goal])[0]
    return cards


def _lift(results: CampaignResults) -> dict | None:
    lift, holdout = results.lift, results.holdout
    if lift is None or holdout is None:
        return None
    return {
        "members": count(holdout.members),
        "holdout_converted": count(holdout.converted),
        "holdout_rate": percent(holdout.conversion_rate),
        "delivered_rate": percent(results.total.conversion_rate),
        "absolute": _("%(points)s pt") % {"points": number_formats.number(lift.absolute * 100, 2)},
        "relative": percent(lift.relative) if lift.relative is not None else "—",
        "incremental_conversions": number_formats.number(lift.incremental_conversions, 1),
        "incremental_revenue": money(lift.incremental_revenue),
        "holdout_revenue_per_member": money(holdout.revenue_per_member),
        "revenue_per_delivered": money(results.total.revenue_per_recipient),
        "p": number_formats.number(lift.p_value, 3),
        "significant": lift.significant,
    }


def _heat_rows(results: CampaignResults) -> list[dict]:
    delivered = results.total.delivered
    busiest = max((max(row) for row in results.heat_map), default=0) or 1
    return [
        {
            "day": day,
            "cells": [
                {
                    "opened": opened,
                    "share": percent(opened / delivered if delivered else None),
                    "heat": f"{opened / busiest:.2f}",
                    "dark": opened / busiest > 0.6,
                }
                for opened in row
            ],
        }
        for day, row in zip(WEEKDAYS, results.heat_map, strict=True)
    ]


def _chart_data(results: CampaignResults) -> dict:
    def rates(rows):
        return {
            "labels": [label for label, _figures in rows],
            "open": [figures.open_rate or 0 for _label, figures in rows],
            "click": [figures.click_rate or 0 for _label, figures in rows],
            "conversion": [figures.conversion_rate or 0 for _label, figures in rows],
        }

    lift = None
    if results.lift is not None:
        lift = {
            "labels": [_("Delivered"), _("Holdout")],
            "rates": [results.total.conversion_rate or 0, results.holdout.conversion_rate or 0],
        }
    return {
        "lift": lift,
        "variants": rates([(v.label, v.figures) for v in results.variants]),
        "rfm": rates([(g.label, g.figures) for g in results.by_rfm]),
        "deciles": rates([(g.label, g.figures) for g in results.by_decile]),
        "hours": {
            "labels": [f"{hour}:00" for hour in range(24)],
            "opened": [sum(row[hour] for row in results.heat_map) for hour in range(24)],
        },
        "text": {
            "open": str(METRIC_NAMES[Metric.OPEN]),
            "click": str(METRIC_NAMES[Metric.CLICK]),
            "conversion": str(METRIC_NAMES[Metric.CONVERSION]),
            "opened": _("Opened"),
            "hour": _("Hour of the first opening"),
        },
    }


# --- List ---------------------------------------------------------------------------------------


@require_GET
@permission_required(VIEW)
def campaign_list(request):
    form = ListFilterForm(request.GET or None)
    campaigns = Campaign.objects.select_related("segment").order_by("-created_at", "-id")
    if form.is_valid() and form.cleaned_data["status"]:
        campaigns = campaigns.filter(status=form.cleaned_data["status"])
    page = Paginator(campaigns, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    entries = goal_attainment_for(page.object_list)
    rows = [
        {
            "campaign": campaign,
            "entry": entries[campaign.pk],
            "rates": _rates(entries[campaign.pk].figures),
            "goals": goal_badges(entries[campaign.pk].goals),
        }
        for campaign in page.object_list
    ]
    return render(
        request,
        "campaigns/list.html",
        {
            "form": form,
            "rows": rows,
            "page_obj": page,
            "paginator": page.paginator,
            "is_paginated": page.has_other_pages(),
            "can_add": has_permissions(request.user, (VIEW, ADD)),
        },
    )


# --- Review -------------------------------------------------------------------------------------


@require_GET
@permission_required(VIEW)
def campaign_review(request, pk: int):
    started = time.perf_counter()
    campaign = campaign_for(pk)
    results = campaign_results(campaign)
    computed = time.perf_counter()
    can_act = has_permissions(request.user, (VIEW, CHANGE))
    variants = [{"variant": v, "rates": _rates(v.figures)} for v in results.variants]
    context = {
        "campaign": campaign,
        "results": results,
        "cards": _cards(results),
        "total_rates": _rates(results.total),
        "variants": variants,
        "verdicts": results.verdicts(),
        "primary_metric": results.primary_metric_name,
        "lift": _lift(results),
        "heat_rows": _heat_rows(results),
        "hours": range(24),
        "by_rfm": [{"group": g, "rates": _rates(g.figures)} for g in results.by_rfm],
        "by_decile": [{"group": g, "rates": _rates(g.figures)} for g in results.by_decile],
        "chart_data": _chart_data(results),
        "definitions": DEFINITIONS,
        "can_act": can_act,
        "can_add": has_permissions(request.user, (VIEW, ADD)),
        "notes_form": NotesForm(initial={"notes": campaign.act_notes}),
        "resend_form": ResendForm(),
        "can_send_winner": can_act and campaign.status == CampaignStatus.TESTING,
        "suggested_winner_id": results.suggested_winner_id,
        "children": list(campaign.children.order_by("-created_at")),
    }
    response = render(request, "campaigns/review.html", context)
    rendered = time.perf_counter()
    # Where the server's time went, for the browser's developer tools and the benchmark.
    response["Server-Timing"] = (
        f"results;dur={(computed - started) * 1000:.1f}, "
        f"render;dur={(rendered - computed) * 1000:.1f}"
    )
    return response


def _csv_rows(results: CampaignResults):
    yield _("Total"), _("Delivered"), results.total
    for variant in results.variants:
        yield _("Variant"), variant.label, variant.figures
    if results.holdout:
        holdout = results.holdout
        yield (
            _("Holdout"),
            _("Holdout"),
            Figures(
                delivered=holdout.members, converted=holdout.converted, revenue=holdout.revenue
            ),
        )
    for group in results.by_rfm:
        yield _("RFM label"), group.label, group.figures
    for group in results.by_decile:
        yield _("Decile"), group.label, group.figures


def _rate(value):
    return None if value is None else round(value, 4)


@require_GET
@permission_required(VIEW)
def campaign_review_csv(request, pk: int):
    campaign = campaign_for(pk)
    results = campaign_results(campaign)
    columns = [
        exporting.Column(_("Breakdown"), lambda row: row[0]),
        exporting.Column(_("Group"), lambda row: row[1]),
        exporting.Column(_("Delivered (holdout: members)"), lambda row: row[2].delivered),
        exporting.Column(_("Opened"), lambda row: row[2].opened),
        exporting.Column(_("Open rate"), lambda row: _rate(row[2].open_rate)),
        exporting.Column(_("Clicked"), lambda row: row[2].clicked),
        exporting.Column(_("Click rate"), lambda row: _rate(row[2].click_rate)),
        exporting.Column(_("Click-to-open"), lambda row: _rate(row[2].click_to_open)),
        exporting.Column(_("Machine opens"), lambda row: row[2].machine_opened),
        exporting.Column(_("Machine clicks"), lambda row: row[2].machine_clicked),
        exporting.Column(_("Unsubscribed"), lambda row: row[2].unsubscribed),
        exporting.Column(_("Unsubscribe rate"), lambda row: _rate(row[2].unsubscribe_rate)),
        exporting.Column(_("Converted"), lambda row: row[2].converted),
        exporting.Column(_("Conversion rate"), lambda row: _rate(row[2].conversion_rate)),
        exporting.Column(_("Attributed revenue"), lambda row: row[2].revenue),
    ]
    return exporting.csv_response(
        columns=columns, objects=list(_csv_rows(results)), filename=f"campaign-{campaign.pk}-review"
    )


# --- Act ----------------------------------------------------------------------------------------


def _refused(request, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


@require_POST
@permission_required(VIEW, CHANGE)
def campaign_notes(request, pk: int):
    campaign = campaign_for(pk)
    form = NotesForm(request.POST)
    if form.is_valid():
        acting.save_notes(campaign=campaign, notes=form.cleaned_data["notes"])
        messages.success(request, _("Notes saved."))
    else:
        messages.error(request, _("The notes could not be saved: they are too long."))
    return redirect("campaigns:review", pk=campaign.pk)


@require_POST
@permission_required(VIEW, CHANGE)
def campaign_send_winner(request, pk: int):
    campaign = campaign_for(pk)
    variant = get_object_or_404(campaign.variants, pk=request.POST.get("variant") or 0)
    try:
        queued = acting.send_winner_to_rest(campaign=campaign, variant=variant, by=request.user)
    except ValidationError as error:
        _refused(request, error)
        return redirect("campaigns:review", pk=campaign.pk)
    messages.success(
        request,
        _("Variant %(label)s is being sent to the %(count)s recipients who were waiting.")
        % {"label": variant.label, "count": count(queued)},
    )
    return redirect("campaigns:detail", pk=campaign.pk)


@require_POST
@permission_required(VIEW, ADD, CHANGE)
def campaign_resend_non_openers(request, pk: int):
    campaign = campaign_for(pk)
    form = ResendForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter the new subject (at most 255 characters)."))
        return redirect("campaigns:review", pk=campaign.pk)
    try:
        child = acting.resend_to_non_openers(
            campaign=campaign, subject=form.cleaned_data["subject"], by=request.user
        )
    except ValidationError as error:
        _refused(request, error)
        return redirect("campaigns:review", pk=campaign.pk)
    messages.success(
        request,
        _(
            "Draft created for the non-openers. Its audience is taken when it is sent: "
            "schedule it when you are ready."
        ),
    )
    return redirect("campaigns:detail", pk=child.pk)


@require_POST
@permission_required(VIEW, ADD)
def campaign_duplicate(request, pk: int):
    campaign = campaign_for(pk)
    copy = acting.duplicate_campaign(campaign=campaign, by=request.user)
    messages.success(request, _("Copy created as a draft."))
    return redirect("campaigns:detail", pk=copy.pk)
