"""Pages of the segment builder: the list, the builder (create and edit) with its live
preview, a segment's page (rules in words, members, size history), refresh, export, delete.

Each view checks access, validates input, calls one function (segments.evaluation for the
preview, segments.membership or the form's update for writes, a task for refreshes) and
renders. The builder's tree editor is static/js/segment-builder.js; it keeps the rule tree as
JSON in the form's hidden ``rules`` input and asks ``segment_preview`` for the live count.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.access import permission_required
from crm.exporting import csv_response
from customers import selectors
from customers.models import Customer
from customers.views import customer_export_columns
from segments import tasks
from segments.describing import describe_rules
from segments.forms import SegmentForm, parse_rules
from segments.membership import create_segment, update_segment
from segments.models import ScoringRun, Segment, SegmentKind
from segments.preview import live_preview, with_scores
from segments.rules import field_catalogue
from segments.trends import Trend, trends

VIEW = "segments.view_segment"
ADD = "segments.add_segment"
CHANGE = "segments.change_segment"
DELETE = "segments.delete_segment"
VIEW_CUSTOMER = "customers.view_customer"

MEMBERS_PAGE_SIZE = 50
HISTORY_ROWS = 30
BREAKDOWN_TITLES = {
    "prefecture": gettext_lazy("By prefecture"),
    "rfm_label": gettext_lazy("By RFM label"),
    "decile": gettext_lazy("By decile"),
}


# --- List -------------------------------------------------------------------------------------


@require_GET
@permission_required(VIEW)
def segment_list(request):
    segments = list(Segment.objects.select_related("created_by").order_by("name"))
    by_segment = trends([segment.pk for segment in segments])
    for segment in segments:
        segment.trend = by_segment.get(segment.pk, Trend([]))
    return render(request, "segments/builder/list.html", {"segments": segments})


# --- Builder ----------------------------------------------------------------------------------


def _builder_context(form: SegmentForm, segment: Segment | None) -> dict[str, Any]:
    return {
        "form": form,
        "segment": segment,
        "catalogue": field_catalogue(),
        "rule_errors": form.rule_errors,
        "builder_text": _builder_text(),
    }


def _builder_text() -> dict[str, str]:
    """The builder script's words, in the page's language."""
    return {
        "and": _("all of these (AND)"),
        "or": _("any of these (OR)"),
        "match": _("Customers matching"),
        "addCondition": _("Add condition"),
        "addGroup": _("Add group"),
        "removeCondition": _("Remove condition"),
        "removeGroup": _("Remove group"),
        "field": _("Field"),
        "operator": _("Operator"),
        "value": _("Value"),
        "chooseField": _("Choose a field…"),
        "min": _("Minimum"),
        "max": _("Maximum"),
        "from": pgettext("start of a date range", "From"),
        "to": pgettext("end of a date range", "To"),
        "days": _("Days"),
        "inLastDays": _("In the last days (empty: any time)"),
        "yes": _("Yes"),
        "no": _("No"),
        "products": _("Product SKUs or IDs, separated by commas"),
        "openOnly": _("Open inquiries only"),
        "empty": _("No conditions yet: every customer matches. Add a condition to narrow down."),
        "condition": _("Condition"),
        "group": _("Group"),
    }


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, ADD)
def segment_create(request):
    form = SegmentForm(request.POST or None, initial={"kind": SegmentKind.DYNAMIC})
    if request.method == "POST" and form.is_valid():
        segment = create_segment(**form.cleaned_data, created_by=request.user)
        messages.success(
            request,
            _("Segment %(name)s was saved with %(count)s members.")
            % {"name": segment.name, "count": segment.member_count},
        )
        return redirect("segments:segment-detail", pk=segment.pk)
    return render(request, "segments/builder/form.html", _builder_context(form, None))


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, CHANGE)
def segment_edit(request, pk: int):
    segment = get_object_or_404(Segment, pk=pk)
    saved_name = segment.name
    form = SegmentForm(request.POST or None, instance=segment)
    if request.method == "POST" and form.is_valid():
        segment = update_segment(segment=segment, **form.cleaned_data)
        messages.success(
            request,
            _("Segment %(name)s was saved with %(count)s members.")
            % {"name": segment.name, "count": segment.member_count},
        )
        return redirect("segments:segment-detail", pk=segment.pk)
    context = _builder_context(form, segment)
    context["saved_name"] = saved_name
    return render(request, "segments/builder/form.html", context)


def _placed(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    """The errors with ``where``: "Condition 2.1" for conditions.1.conditions.0 (numbered as
    the builder shows them), "Rules" for the tree as a whole."""
    placed = []
    for error in errors:
        numbers = [str(int(n) + 1) for n in re.findall(r"conditions\.(\d+)", error["path"])]
        where = _("Condition %(number)s") % {"number": ".".join(numbers)} if numbers else _("Rules")
        placed.append({**error, "where": where})
    return placed


@require_POST
@permission_required(VIEW, ADD)
def segment_preview(request):
    """The builder's live preview of the posted rules: count, sample and breakdowns, or the
    problems of the rules (also as data, for the script to show beside the conditions)."""
    tree, errors = parse_rules(request.POST.get("rules", ""))
    context: dict[str, Any] = {"rule_errors": _placed(errors)}
    if not errors:
        figures = live_preview(tree)
        context.update(
            count=figures["count"],
            sample=figures["sample"],
            breakdowns=[
                {"by": by, "title": BREAKDOWN_TITLES[by], "rows": figures["breakdowns"][by]}
                for by in BREAKDOWN_TITLES
            ],
        )
    return render(request, "segments/builder/_preview.html", context)


# --- A segment's page -------------------------------------------------------------------------


def _members_page(segment: Segment, user, after: int | None) -> tuple[list[Customer], int | None]:
    """One page of members by customer id (keyset: ``after`` is the last id shown)."""
    members = selectors.list_page_rows(
        Customer.objects.visible_to(user).filter(segment_memberships__segment=segment)
    ).order_by("id")
    if after is not None:
        members = members.filter(id__gt=after)
    rows = list(members[: MEMBERS_PAGE_SIZE + 1])
    next_after = rows[MEMBERS_PAGE_SIZE - 1].pk if len(rows) > MEMBERS_PAGE_SIZE else None
    run = ScoringRun.objects.latest_succeeded()
    return with_scores(rows[:MEMBERS_PAGE_SIZE], run=run), next_after


@require_GET
@permission_required(VIEW)
def segment_detail(request, pk: int):
    segment = get_object_or_404(Segment.objects.select_related("created_by"), pk=pk)
    after = request.GET.get("after", "")
    after_id = int(after) if after.isdigit() else None
    members, next_after = _members_page(segment, request.user, after_id)
    history = list(segment.sizes.order_by("-measured_at")[:HISTORY_ROWS])
    trend = Trend([size.size for size in reversed(history)], width=300, height=60)
    op = segment.rules.get("op", "and") if segment.rules else "and"
    context = {
        "segment": segment,
        "rules_top": _("Customers matching all of:")
        if op == "and"
        else _("Customers matching any of:"),
        "rule_lines": describe_rules(segment.rules),
        "members": members,
        "next_after": next_after,
        "is_first_page": after_id is None,
        "history": history,
        "trend": trend,
        "is_static": segment.kind == SegmentKind.STATIC,
    }
    return render(request, "segments/builder/detail.html", context)


@require_POST
@permission_required(VIEW, CHANGE)
def segment_refresh(request, pk: int):
    segment = get_object_or_404(Segment, pk=pk)
    if segment.kind == SegmentKind.STATIC:
        messages.error(request, _("A static segment keeps the members it was saved with."))
        return redirect("segments:segment-detail", pk=segment.pk)
    Segment.objects.filter(pk=segment.pk).update(refresh_requested_at=timezone.now())
    tasks.refresh_segment.delay_on_commit(segment.pk)
    messages.success(
        request,
        _("The members are being refreshed; reload the page in a moment to see them."),
    )
    return redirect("segments:segment-detail", pk=segment.pk)


@require_GET
@permission_required(VIEW, VIEW_CUSTOMER)
def segment_export(request, pk: int):
    """The segment's members (as of its last refresh) as CSV, streamed; cells a spreadsheet
    would run as formulas are neutralised by crm.exporting."""
    segment = get_object_or_404(Segment, pk=pk)
    members = Customer.objects.visible_to(request.user).filter(segment_memberships__segment=segment)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return csv_response(
        columns=customer_export_columns(),
        objects=selectors.export_rows(members),
        filename=f"segment-{segment.pk}-{stamp}",
    )


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, DELETE)
def segment_delete(request, pk: int):
    segment = get_object_or_404(Segment, pk=pk)
    if request.method == "POST":
        name = segment.name
        segment.delete()
        messages.success(request, _("Segment %(name)s was deleted.") % {"name": name})
        return redirect("segments:segment-list")
    return render(request, "segments/builder/confirm_delete.html", {"segment": segment})
