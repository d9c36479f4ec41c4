from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard_page, name="dashboard"),
    path("csv/<slug:table>/", views.dashboard_csv, name="dashboard-csv"),
]
