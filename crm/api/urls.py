from django.urls import include, path
from rest_framework import routers

from crm.api import views


class APIRootView(routers.APIRootView):
    """The API's entry point: links to every collection."""

    required_permissions = ()


router = routers.DefaultRouter()
router.APIRootView = APIRootView
router.register("outbox", views.OutboxEmailViewSet, basename="outbox")

urlpatterns = [
    path("auth/token/", views.ObtainTokenView.as_view(), name="api-token"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("", include(router.urls)),
]
