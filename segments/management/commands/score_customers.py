from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from segments.models import RfmLabel, RunStatus, RunTrigger
from segments.runs import ScoringAlreadyRunning, execute_scoring_run, request_scoring_run


def _as_of(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(
            _("--as-of must be a date, YYYY-MM-DD: %(value)s") % {"value": value}
        ) from None


class Command(BaseCommand):
    help = (
        "Score every customer with a completed purchase (RFM, decile, Pareto) as a new scoring "
        "run, in this process (or in a worker with --async), and print a summary. Exits with "
        "status 1 if a run is already in progress or the run fails."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of",
            metavar="YYYY-MM-DD",
            help="count recency up to this date (default: the day after the newest purchase)",
        )
        parser.add_argument(
            "--window-days",
            type=int,
            metavar="N",
            help="only purchases in the N days before --as-of (default: the settings)",
        )
        parser.add_argument(
            "--async",
            action="store_true",
            dest="in_worker",
            help="hand the run to a Celery worker and print its id",
        )

    def handle(self, *args, as_of, window_days, in_worker, **options):
        as_of = _as_of(as_of) if as_of else None
        if window_days is not None and window_days < 1:
            raise CommandError(_("--window-days must be a whole number of days, 1 or more."))
        try:
            run = request_scoring_run(
                trigger=RunTrigger.COMMAND,
                as_of=as_of,
                window_days=window_days,
                enqueue=in_worker,
            )
        except ScoringAlreadyRunning as error:
            raise CommandError(str(error)) from None
        if in_worker:
            self.stdout.write(_("Scoring run #%(id)s was handed to a worker.") % {"id": run.pk})
            return
        run = execute_scoring_run(run=run)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(
                _("Scoring run #%(id)s failed: %(error)s") % {"id": run.pk, "error": run.error}
            )
        self.stdout.write(
            _(
                "Scoring run #%(id)s as of %(as_of)s: %(customers)s customers scored, "
                "%(purchases)s purchases, revenue %(revenue)s, %(seconds).1f s."
            )
            % {
                "id": run.pk,
                "as_of": run.as_of.isoformat(),
                "customers": run.customers_scored,
                "purchases": run.purchases_counted,
                "revenue": run.revenue,
                "seconds": run.duration_seconds,
            }
        )
        labels = run.counts.get("rfm_label", {})
        for label in RfmLabel:
            self.stdout.write(f"  {label.value:<20} {labels.get(label.value, 0):>10}")
