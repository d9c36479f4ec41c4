from django.contrib import admin
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from customers.freshness import days_changed, local_days, purchases_changed
from customers.models import (
    ConsentRecord,
    Customer,
    CustomerTag,
    ErasureLog,
    ImportJob,
    Interaction,
    MergeLog,
    PersonalDataExport,
    Product,
    Purchase,
    PurchaseItem,
    SupportTicket,
    Tag,
    TicketReply,
)


class CustomerTagInline(admin.TabularInline):
    # Customer.tags has an explicit through model (for its indexes), which the admin does not
    # edit as a plain many-to-many field.
    model = CustomerTag
    extra = 0
    autocomplete_fields = ["tag"]
    verbose_name = _("tag")
    verbose_name_plural = _("tags")


class ConsentRecordInline(admin.TabularInline):
    model = ConsentRecord
    extra = 0
    can_delete = False
    readonly_fields = ["opted_in", "recorded_at", "source", "form", "recorded_by"]

    def has_add_permission(self, request, obj=None):
        return False  # the legal record is written through customers.consent only


@admin.register(Customer)
class CustomerAdmin(SimpleHistoryAdmin):
    list_display = [
        "external_id",
        "display_name",
        "kana_name",
        "email",
        "prefecture",
        "channel",
        "email_opt_in",
        "owner",
        "created_at",
    ]
    list_filter = ["prefecture", "channel", "email_opt_in", "gender", "tags"]
    search_fields = ["external_id", "email", "phone", "family_name", "given_name"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["email_opt_in", "email_opt_in_at", "erased_at", "created_at", "updated_at"]
    inlines = [CustomerTagInline, ConsentRecordInline]
    show_full_result_count = False  # a COUNT(*) over a million rows on every page is waste

    # Deleting a customer deletes their purchases: the analytics recompute those days. In a
    # transaction, so that the days are marked after the deletion commits (the list's delete
    # action runs without one).
    @transaction.atomic
    def delete_model(self, request, obj):
        purchases_changed(Purchase.objects.filter(customer=obj))
        super().delete_model(request, obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        purchases_changed(Purchase.objects.filter(customer__in=queryset))
        super().delete_queryset(request, queryset)

    @admin.display(description=_("name"))
    def display_name(self, customer):
        return customer.display_name

    @admin.display(description=_("kana"))
    def kana_name(self, customer):
        return customer.kana_name


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    list_display = ["customer", "opted_in", "recorded_at", "source", "form", "recorded_by"]
    list_filter = ["opted_in", "source"]
    raw_id_fields = ["customer"]
    readonly_fields = [f.name for f in ConsentRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "category", "price"]
    list_filter = ["category"]
    search_fields = ["sku", "name"]


class PurchaseItemInline(admin.TabularInline):
    model = PurchaseItem
    extra = 0
    autocomplete_fields = ["product"]


@admin.register(Purchase)
class PurchaseAdmin(admin.ModelAdmin):
    list_display = ["order_id", "customer", "purchased_at", "channel", "status", "total"]
    list_filter = ["status", "channel"]
    search_fields = ["order_id", "customer__external_id"]
    raw_id_fields = ["customer"]
    date_hierarchy = "purchased_at"
    inlines = [PurchaseItemInline]
    show_full_result_count = False

    # The analytics' id watermark sees new purchases only: an edit or a deletion marks the
    # purchase's days (before and after) for the next refresh (customers.freshness), once
    # the change commits.
    @transaction.atomic
    def save_model(self, request, obj, form, change):
        if change:
            purchases_changed(Purchase.objects.filter(pk=obj.pk))
            days_changed(local_days([obj.purchased_at]))
        super().save_model(request, obj, form, change)

    @transaction.atomic
    def delete_model(self, request, obj):
        purchases_changed(Purchase.objects.filter(pk=obj.pk))
        super().delete_model(request, obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        purchases_changed(queryset)
        super().delete_queryset(request, queryset)


class TicketReplyInline(admin.StackedInline):
    model = TicketReply
    extra = 0


@admin.register(SupportTicket)
class SupportTicketAdmin(SimpleHistoryAdmin):
    list_display = ["subject", "customer", "status", "priority", "assignee", "opened_at", "due_at"]
    list_filter = ["status", "priority", "channel"]
    search_fields = ["subject", "customer__external_id"]
    raw_id_fields = ["customer"]
    inlines = [TicketReplyInline]


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ["customer", "kind", "occurred_at", "user"]
    list_filter = ["kind"]
    raw_id_fields = ["customer"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "file_name",
        "kind",
        "status",
        "rows_read",
        "error_count",
        "created_by",
        "created_at",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [f.name for f in ImportJob._meta.fields]

    def has_add_permission(self, request):
        return False


class ReadOnlyLogAdmin(admin.ModelAdmin):
    """Audit logs are written by the app only and never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PersonalDataExport)
class PersonalDataExportAdmin(ReadOnlyLogAdmin):
    list_display = ["customer", "exported_by", "exported_at"]
    raw_id_fields = ["customer"]


@admin.register(ErasureLog)
class ErasureLogAdmin(ReadOnlyLogAdmin):
    list_display = ["customer", "erased_by", "erased_at"]
    raw_id_fields = ["customer"]


@admin.register(MergeLog)
class MergeLogAdmin(ReadOnlyLogAdmin):
    list_display = ["kept", "merged_external_id", "merged_by", "merged_at"]
    raw_id_fields = ["kept"]
