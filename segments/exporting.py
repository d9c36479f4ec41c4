"""The scores of a run as CSV: for the ``export_scores`` command, the download on the RFM
page and the API. One row per scored customer in decile order (monetary descending, customer
id ascending), read with a server-side cursor and written in chunks, never all in memory.

Columns (a stable interface: other tools read this file): ``SCORE_COLUMNS``. rfm_label is
the code ("champions"), cumulative_share a fraction 0-1 with every digit of the stored float,
top20 1 or 0. Text cells that a spreadsheet would run as a formula are neutralised and the
file starts with a UTF-8 BOM for Excel (crm.exporting).
"""

from __future__ import annotations

from operator import itemgetter
from typing import TextIO

from crm.exporting import BOM, Column, csv_chunks
from segments.models import CustomerScore, ScoringRun

SCORE_COLUMNS = (
    "customer_external_id",
    "recency_days",
    "frequency",
    "monetary",
    "r",
    "f",
    "m",
    "rfm_code",
    "rfm_label",
    "decile",
    "cumulative_share",
    "pareto_class",
    "first_purchase_on",
    "last_purchase_on",
    "top20",
)
_FIELDS = ("customer__external_id", *SCORE_COLUMNS[1:])
_COLUMNS = [Column(name, itemgetter(i)) for i, name in enumerate(SCORE_COLUMNS)]
CHUNK_ROWS = 5000


def _rows(run: ScoringRun):
    return (
        CustomerScore.objects.filter(run=run)
        .order_by("decile", "-monetary", "customer_id")
        .values_list(*_FIELDS)
        .iterator(chunk_size=CHUNK_ROWS)
    )


class _Counted:
    def __init__(self, rows):
        self.rows = rows
        self.count = 0

    def __iter__(self):
        for row in self.rows:
            self.count += 1
            yield row


def iter_scores_csv(*, run: ScoringRun, bom: bool = True, _counted: _Counted | None = None):
    """The CSV text of the run's scores, header first, in chunks (for a streaming
    response)."""
    chunks = csv_chunks(_COLUMNS, _counted if _counted is not None else _rows(run))
    first = next(chunks)
    yield first if bom else first.removeprefix(BOM)
    yield from chunks


def write_scores_csv(*, run: ScoringRun, out: TextIO, bom: bool = True) -> int:
    """Write the run's scores as CSV text to ``out``; returns the number of data rows."""
    counted = _Counted(_rows(run))
    for chunk in iter_scores_csv(run=run, bom=bom, _counted=counted):
        out.write(chunk)
    return counted.count
