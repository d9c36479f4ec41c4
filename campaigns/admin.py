from django.contrib import admin

from campaigns.models import (
    BounceRecord,
    Campaign,
    Link,
    Message,
    Suppression,
    TrackingEvent,
    Variant,
)
from customers.admin import ReadOnlyLogAdmin


class VariantInline(admin.StackedInline):
    model = Variant
    extra = 0


class LinkInline(admin.TabularInline):
    model = Link
    extra = 0
    readonly_fields = ["url"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "segment", "status", "scheduled_at", "audience_size", "sent_count"]
    list_filter = ["status"]
    search_fields = ["name"]
    list_select_related = ["segment"]
    raw_id_fields = ["parent"]
    # Sending state is the sender's: changed only through campaigns.sending.
    readonly_fields = [
        "status",
        "started_at",
        "finished_at",
        "audience_size",
        "sent_count",
        "failed_count",
        "created_at",
        "updated_at",
    ]
    inlines = [VariantInline, LinkInline]


@admin.register(Message)
class MessageAdmin(ReadOnlyLogAdmin):
    list_display = ["id", "campaign", "email", "variant", "is_holdout", "status", "sent_at"]
    list_filter = ["status", "is_holdout", "opened_by_machine", "campaign"]
    search_fields = ["email", "smtp_message_id"]
    list_select_related = ["campaign", "variant"]
    raw_id_fields = ["customer"]
    # The list counts a campaign's messages; an estimate keeps a 1M-row table quick.
    show_full_result_count = False


@admin.register(TrackingEvent)
class TrackingEventAdmin(ReadOnlyLogAdmin):
    list_display = ["id", "kind", "message", "link", "occurred_at", "is_machine", "machine_reason"]
    list_filter = ["kind", "is_machine", "machine_reason"]
    date_hierarchy = "occurred_at"
    raw_id_fields = ["message", "link"]
    show_full_result_count = False


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email_hash", "reason", "created_at", "note"]
    list_filter = ["reason"]
    search_fields = ["email_hash"]
    raw_id_fields = ["source_message"]
    readonly_fields = ["created_at"]
    fieldsets = [(None, {"fields": ["email_hash", "reason", "note", "source_message"]})]
    # Removing an address from the list may break the law: it needs the delete permission
    # and stays a deliberate act in the admin.
    actions = None


@admin.register(BounceRecord)
class BounceRecordAdmin(ReadOnlyLogAdmin):
    list_display = ["email_hash", "kind", "occurred_at", "message"]
    list_filter = ["kind"]
    raw_id_fields = ["message"]
