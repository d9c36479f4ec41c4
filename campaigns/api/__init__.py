"""REST API of the campaigns app (crm/api/urls.py adds these routes to the project's router):
campaigns and automations (CRUD with variants and trigger, sending actions, stats, preview),
messages and tracking events read-only, and the suppression list. One module per resource;
``serializers`` and ``viewsets`` hold what campaigns and automations share, ``saving`` their
writes."""

from campaigns.api.automations import AutomationViewSet
from campaigns.api.campaigns import CampaignViewSet
from campaigns.api.events import EventViewSet
from campaigns.api.messages import MessageViewSet
from campaigns.api.suppressions import SuppressionViewSet


def register(router) -> None:
    router.register("campaigns", CampaignViewSet, basename="api-campaign")
    router.register("automations", AutomationViewSet, basename="api-automation")
    router.register("messages", MessageViewSet, basename="api-campaign-message")
    router.register("events", EventViewSet, basename="api-campaign-event")
    router.register("suppressions", SuppressionViewSet, basename="api-suppression")
