from django.urls import include, path
from rest_framework import routers

from analytics import api_urls as analytics_api
from campaigns import api as campaigns_api
from crm.api import views
from customers import api_quality
from customers.api.customers import CustomerViewSet
from customers.api.interactions import InteractionViewSet
from customers.api.products import ProductViewSet
from customers.api.purchases import PurchaseViewSet
from customers.api.tickets import SupportTicketViewSet
from segments import api_urls as segments_api


class APIRootView(routers.APIRootView):
    """The API's entry point: links to every collection."""

    required_permissions = ()


class Router(routers.DefaultRouter):
    # One URL per resource: formats are chosen with the Accept header, not ".json" suffixes.
    include_format_suffixes = False
    APIRootView = APIRootView


router = Router()
router.register("outbox", views.OutboxEmailViewSet, basename="api-outbox")
router.register("customers", CustomerViewSet, basename="api-customer")
router.register("products", ProductViewSet, basename="api-product")
router.register("purchases", PurchaseViewSet, basename="api-purchase")
router.register("tickets", SupportTicketViewSet, basename="api-ticket")
router.register("interactions", InteractionViewSet, basename="api-interaction")
segments_api.register(router)
analytics_api.register(router)
campaigns_api.register(router)

urlpatterns = [
    path("auth/token/", views.ObtainTokenView.as_view(), name="api-token"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("data-quality/", api_quality.DataQualityView.as_view(), name="api-data-quality"),
    path(
        "data-quality/duplicates/",
        api_quality.DuplicateListView.as_view(),
        name="api-data-quality-duplicates",
    ),
    path("data-quality/merge/", api_quality.MergeView.as_view(), name="api-data-quality-merge"),
    path(
        "customers/<int:pk>/personal-data/",
        api_quality.PersonalDataView.as_view(),
        name="api-customer-personal-data",
    ),
    path("customers/<int:pk>/erase/", api_quality.EraseView.as_view(), name="api-customer-erase"),
    path("", include(segments_api.urlpatterns)),
    path("", include(analytics_api.urlpatterns)),
    path("", include(router.urls)),
]
