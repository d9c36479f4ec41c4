from django.urls import include, path
from rest_framework import routers

from crm.api import views


class APIRootView(routers.APIRootView):
    """The API's entry point: links to every collection."""

    required_permissions = ()


class Router(routers.DefaultRouter):
    # One URL per resource: formats are chosen with the Accept header, not ".json" suffixes.
    include_format_suffixes = False
    APIRootView = APIRootView


router = Router()
router.register("outbox", views.OutboxEmailViewSet, basename="api-outbox")

urlpatterns = [
    path("auth/token/", views.ObtainTokenView.as_view(), name="api-token"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("", include(router.urls)),
]
