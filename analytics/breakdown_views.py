"""The CSV download of each breakdown table of the dashboard (analytics.breakdown_tables),
for the same query string as the page (analytics.forms.DashboardFilterForm)."""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from analytics.breakdown_tables import breakdown_table
from analytics.forms import DashboardFilterForm
from crm import exporting
from crm.access import permission_required


@require_GET
@permission_required("analytics.view_dashboard")
def breakdown_csv(request, table: str):
    """The breakdown table ``table`` for the query's period and filters, as the page shows it."""
    form = DashboardFilterForm(request.GET or None)
    start, end = form.dates()
    found = breakdown_table(table, start=start, end=end, filters=form.filters())
    if found is None:
        raise Http404(_("No such table."))
    columns = [
        exporting.Column(str(header), lambda row, i=i: row[i])
        for i, header in enumerate(found.headers)
    ]
    return exporting.csv_response(
        columns=columns,
        objects=found.rows,
        filename=f"{table}-{start.isoformat()}-{end.isoformat()}",
    )
