"""Template tags other apps use to show scores (the Customer 360 page's score panel)."""

from __future__ import annotations

from django import template

from segments.models import CustomerScore, RunStatus

register = template.Library()

# Enough runs to see a trend on the 360 page without a long table.
HISTORY_RUNS = 6


@register.inclusion_tag("segments/_customer_scores.html", takes_context=True)
def customer_scores(context, customer) -> dict:
    """The customer's scores in the latest succeeded run, and their RFM labels in the runs
    before it whose scores are kept (one query: the customer's rows in succeeded runs)."""
    user = context.get("user")
    if user is None or not user.has_perm("segments.view_customerscore"):
        return {"visible": False}
    rows = list(
        CustomerScore.objects.filter(customer=customer, run__status=RunStatus.SUCCEEDED)
        .select_related("run")
        .order_by("-run__finished_at", "-run_id")[:HISTORY_RUNS]
    )
    return {
        "visible": True,
        "score": rows[0] if rows else None,
        "history": rows,
        "perms": context.get("perms"),
    }
