"""Pages of the scores: the RFM overview of a scoring run (R×F grid, labels, deciles, Pareto
curve, migration since an earlier run), its CSV export, and the scoring runs with their
progress and the "Run scoring now" button.

Each view checks access, reads its input, calls segments.reports / segments.runs /
segments.exporting and renders the result. Sales staff see everything here; starting a run
takes ``segments.run_scoring`` (marketers and admins).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from crm.access import has_permissions, permission_required
from segments import reports
from segments.exporting import iter_scores_csv
from segments.models import RunTrigger, ScoringRun
from segments.runs import ScoringAlreadyRunning, request_scoring_run
from segments.scoring import rfm_label

VIEW_SCORES = ("segments.view_scoringrun", "segments.view_customerscore")
VIEW_RUNS = ("segments.view_scoringrun",)
RUN_SCORING = ("segments.view_scoringrun", "segments.run_scoring")
# Runs offered in the pickers of the RFM page: enough to compare with several months back.
RUN_CHOICES = 50
RUNS_PER_PAGE = 25


def _is_partial(request) -> bool:
    """An htmx request for a fragment (a history restore needs the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def _run_from_query(request, key: str) -> ScoringRun | None:
    """The run named by ``?<key>=ID``; None when the parameter is absent. Anything else than
    the id of a succeeded run whose scores are kept is a 404."""
    raw = request.GET.get(key, "")
    if not raw:
        return None
    if not raw.isdigit():
        raise Http404
    return get_object_or_404(reports.runs_with_scores(), pk=int(raw))


def _can_run(user) -> bool:
    return has_permissions(user, RUN_SCORING)


def label_legend() -> list[dict]:
    """The label grid of segments.scoring as rows R 5..1 by FM 1..5, with definitions."""
    rows = []
    for r in reversed(reports.SCORES):
        labels = [rfm_label(r, fm) for fm in reports.SCORES]
        cells = [
            {
                "fm": fm,
                "label": label.value,
                "name": label.label,
                "definition": reports.LABEL_DEFINITIONS[label],
            }
            for fm, label in zip(reports.SCORES, labels, strict=True)
        ]
        rows.append({"r": r, "cells": cells})
    return rows


@require_GET
@permission_required(*VIEW_SCORES)
def rfm_overview(request):
    """The RFM page of the latest succeeded run, or of ``?run=ID``; the migration matrix
    compares with ``?before=ID`` (default: the succeeded run before it)."""
    run = _run_from_query(request, "run") or ScoringRun.objects.latest_succeeded()
    active = ScoringRun.objects.active().order_by("-created_at", "-id").first()
    context = {"run": run, "active_run": active, "can_run": _can_run(request.user)}
    if run is None:
        return render(request, "segments/scores/overview.html", context)
    before = _run_from_query(request, "before") or reports.previous_run(run=run)
    if before is not None and before.pk == run.pk:
        before = reports.previous_run(run=run)
    grid = reports.cached(reports.rf_grid, run=run)
    pareto = reports.cached(reports.pareto_curve, run=run)
    deciles = reports.cached(reports.decile_table, run=run)
    context |= {
        "grid": grid,
        "labels": reports.cached(reports.label_distribution, run=run),
        "legend": label_legend(),
        "deciles": deciles,
        "pareto": pareto,
        "chart_data": {
            "deciles": {
                "labels": [str(row["decile"]) for row in deciles],
                "revenue": [float(row["revenue"]) for row in deciles],
                "share": [row["share"] for row in deciles],
            },
            "pareto": {
                "x": [point["customer_share"] for point in pareto["points"]],
                "y": [point["revenue_share"] for point in pareto["points"]],
                "top20": [pareto["top20_customer_share"], pareto["top20_revenue_share"]],
            },
            "text": {
                "revenue": _("Revenue"),
                "decile": _("Decile"),
                "customers": _("Share of customers"),
                "cumulative": _("Cumulative share of revenue"),
                "equality": _("Equal shares"),
                "top20": _("Top 20% mark"),
            },
        },
        "before": before,
        "migration": (
            reports.cached(reports.migration_matrix, before=before, after=run) if before else None
        ),
        "runs": reports.runs_with_scores().order_by("-finished_at", "-id")[:RUN_CHOICES],
    }
    return render(request, "segments/scores/overview.html", context)


@require_GET
@permission_required(*VIEW_SCORES)
def export_scores(request):
    """Every score of the latest succeeded run (or ``?run=ID``) as CSV, streamed."""
    run = _run_from_query(request, "run") or ScoringRun.objects.latest_succeeded()
    if run is None:
        messages.error(request, _("There are no scores to export yet: run scoring first."))
        return redirect("segments:rfm")
    response = StreamingHttpResponse(
        iter_scores_csv(run=run), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(
        True, f"scores-run-{run.pk}-{run.as_of:%Y%m%d}.csv" if run.as_of else f"scores-{run.pk}.csv"
    )
    return response


@require_GET
@permission_required(*VIEW_RUNS)
def run_list(request):
    page = Paginator(ScoringRun.objects.select_related("requested_by"), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "runs": page.object_list,
        "page_obj": page,
        "paginator": page.paginator,
        "is_paginated": page.has_other_pages(),
        "can_run": _can_run(request.user),
        "any_active": ScoringRun.objects.active().exists(),
    }
    return render(request, "segments/scores/run_list.html", context)


@require_GET
@permission_required(*VIEW_RUNS)
def run_detail(request, pk: int):
    """One run; with htmx only its status block (polled every 2 s while the run is active)."""
    run = get_object_or_404(ScoringRun.objects.select_related("requested_by"), pk=pk)
    context = {"run": run, "can_run": _can_run(request.user)}
    if _is_partial(request):
        fragment = "_run_row" if request.GET.get("fragment") == "row" else "_run_status"
        return render(request, f"segments/scores/{fragment}.html", context)
    return render(request, "segments/scores/run_detail.html", context)


@require_POST
@permission_required(*RUN_SCORING)
def run_start(request):
    """Start a scoring run now (in a worker); refused while another one is active."""
    try:
        run = request_scoring_run(trigger=RunTrigger.MANUAL, requested_by=request.user)
    except ScoringAlreadyRunning as busy:
        messages.warning(
            request,
            _("A scoring run is already in progress; a new one can start when it has finished."),
        )
        if busy.run is not None:
            return redirect("segments:scoring-run", pk=busy.run.pk)
        return redirect("segments:scoring-runs")
    messages.success(
        request,
        _("Scoring run #%(id)s was started; this page shows its progress.") % {"id": run.pk},
    )
    return redirect("segments:scoring-run", pk=run.pk)
