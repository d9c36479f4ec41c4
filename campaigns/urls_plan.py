"""Plan and Do: create and edit campaigns and automations, preview, test send, schedule,
watch the progress, pause, resume, cancel."""

from django.urls import path

from campaigns import views_automations, views_plan

urlpatterns: list = [
    path("new/", views_plan.campaign_create, name="create"),
    path("<int:pk>/", views_plan.campaign_detail, name="detail"),
    path("<int:pk>/edit/", views_plan.campaign_edit, name="edit"),
    path("<int:pk>/progress/", views_plan.campaign_progress, name="progress"),
    path("<int:pk>/preview/", views_plan.campaign_preview, name="preview"),
    path("<int:pk>/test-send/", views_plan.campaign_test_send, name="test-send"),
    path("<int:pk>/schedule/", views_plan.campaign_schedule, name="schedule"),
    path("<int:pk>/send-now/", views_plan.campaign_send_now, name="send-now"),
    path("<int:pk>/pause/", views_plan.campaign_pause, name="pause"),
    path("<int:pk>/resume/", views_plan.campaign_resume, name="resume"),
    path("<int:pk>/cancel/", views_plan.campaign_cancel, name="cancel"),
    path("automations/", views_automations.automation_list, name="automation-list"),
    path("automations/new/", views_automations.automation_create, name="automation-create"),
    path("automations/<int:pk>/edit/", views_automations.automation_edit, name="automation-edit"),
    path("automations/trigger-count/", views_automations.trigger_count, name="trigger-count"),
    path(
        "automations/<int:pk>/activate/",
        views_automations.automation_activate,
        name="automation-activate",
    ),
    path(
        "automations/<int:pk>/pause/", views_automations.automation_pause, name="automation-pause"
    ),
]
