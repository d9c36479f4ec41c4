"""Goal pages, under /analytics/goals/ (crm/urls.py), namespace "analytics-goals"."""

from django.urls import path

from analytics import goal_views

app_name = "analytics-goals"
urlpatterns = [
    path("", goal_views.goal_list, name="list"),
    path("new/", goal_views.goal_create, name="create"),
    path("<int:pk>/edit/", goal_views.goal_edit, name="edit"),
    path("<int:pk>/delete/", goal_views.goal_delete, name="delete"),
]
