from django import forms
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from segments.models import CustomerScore, ScoringRun, ScoringSettings, Segment
from segments.rules import RuleError, validate_rules
from segments.scoring import ScoringConfig, ScoringConfigError


class ScoringSettingsForm(forms.ModelForm):
    class Meta:
        model = ScoringSettings
        fields = [
            "r_mode",
            "r_thresholds",
            "f_mode",
            "f_thresholds",
            "m_mode",
            "m_thresholds",
            "window_days",
            "pareto_a_share",
            "pareto_b_share",
            "nightly_enabled",
            "nightly_at",
        ]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            ScoringConfig.from_settings(ScoringSettings(**data))
        except ScoringConfigError as error:
            for field, message in error.errors.items():
                self.add_error(field, message)
        return data


@admin.register(ScoringSettings)
class ScoringSettingsAdmin(admin.ModelAdmin):
    """The one settings row: the list goes straight to it, and it is never added or
    deleted (every run copies it into ScoringRun.settings)."""

    form = ScoringSettingsForm
    readonly_fields = ["last_nightly_date", "updated_at"]
    fieldsets = [
        (_("Scores"), {"fields": [("r_mode", "r_thresholds"), ("f_mode", "f_thresholds")]}),
        (None, {"fields": [("m_mode", "m_thresholds"), "window_days"]}),
        (_("Pareto classes"), {"fields": [("pareto_a_share", "pareto_b_share")]}),
        (_("Nightly run"), {"fields": ["nightly_enabled", "nightly_at", "last_nightly_date"]}),
        (None, {"fields": ["updated_at"]}),
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        ScoringSettings.load()
        return HttpResponseRedirect(reverse("admin:segments_scoringsettings_change", args=[1]))


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    """Runs are started from the RFM page, the API or the command and written by the worker:
    here they are only read (deleting one would load its million score rows)."""

    list_display = [
        "id",
        "status",
        "trigger",
        "as_of",
        "window_days",
        "customers_scored",
        "purchases_counted",
        "revenue",
        "duration_seconds",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger"]
    list_select_related = ["requested_by"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in ScoringRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CustomerScore)
class CustomerScoreAdmin(admin.ModelAdmin):
    list_display = [
        "customer",
        "run",
        "rfm_code",
        "rfm_label",
        "recency_days",
        "frequency",
        "monetary",
        "decile",
        "pareto_class",
    ]
    list_filter = ["run", "rfm_label", "pareto_class", "decile"]
    list_select_related = ["customer"]
    search_fields = ["customer__external_id"]
    show_full_result_count = False
    ordering = ["decile", "-monetary", "customer_id"]

    def changelist_view(self, request, extra_context=None):
        # Without a run, the list would span every kept run (millions of rows): show the
        # latest succeeded run's scores unless another run is chosen.
        if "run__id__exact" not in request.GET:
            latest = ScoringRun.objects.latest_succeeded()
            if latest is not None:
                query = request.GET.copy()
                query["run__id__exact"] = str(latest.pk)
                return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, extra_context)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in CustomerScore._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["name", "description", "kind", "rules", "created_by"]

    def clean_rules(self):
        try:
            return validate_rules(self.cleaned_data["rules"])
        except RuleError as error:
            raise forms.ValidationError(
                [
                    f"{e['path']}: {e['message']}" if e["path"] else e["message"]
                    for e in error.errors
                ]
            ) from None


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name", "kind", "member_count", "refreshed_at", "created_by", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    list_select_related = ["created_by"]
    readonly_fields = ["member_count", "refreshed_at", "created_at", "updated_at"]
    raw_id_fields = ["created_by"]
