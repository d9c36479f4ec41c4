from django.urls import path

from customers import import_views

urlpatterns = [
    path("", import_views.ImportListView.as_view(), name="imports"),
    path("new/", import_views.ImportCreateView.as_view(), name="import-new"),
    path("<int:pk>/", import_views.ImportDetailView.as_view(), name="import-detail"),
    path("<int:pk>/errors.csv", import_views.ImportErrorsView.as_view(), name="import-errors"),
]
