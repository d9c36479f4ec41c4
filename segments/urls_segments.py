"""Pages of the segment builder: list, build with live counts, members, export."""

from django.urls import path

from segments import views

urlpatterns = [
    path("", views.segment_list, name="segment-list"),
    path("new/", views.segment_create, name="segment-create"),
    path("preview/", views.segment_preview, name="segment-preview"),
    path("<int:pk>/", views.segment_detail, name="segment-detail"),
    path("<int:pk>/edit/", views.segment_edit, name="segment-edit"),
    path("<int:pk>/refresh/", views.segment_refresh, name="segment-refresh"),
    path("<int:pk>/export/", views.segment_export, name="segment-export"),
    path("<int:pk>/delete/", views.segment_delete, name="segment-delete"),
]
