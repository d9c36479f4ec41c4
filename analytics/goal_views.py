"""Goal pages: the list with progress and filters, create, edit and delete.

Anyone with ``analytics.view_goal`` (every role) reads; admins and marketers, who hold
add/change/delete, manage. Progress comes from ``analytics.goals.goal_progress``; the rules of
each status are shown on the list page (``goals.STATUS_HELP``).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from analytics.forms_goals import GoalFilterForm, GoalForm
from analytics.goals import (
    STATUS_HELP,
    GoalStatus,
    analytics_today,
    create_goal,
    delete_goal,
    goals_queryset,
    progress_of,
    update_goal,
)
from analytics.models import Goal
from crm.access import permission_required

VIEW = "analytics.view_goal"
ADD = "analytics.add_goal"
CHANGE = "analytics.change_goal"
DELETE = "analytics.delete_goal"
PAGE_SIZE = 25


@require_GET
@permission_required(VIEW)
def goal_list(request):
    today = analytics_today()
    filter_form = GoalFilterForm(request.GET or None)
    queryset = goals_queryset(today=today, **filter_form.filters()).order_by("-end", "kpi", "id")
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = progress_of(page.object_list, today=today)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "analytics/goals/list.html",
        {
            "filter_form": filter_form,
            "page_obj": page,
            "rows": rows,
            "today": today,
            "query": query.urlencode(),
            "status_rules": [(status.label, STATUS_HELP[status]) for status in GoalStatus],
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, ADD)
def goal_create(request):
    form = GoalForm(request.POST or None, initial={"owner": request.user.pk})
    if request.method == "POST" and form.is_valid():
        goal = create_goal(**form.action_fields(), created_by=request.user, today=form.today)
        messages.success(request, _("Goal %(goal)s was saved.") % {"goal": goal})
        return redirect("analytics-goals:list")
    return render(request, "analytics/goals/form.html", {"form": form, "goal": None})


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, CHANGE)
def goal_edit(request, pk: int):
    goal = get_object_or_404(Goal, pk=pk)
    form = GoalForm(request.POST or None, instance=goal)
    if request.method == "POST" and form.is_valid():
        goal = update_goal(goal=goal, **form.action_fields(), today=form.today)
        messages.success(request, _("Goal %(goal)s was saved.") % {"goal": goal})
        return redirect("analytics-goals:list")
    return render(request, "analytics/goals/form.html", {"form": form, "goal": goal})


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW, DELETE)
def goal_delete(request, pk: int):
    goal = get_object_or_404(Goal, pk=pk)
    if request.method == "POST":
        label = str(goal)
        delete_goal(goal=goal)
        messages.success(request, _("Goal %(goal)s was deleted.") % {"goal": label})
        return redirect("analytics-goals:list")
    return render(request, "analytics/goals/confirm_delete.html", {"goal": goal})
