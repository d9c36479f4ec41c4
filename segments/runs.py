"""Scoring runs: request one (one at a time), execute it (aggregate -> score -> write), keep
the history, fail runs whose worker died, and start the nightly run.

A run's score rows and its switch to "succeeded" are committed together, so pages always see
the previous complete run until the next one is complete, and a failed run leaves no rows.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from segments.aggregation import customer_aggregates
from segments.models import (
    CustomerScore,
    ParetoClass,
    RfmLabel,
    RunPhase,
    RunStatus,
    RunTrigger,
    ScoringRun,
    ScoringSettings,
)
from segments.scoring import ScoringConfig, score_customers

logger = logging.getLogger(__name__)

# A running run that has not moved for this long lost its worker (a 1M-customer run takes
# well under a minute between phases).
STALE_AFTER = timedelta(minutes=30)
# A pending run that no worker picked up for this long lost its message.
LOST_AFTER = timedelta(hours=6)
BULK_CREATE_BATCH = 2000


class ScoringAlreadyRunning(Exception):
    """Another run is pending or running; ``run`` is that run."""

    def __init__(self, run: ScoringRun | None):
        self.run = run
        super().__init__(
            _("Scoring run #%(id)s is still in progress.") % {"id": run.pk if run else "?"}
        )


@transaction.atomic
def request_scoring_run(
    *,
    trigger: str,
    requested_by=None,
    as_of: date | None = None,
    window_days: int | None = None,
    enqueue: bool = True,
) -> ScoringRun:
    """Create a pending run with the current settings and hand it to a worker once committed
    (``enqueue=False``: the caller executes it in-process). Raises ``ScoringAlreadyRunning``
    while another run is pending or running."""
    ScoringSettings.load()
    # Locking the settings row serialises requests: two clicks never create two runs.
    scoring_settings = ScoringSettings.objects.select_for_update().get(id=1)
    active = ScoringRun.objects.active().order_by("created_at").first()
    if active is not None:
        raise ScoringAlreadyRunning(active)
    run = ScoringRun.objects.create(
        trigger=trigger,
        requested_by=requested_by,
        as_of=as_of,
        window_days=window_days if window_days is not None else scoring_settings.window_days,
        settings=_settings_snapshot(scoring_settings),
    )
    if enqueue:
        from segments.tasks import run_scoring

        transaction.on_commit(lambda: run_scoring.delay(run.pk))
    return run


def _settings_snapshot(scoring_settings: ScoringSettings) -> dict:
    """The settings the run scores with, as stored (checked when the run executes, so a bad
    threshold list shows as a failed run with its reason rather than as a refused click)."""
    return {
        "r_mode": scoring_settings.r_mode,
        "r_thresholds": list(scoring_settings.r_thresholds or []),
        "f_mode": scoring_settings.f_mode,
        "f_thresholds": list(scoring_settings.f_thresholds or []),
        "m_mode": scoring_settings.m_mode,
        "m_thresholds": list(scoring_settings.m_thresholds or []),
        "pareto_a_share": float(Decimal(scoring_settings.pareto_a_share)),
        "pareto_b_share": float(Decimal(scoring_settings.pareto_b_share)),
        "window_days": scoring_settings.window_days,
    }


def _set_phase(run: ScoringRun, phase: str, progress: int) -> None:
    # A statement of its own (autocommit): the run page polls it while we work.
    now = timezone.now()
    ScoringRun.objects.filter(pk=run.pk).update(phase=phase, progress=progress, progressed_at=now)
    run.phase, run.progress, run.progressed_at = phase, progress, now


def execute_scoring_run(*, run: ScoringRun) -> ScoringRun:
    """Do the run's work in this process. Only the first caller of a pending run does
    anything (a task delivered twice returns the run as it is). Failures are recorded on the
    run (status failed, the error) and leave the previous scores as they were."""
    now = timezone.now()
    claimed = ScoringRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=now, progressed_at=now, progress=0
    )
    run.refresh_from_db()
    if not claimed:
        return run
    started = time.monotonic()
    seconds: dict[str, float] = {}
    try:
        config = ScoringConfig(**run.settings)
        _set_phase(run, RunPhase.AGGREGATING, 5)
        aggregates, as_of = customer_aggregates(as_of=run.as_of, window_days=run.window_days)
        seconds["aggregate"] = time.monotonic() - started
        _set_phase(run, RunPhase.SCORING, 45)
        scored = score_customers(aggregates, config=config)
        del aggregates
        seconds["score"] = time.monotonic() - started - sum(seconds.values())
        _set_phase(run, RunPhase.WRITING, 60)
        with transaction.atomic():
            write_scores(run=run, scored=scored)
            summary = summarise(scored)
            finished = timezone.now()
            ScoringRun.objects.filter(pk=run.pk).update(
                status=RunStatus.SUCCEEDED,
                as_of=as_of,
                finished_at=finished,
                duration_seconds=time.monotonic() - started,
                progress=100,
                phase="",
                progressed_at=finished,
                **summary,
            )
            # robust: the scores are committed by then, whatever happens to the follow-ups
            # (logged), the run stays succeeded.
            transaction.on_commit(lambda: _after_success(run_id=run.pk), robust=True)
        seconds["write"] = time.monotonic() - started - sum(seconds.values())
        logger.info(
            "Scoring run %s: %s customers in %.1f s (%s)",
            run.pk,
            summary["customers_scored"],
            time.monotonic() - started,
            ", ".join(f"{phase} {value:.2f} s" for phase, value in seconds.items()),
            extra={"phase_seconds": seconds},
        )
    except Exception as error:
        logger.exception("Scoring run %s failed", run.pk)
        finished = timezone.now()
        ScoringRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            finished_at=finished,
            duration_seconds=time.monotonic() - started,
            progressed_at=finished,
            error=f"{type(error).__name__}: {error}"[:2000],
        )
    run.refresh_from_db()
    return run


def _after_success(*, run_id: int) -> None:
    prune_score_history()
    from segments.tasks import refresh_dynamic_segments, warm_score_reports

    refresh_dynamic_segments.delay(run_id)
    warm_score_reports.delay(run_id)


def summarise(scored: pd.DataFrame) -> dict:
    """The run's summary fields: customers, purchases, revenue and the customers per RFM
    label, Pareto class and decile (every key present, zero included)."""
    labels = scored["rfm_label"].value_counts()
    classes = scored["pareto_class"].value_counts()
    deciles = scored["decile"].value_counts()
    cents = int(np.rint(scored["monetary"].to_numpy() * 100).astype(np.int64).sum())
    return {
        "customers_scored": len(scored),
        "purchases_counted": int(scored["frequency"].sum()),
        "revenue": Decimal(cents).scaleb(-2),
        "counts": {
            "rfm_label": {label: int(labels.get(label, 0)) for label in RfmLabel.values},
            "pareto_class": {cls: int(classes.get(cls, 0)) for cls in ParetoClass.values},
            "decile": {str(d): int(deciles.get(d, 0)) for d in range(1, 11)},
        },
    }


# --- Writing the score rows ---------------------------------------------------------------

SCORE_TABLE_COLUMNS = (
    "run_id",
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "first_purchase_on",
    "last_purchase_on",
    "r",
    "f",
    "m",
    "rfm_code",
    "rfm_label",
    "decile",
    "cumulative_share",
    "pareto_class",
    "top20",
)


def write_scores(*, run: ScoringRun, scored: pd.DataFrame) -> int:
    """Insert the run's score rows (inside the caller's transaction); returns the count."""
    if scored.empty:
        return 0
    if connection.vendor == "postgresql":
        return _copy_scores(run=run, scored=scored)
    objects = (
        CustomerScore(
            run_id=run.pk,
            customer_id=row.customer_id,
            recency_days=row.recency_days,
            frequency=row.frequency,
            monetary=Decimal(repr(row.monetary)).quantize(Decimal("0.01")),
            first_purchase_on=pd.Timestamp(row.first_purchase_on).date(),
            last_purchase_on=pd.Timestamp(row.last_purchase_on).date(),
            r=row.r,
            f=row.f,
            m=row.m,
            rfm_code=row.rfm_code,
            rfm_label=row.rfm_label,
            decile=row.decile,
            cumulative_share=row.cumulative_share,
            pareto_class=row.pareto_class,
            top20=bool(row.top20),
        )
        for row in scored.itertuples(index=False)
    )
    written = 0
    batch = []
    for score in objects:
        batch.append(score)
        if len(batch) == BULK_CREATE_BATCH:
            CustomerScore.objects.bulk_create(batch)
            written += len(batch)
            batch = []
    CustomerScore.objects.bulk_create(batch)
    return written + len(batch)


def _day_texts(days: np.ndarray) -> list[str]:
    """ISO texts of datetime64 days: formatted once per distinct day (a few thousand)."""
    numbers = days.astype("datetime64[D]").astype(np.int64)
    low = int(numbers.min())
    span = np.arange(low, int(numbers.max()) + 1).astype("datetime64[D]")
    texts = np.asarray(np.datetime_as_string(span).tolist(), dtype=object)
    return texts[numbers - low].tolist()


def score_rows_text(*, run_id: int, scored: pd.DataFrame) -> str:
    """The rows as COPY text (tab-separated). Formatting is the slow part of the write
    (``DataFrame.to_csv``: ~5 s per million rows), so: integers and floats through Python's
    own ``str``/``repr`` (far faster than numpy's; ``repr`` gives the shortest text that
    reads back as the same float, which for cent amounts is their exact decimal), dates
    formatted once per distinct day, and the columns that follow from a few small numbers
    looked up as one pre-formatted piece: (r, f, m) gives r, f, m, rfm_code and rfm_label;
    the decile gives itself; (decile, Pareto class) gives pareto_class and top20."""
    if scored.empty:
        return ""
    r = scored["r"].to_numpy().astype(np.int64)
    f = scored["f"].to_numpy().astype(np.int64)
    m = scored["m"].to_numpy().astype(np.int64)
    keys = r * 36 + f * 6 + m
    labels = scored["rfm_label"].to_numpy()
    rfm_pieces = np.empty(6 * 6 * 6, dtype=object)
    unique_keys, first_index = np.unique(keys, return_index=True)
    for key, index in zip(unique_keys.tolist(), first_index.tolist(), strict=True):
        rr, ff, mm = key // 36, key // 6 % 6, key % 6
        rfm_pieces[key] = f"{rr}\t{ff}\t{mm}\t{rr}{ff}{mm}\t{labels[index]}"
    decile = scored["decile"].to_numpy().astype(np.int64)
    pareto = scored["pareto_class"].to_numpy()
    class_index = (pareto == ParetoClass.B.value) + 2 * (pareto == ParetoClass.C.value)
    tail_pieces = np.array(
        [
            f"{cls}\t{'t' if d <= 2 else 'f'}"
            for d in range(11)
            for cls in (ParetoClass.A.value, ParetoClass.B.value, ParetoClass.C.value)
        ],
        dtype=object,
    )
    decile_texts = np.array([str(d) for d in range(11)], dtype=object)
    columns = [
        scored["customer_id"].to_numpy().tolist(),
        scored["recency_days"].to_numpy().tolist(),
        scored["frequency"].to_numpy().tolist(),
        list(map(repr, scored["monetary"].to_numpy().tolist())),
        _day_texts(scored["first_purchase_on"].to_numpy()),
        _day_texts(scored["last_purchase_on"].to_numpy()),
        rfm_pieces[keys].tolist(),
        decile_texts[decile].tolist(),
        list(map(repr, scored["cumulative_share"].to_numpy().tolist())),
        tail_pieces[decile * 3 + class_index].tolist(),
    ]
    # One f-string per row: cheaper than joining a list per row.
    return "".join(
        [
            f"{run_id}\t{c}\t{rec}\t{fr}\t{mon}\t{first}\t{last}\t{rfm}\t{dec}\t{share}\t{tail}\n"
            for c, rec, fr, mon, first, last, rfm, dec, share, tail in zip(*columns, strict=True)
        ]
    )


COPY_CHUNK_ROWS = 100_000


class _ChunkReader:
    """A file for ``copy_expert`` that formats the rows chunk by chunk as COPY reads them,
    so the text of a million rows never sits in memory at once (psycopg2 sends whatever
    ``read`` returns)."""

    def __init__(self, *, run_id: int, scored: pd.DataFrame):
        # In customer id order, the (run, customer) and (customer, run) indexes grow at
        # their ends instead of splitting pages all over (decile order is random in ids).
        order = np.argsort(scored["customer_id"].to_numpy(), kind="stable")
        self.chunks = (
            score_rows_text(
                run_id=run_id, scored=scored.iloc[order[start : start + COPY_CHUNK_ROWS]]
            ).encode()
            for start in range(0, len(scored), COPY_CHUNK_ROWS)
        )

    def read(self, size: int = -1) -> bytes:
        return next(self.chunks, b"")


def _copy_scores(*, run: ScoringRun, scored: pd.DataFrame) -> int:
    table = CustomerScore._meta.db_table
    with connection.cursor() as cursor:
        # Derived data in a run that is also marked succeeded in this transaction: if the
        # server crashed before the commit reached the disk, run and rows are lost together
        # (the run is then failed as stale). Not waiting for that flush saves a WAL sync.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.copy_expert(
            f"COPY {table} ({', '.join(SCORE_TABLE_COLUMNS)}) FROM STDIN",
            _ChunkReader(run_id=run.pk, scored=scored),
        )
    return len(scored)


# --- History, stale runs, the nightly run -------------------------------------------------


def prune_score_history(*, keep: int | None = None) -> int:
    """Delete the score rows of succeeded runs older than the latest ``keep``
    (settings.SCORING_KEEP_RUNS); the runs themselves stay with their summary. Returns the
    number of runs whose rows went."""
    keep = settings.SCORING_KEEP_RUNS if keep is None else keep
    kept = list(
        ScoringRun.objects.succeeded()
        .order_by("-finished_at", "-id")
        .values_list("pk", flat=True)[:keep]
    )
    old = list(
        ScoringRun.objects.filter(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
        .exclude(pk__in=kept)
        .filter(Exists(CustomerScore.objects.filter(run=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )
    if old:
        CustomerScore.objects.filter(run_id__in=old)._raw_delete(CustomerScore.objects.db)
    return len(old)


def latest_scores() -> QuerySet[CustomerScore]:
    """The score rows of the latest succeeded run (none if no run has succeeded)."""
    run = ScoringRun.objects.latest_succeeded()
    if run is None:
        return CustomerScore.objects.none()
    return CustomerScore.objects.filter(run=run)


def fail_stale_runs(*, now: datetime | None = None) -> int:
    """Mark failed the runs whose worker died: running without progress for STALE_AFTER, or
    pending unclaimed for LOST_AFTER. Returns how many."""
    now = now or timezone.now()
    return ScoringRun.objects.filter(
        Q(status=RunStatus.RUNNING, progressed_at__lt=now - STALE_AFTER)
        | Q(status=RunStatus.PENDING, created_at__lt=now - LOST_AFTER)
    ).update(
        status=RunStatus.FAILED,
        finished_at=now,
        error=str(_("The worker stopped before the run finished.")),
    )


def start_nightly_run(*, now: datetime | None = None) -> ScoringRun | None:
    """Start tonight's run if it is enabled, due (local time past ``nightly_at``) and not
    started yet today. Two beats at once start one run: the night is claimed by moving
    ``last_nightly_date`` with a conditional update."""
    local = timezone.localtime(now or timezone.now(), timezone.get_default_timezone())
    ScoringSettings.load()
    scoring_settings = ScoringSettings.objects.get(id=1)  # nightly_at as a time, not text
    if not scoring_settings.nightly_enabled or local.time() < scoring_settings.nightly_at:
        return None
    today = local.date()
    with transaction.atomic():
        claimed = (
            ScoringSettings.objects.filter(id=1, nightly_enabled=True)
            .filter(Q(last_nightly_date__isnull=True) | Q(last_nightly_date__lt=today))
            .update(last_nightly_date=today)
        )
        if not claimed:
            return None
        try:
            return request_scoring_run(trigger=RunTrigger.NIGHTLY)
        except ScoringAlreadyRunning as error:
            # A run started by hand is under way: its scores are tonight's.
            logger.info("Nightly scoring skipped: run %s is active", error.run.pk)
            return None
