from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from segments.exporting import write_scores_csv
from segments.models import RunStatus, ScoringRun


class Command(BaseCommand):
    help = (
        "Write the scores of the latest succeeded scoring run (or --run ID) as CSV to FILE "
        "('-' for standard output)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the CSV file to write, or - for standard output")
        parser.add_argument("--run", type=int, metavar="ID", help="a succeeded run's id")

    def handle(self, *args, file: str, run: int | None, **options):
        if run is None:
            scoring_run = ScoringRun.objects.latest_succeeded()
            if scoring_run is None:
                raise CommandError(_("No scoring run has succeeded yet: run score_customers."))
        else:
            scoring_run = ScoringRun.objects.filter(pk=run, status=RunStatus.SUCCEEDED).first()
            if scoring_run is None:
                raise CommandError(_("No succeeded scoring run has the id %(id)s.") % {"id": run})
        if file == "-":
            self.stdout.ending = ""  # the CSV brings its own line ends
            write_scores_csv(run=scoring_run, out=self.stdout, bom=False)
        else:
            try:
                with open(file, "w", encoding="utf-8", newline="") as out:
                    rows = write_scores_csv(run=scoring_run, out=out)
            except OSError as error:
                raise CommandError(
                    _("Cannot write %(file)s: %(error)s")
                    % {"file": error.filename, "error": error.strerror}
                ) from None
            self.stdout.write(
                _("%(rows)s scores of run #%(id)s written to %(file)s.")
                % {"rows": rows, "id": scoring_run.pk, "file": file}
            )
