from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from analytics.goals import analytics_today, create_goal, goal_errors, update_goal
from analytics.models import DailyRollup, Goal, RollupState
from analytics.rollups import mark_dirty


@admin.register(RollupState)
class RollupStateAdmin(admin.ModelAdmin):
    list_display = ["last_purchase_id", "built_at", "refreshed_at", "verified_at"]
    readonly_fields = list_display

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DailyRollup)
class DailyRollupAdmin(admin.ModelAdmin):
    """The daily figures, for checking; the bitmaps are not shown. "Recompute" marks days for
    the next refresh (after fixing purchases outside the app, for instance)."""

    list_display = ["day", "purchases", "revenue", "refreshed_at"]
    fields = list_display
    readonly_fields = list_display
    date_hierarchy = "day"
    actions = ["recompute"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Recompute at the next refresh"), permissions=["view"])
    def recompute(self, request, queryset):
        mark_dirty(dates=queryset.values_list("day", flat=True))
        self.message_user(request, _("The days will be recomputed within minutes."))


# --- Goals ------------------------------------------------------------------------------------


class GoalAdminForm(forms.ModelForm):
    """Targets in stored units here (rates and changes as fractions: 0.05 = 5%), checked by
    the same rules as the goal pages and the API."""

    class Meta:
        model = Goal
        fields = ["kpi", "target_kind", "target", "start", "end", "owner", "note"]
        help_texts = {
            "target": _("Rates and changes as fractions: 0.05 means 5 percent or 5 points.")
        }

    def clean(self):
        data = super().clean()
        needed = ("kpi", "target_kind", "target", "start", "end")
        if all(data.get(name) is not None for name in needed):
            errors = goal_errors(**{name: data[name] for name in needed}, today=analytics_today())
            for field, problems in errors.items():
                for code, message in problems:
                    self.add_error(field, forms.ValidationError(message, code=code))
        return data


@admin.register(Goal)
class GoalAdmin(admin.ModelAdmin):
    form = GoalAdminForm
    list_display = ["kpi", "start", "end", "target_kind", "target", "baseline", "owner"]
    list_filter = ["kpi", "target_kind"]
    readonly_fields = ["baseline", "created_by", "created_at", "updated_at"]
    date_hierarchy = "end"
    raw_id_fields = ["owner"]

    def save_model(self, request, obj, form, change):
        # Through the actions, so the baseline is frozen as on the goal pages.
        fields = {name: form.cleaned_data[name] for name in GoalAdminForm.Meta.fields}
        if change:
            saved = Goal.objects.get(pk=obj.pk)
            update_goal(goal=saved, **fields)
        else:
            saved = create_goal(**fields, created_by=request.user)
        obj.pk, obj.baseline = saved.pk, saved.baseline
