from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from crm.models import Heartbeat, OutboxEmail, UserProfile

User = get_user_model()


class UserProfileInline(admin.StackedInline):
    model = UserProfile
    can_delete = False


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [UserProfileInline]
    list_display = [
        "username",
        "email",
        "first_name",
        "last_name",
        "roles",
        "is_active",
        "last_login",
    ]
    list_filter = ["groups", "is_active", "is_staff"]

    @admin.display(description=_("roles"))
    def roles(self, user):
        return ", ".join(group.name for group in user.groups.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "language", "time_zone"]
    list_filter = ["language"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    list_display = ["created_at", "to", "subject"]
    search_fields = ["to", "subject"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in OutboxEmail._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "last_seen"]
    readonly_fields = ["name", "last_seen"]
