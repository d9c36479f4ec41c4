from django.urls import path

from customers import quality_views

urlpatterns = [
    path("", quality_views.quality, name="quality"),
    path("duplicates/", quality_views.duplicates, name="quality-duplicates"),
    path("merge/", quality_views.merge, name="quality-merge"),
    path(
        "customers/<int:pk>/personal-data/",
        quality_views.export_data,
        name="customer-export-data",
    ),
    path("customers/<int:pk>/erase/", quality_views.erase, name="customer-erase"),
]
