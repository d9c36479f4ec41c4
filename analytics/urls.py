from django.urls import path

from analytics import breakdown_views, views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard_page, name="dashboard"),
    path("csv/<slug:table>/", views.dashboard_csv, name="dashboard-csv"),
    path("csv/breakdowns/<slug:table>/", breakdown_views.breakdown_csv, name="breakdown-csv"),
]
