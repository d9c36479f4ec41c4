"""Pages for CSV imports: past imports, a new upload, one import's progress and errors."""

from __future__ import annotations

import csv
from pathlib import Path

from django import forms
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect
from django.utils.http import content_disposition_header
from django.utils.translation import gettext_lazy as _
from django.views.generic import DetailView, FormView, ListView
from django.views.generic.base import View
from django.views.generic.detail import SingleObjectMixin

from crm.access import RoleRequiredMixin
from customers.importing import (
    CUSTOMER_COLUMNS,
    MAX_FILE_BYTES,
    PURCHASE_COLUMNS,
    ErrorCsv,
    error_report_name,
    importable_kinds,
    live_progress,
    start_import,
    visible_import_jobs,
)
from customers.models import ImportKind, ImportStatus

# Enough to see what went wrong; the downloadable report has every error.
ERRORS_SHOWN = 100


class ImportForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file contains"))
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("UTF-8 or Shift_JIS (as Excel saves it), with a header row."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    keep_valid_rows = forms.BooleanField(
        label=_("Import the valid rows even if some rows have errors"),
        required=False,
        help_text=_("Otherwise nothing is imported until every row is correct."),
    )

    def __init__(self, *args, kinds: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(kind, ImportKind(kind).label) for kind in kinds]

    def clean_file(self):
        file = self.cleaned_data["file"]
        if Path(file.name).suffix.lower() != ".csv":
            raise forms.ValidationError(_("Choose a .csv file (in Excel: Save as → CSV)."))
        if file.size > MAX_FILE_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(max)s GB; split it or use the import command.")
                % {"max": MAX_FILE_BYTES // 1024**3}
            )
        return file


class ImportAccessMixin(RoleRequiredMixin):
    """Open to whoever may run an import of some kind; each page shows only those kinds."""

    permission_required = ()

    def has_permission(self) -> bool:
        return super().has_permission() and bool(importable_kinds(self.request.user))

    def get_queryset(self):
        return visible_import_jobs(self.request.user)


class ImportListView(ImportAccessMixin, ListView):
    template_name = "customers/imports/list.html"
    context_object_name = "jobs"
    paginate_by = 25


class ImportCreateView(ImportAccessMixin, FormView):
    template_name = "customers/imports/new.html"
    form_class = ImportForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "kinds": importable_kinds(self.request.user)}

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "customer_columns": CUSTOMER_COLUMNS,
            "purchase_columns": PURCHASE_COLUMNS,
        }

    def form_valid(self, form):
        job = start_import(
            kind=form.cleaned_data["kind"],
            file=form.cleaned_data["file"],
            keep_valid_rows=form.cleaned_data["keep_valid_rows"],
            user=self.request.user,
        )
        return redirect("customers:import-detail", pk=job.pk)


class ImportDetailView(ImportAccessMixin, DetailView):
    template_name = "customers/imports/detail.html"
    context_object_name = "job"

    def get_object(self, queryset=None):
        return live_progress(super().get_object(queryset))

    def get_context_data(self, **kwargs):
        job = self.object
        return {
            **super().get_context_data(**kwargs),
            "active": job.status in (ImportStatus.QUEUED, ImportStatus.RUNNING),
            "errors_shown": job.errors[:ERRORS_SHOWN],
        }

    def get_template_names(self):
        # While the import runs, htmx polls for the status part alone.
        if self.request.htmx and not self.request.htmx.history_restore_request:
            return ["customers/imports/_status.html"]
        return [self.template_name]


class ImportErrorsView(ImportAccessMixin, SingleObjectMixin, View):
    """The error report as CSV (UTF-8 with a BOM, so Excel reads the Japanese)."""

    def get(self, request, *args, **kwargs):
        job = self.get_object()
        filename = f"{Path(job.file_name).stem or 'import'}-errors.csv"
        name = error_report_name(job)
        if default_storage.exists(name):
            return FileResponse(
                default_storage.open(name, "rb"),
                as_attachment=True,
                filename=filename,
                content_type="text/csv; charset=utf-8",
            )
        # No full report (no row errors, or a command-line import): the errors the job kept.
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response.write("\ufeff")
        csv.writer(response).writerows(ErrorCsv.rows(job.errors))
        return response
