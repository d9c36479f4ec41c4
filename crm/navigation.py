"""The main menu. Each entry names the permission it needs; the menu shows a user only the
entries their role allows (the pages themselves check the same permission)."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from crm.access import has_permissions


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    permissions: tuple[str, ...] = ()
    description: str = ""


MAIN_MENU: list[NavItem] = [
    NavItem(_("Home"), "home"),
    NavItem(
        _("Customers"),
        "customers:list",
        ("customers.view_customer",),
        _("Profiles, purchases, tickets and interactions of every customer."),
    ),
    NavItem(
        _("Tickets"),
        "customers:tickets",
        ("customers.view_supportticket",),
        _("Support inquiries: your queue, unassigned and overdue tickets."),
    ),
    NavItem(
        _("Imports"),
        "customers:imports",
        ("customers.add_customer", "customers.change_customer"),
        _("Load customers and purchases from CSV files (UTF-8 or Shift_JIS)."),
    ),
    NavItem(
        _("Data quality"),
        "customers:quality",
        ("customers.view_customer",),
        _("What is missing from the profiles, which analyses it weakens, and probable duplicates."),
    ),
    NavItem(
        _("Segments"),
        "segments:segment-list",
        ("segments.view_segment",),
        _("Rule-based customer groups with live counts, for campaigns and analysis."),
    ),
    NavItem(
        _("Scores"),
        "segments:rfm",
        ("segments.view_customerscore",),
        _("RFM grid, deciles and the Pareto curve of the latest scoring run."),
    ),
    NavItem(
        _("Campaigns"),
        "campaigns:list",
        ("campaigns.view_campaign",),
        _("E-mail campaigns and automations with their results against their goals."),
    ),
    NavItem(
        _("Analytics"),
        "analytics:dashboard",
        ("analytics.view_dashboard",),
        _("KPIs against the previous period and last year, the 80/20 picture, cohorts and LTV."),
    ),
    NavItem(
        _("Goals"),
        "analytics-goals:list",
        ("analytics.view_goal",),
        _("Targets for the KPIs with their owner, progress and on / off track status."),
    ),
    NavItem(
        _("Outbox"),
        "outbox",
        ("crm.view_outboxemail",),
        _("E-mails the app sent while no mail server is configured."),
    ),
    NavItem(_("API"), "api-docs", (), _("REST API reference, for integrations and BI tools.")),
]


def menu_for(user, current_path: str) -> list[dict]:
    items = []
    for item in MAIN_MENU:
        if not has_permissions(user, item.permissions):
            continue
        url = reverse(item.url_name)
        active = current_path == url if url == "/" else current_path.startswith(url)
        items.append(
            {"label": item.label, "url": url, "active": active, "description": item.description}
        )
    return items
