"""The analytics dashboard page and the CSV download of each of its tables.

Both read the filters from the query string (analytics.forms), so a view of the dashboard
is a link that can be shared, and a table's download carries the page's own query.
"""

from __future__ import annotations

import time

from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from analytics import dashboard, definitions
from analytics.forms import DashboardFilterForm
from analytics.kpis import refreshed_at
from crm import exporting
from crm.access import has_permissions, permission_required

VIEW_DASHBOARD = ("analytics.view_dashboard",)


def _form(request) -> DashboardFilterForm:
    return DashboardFilterForm(request.GET or None)


@require_GET
@permission_required(*VIEW_DASHBOARD)
def dashboard_page(request):
    form = _form(request)
    start, end = form.dates()
    filters = form.filters()
    began = time.perf_counter()
    figures = dashboard.build_dashboard(start=start, end=end, filters=filters, user=request.user)
    timings = {**figures["timings"], "figures": (time.perf_counter() - began) * 1000}
    query = request.GET.urlencode()
    context = {
        "form": form,
        "start": start,
        "end": end,
        "filtered": bool(filters),
        "figures": figures,
        "tables": {
            table.name: table for name in dashboard.SECTIONS for table in figures[name]["tables"]
        },
        "chart_data": dashboard.chart_data(figures),
        "figures_data": dashboard.figures_data(figures, start=start, end=end),
        "definitions": definitions,
        "refreshed_at": refreshed_at(),
        "query": query,
        "can_see_scores": has_permissions(
            request.user, ("segments.view_scoringrun", "segments.view_customerscore")
        ),
    }
    began = time.perf_counter()
    response = render(request, "analytics/dashboard.html", context)
    timings["render"] = (time.perf_counter() - began) * 1000
    # Where the server's time went (each part's, all figures', the template's), for the
    # browser's developer tools and the benchmark.
    response["Server-Timing"] = ", ".join(f"{name};dur={ms:.1f}" for name, ms in timings.items())
    return response


@require_GET
@permission_required(*VIEW_DASHBOARD)
def dashboard_csv(request, table: str):
    """The table ``table`` of the dashboard for the query's filters, as the page shows it."""
    form = _form(request)
    start, end = form.dates()
    found = dashboard.table_for(table, start=start, end=end, filters=form.filters())
    if found is None:
        raise Http404(_("No such table."))
    columns = [
        exporting.Column(str(column.header), lambda row, i=i: row[i])
        for i, column in enumerate(found.columns)
    ]
    return exporting.csv_response(
        columns=columns,
        objects=found.csv_rows(),
        filename=f"{table}-{start.isoformat()}-{end.isoformat()}",
    )
