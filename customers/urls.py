"""Pages of the customers app, one URL module per area (all in the "customers" namespace)."""

from django.urls import include, path

app_name = "customers"

urlpatterns = [
    path("customers/", include("customers.urls_customers")),
    path("tickets/", include("customers.urls_tickets")),
    path("imports/", include("customers.urls_imports")),
    path("data-quality/", include("customers.urls_quality")),
]
