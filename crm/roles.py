"""The three roles and what each may do, as Django groups with model permissions.

A role is a group; what it may do is a list of ``app_label.codename`` patterns (fnmatch) so
that a model added by a later migration is covered without editing this file. ``sync_roles``
applies the list; it runs in the data migration that creates the groups and again after every
``migrate`` (see ``CrmConfig.ready``), so new models get their permissions in the same step.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "Admin", _("Admin")
    MARKETER = "Marketer", _("Marketer")
    SALES = "Sales", _("Sales")


ROLE_PERMISSIONS: dict[str, list[str]] = {
    # Admins run the system: every permission of every app, users and groups included.
    Role.ADMIN: ["*"],
    # Marketers read customers, own segments, campaigns and analytics, see the outbox.
    Role.MARKETER: [
        "customers.view_*",
        "segments.*",
        "campaigns.*",
        "analytics.*",
        "crm.view_outboxemail",
    ],
    # Sales staff own customer records, purchases, tickets and interactions, and answer
    # personal-data requests with an export; erasing and merging customers is for admins.
    # They read segments, analytics and campaigns but do not send campaigns.
    Role.SALES: [
        "customers.add_*",
        "customers.change_*",
        "customers.delete_*",
        "customers.view_*",
        "customers.export_customer_data",
        "segments.view_*",
        "analytics.view_*",
        "campaigns.view_*",
    ],
}

# Apps whose permissions no role gets through a pattern other than "*" (framework internals).
_INTERNAL_APPS = {"admin", "contenttypes", "sessions", "axes"}


def permissions_for(role: str, all_permissions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (app_label, codename) pairs among ``all_permissions`` that ``role`` is granted."""
    patterns = ROLE_PERMISSIONS[role]
    granted = []
    for app_label, codename in all_permissions:
        name = f"{app_label}.{codename}"
        for pattern in patterns:
            if pattern == "*" or (app_label not in _INTERNAL_APPS and fnmatchcase(name, pattern)):
                granted.append((app_label, codename))
                break
    return granted


def sync_roles(group_model, permission_model) -> None:
    """Create the role groups and set their permissions to exactly what ROLE_PERMISSIONS says.

    Takes the model classes so a data migration can pass its historical models.
    """
    permissions = list(permission_model.objects.select_related("content_type").order_by("pk"))
    pairs = [(p.content_type.app_label, p.codename) for p in permissions]
    by_pair = dict(zip(pairs, permissions, strict=True))
    for role in Role:
        group, _created = group_model.objects.get_or_create(name=role.value)
        group.permissions.set([by_pair[pair] for pair in permissions_for(role, pairs)])


def user_roles(user) -> list[Role]:
    """The roles of ``user`` in the order of ``Role`` (superusers count as Admin)."""
    if not user.is_authenticated:
        return []
    names = {g.name for g in user.groups.all()}
    roles = [role for role in Role if role.value in names]
    if user.is_superuser and Role.ADMIN not in roles:
        roles.insert(0, Role.ADMIN)
    return roles


def assign_role(user, role: Role) -> None:
    """Give ``user`` exactly one role; Admins also get into the Django admin site."""
    from django.contrib.auth.models import Group

    user.groups.set([Group.objects.get(name=role.value)])
    user.is_staff = role == Role.ADMIN
    user.save(update_fields=["is_staff"])
