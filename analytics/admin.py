from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from analytics.models import DailyRollup, RollupState
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
