"""Automations (kind "automation"): CRUD with their variants and trigger (the issue's
"triggers": birthday, win-back, thank-you), and activate / pause through
campaigns.automations. Changes are possible while an automation is a draft or paused."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action

from campaigns.api.serializers import AutomationSerializer
from campaigns.api.viewsets import CHANGE, CONFLICT, NOT_FOUND, CampaignKindViewSet, writes_schema
from campaigns.automations import activate_automation, pause_automation
from campaigns.models import CampaignKind

_ACTION = {"request": None, "responses": {200: AutomationSerializer, **NOT_FOUND, **CONFLICT}}


@extend_schema_view(**writes_schema(AutomationSerializer))
@extend_schema(tags=["automations"])
class AutomationViewSet(CampaignKindViewSet):
    """Automations, newest first: content sent by a trigger to each customer it matches, at
    most once per customer per period, while the automation is active."""

    campaign_kind = CampaignKind.AUTOMATION
    serializer_class = AutomationSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("trigger")

    @extend_schema(**_ACTION)
    @action(detail=True, methods=["post"], required_permissions=CHANGE, filter_backends=[])
    def activate(self, request, pk=None):
        """Start (or resume) evaluating the trigger every day from its sending hour."""
        return self.act(activate_automation)

    @extend_schema(**_ACTION)
    @action(detail=True, methods=["post"], required_permissions=CHANGE, filter_backends=[])
    def pause(self, request, pk=None):
        """Stop evaluating the trigger; queued messages wait."""
        return self.act(pause_automation, _("Only an active automation can be paused."))
