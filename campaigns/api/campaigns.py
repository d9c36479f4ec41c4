"""Campaigns (kind "campaign"): CRUD with their variants, and the sending actions of
campaigns.sending: schedule (a date-time without offset is read in the user's time zone),
send now, pause, resume, cancel. An action the campaign's status does not allow is a 409."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action

from campaigns.api.fields import LocalDateTimeField
from campaigns.api.serializers import CampaignSerializer
from campaigns.api.viewsets import (
    CHANGE,
    CONFLICT,
    NOT_FOUND,
    CampaignKindViewSet,
    writes_schema,
)
from campaigns.models import CampaignKind
from campaigns.sending import (
    cancel_campaign,
    pause_campaign,
    resume_campaign,
    schedule_campaign,
    start_campaign,
)


class ScheduleSerializer(serializers.Serializer):
    at = LocalDateTimeField(
        label=_("send at"),
        help_text=_(
            "ISO 8601. Without an offset (2026-12-01T09:00) it is read in your time zone "
            "(your profile's, else the organisation's). A time already past sends now."
        ),
    )


_ACTION = {
    "request": None,
    "responses": {200: CampaignSerializer, **NOT_FOUND, **CONFLICT},
}


@extend_schema_view(**writes_schema(CampaignSerializer))
@extend_schema(tags=["campaigns"])
class CampaignViewSet(CampaignKindViewSet):
    """Campaigns to a segment, newest first. Changes are possible while a campaign is a
    draft or scheduled; only drafts can be deleted."""

    campaign_kind = CampaignKind.CAMPAIGN
    serializer_class = CampaignSerializer

    @extend_schema(**{**_ACTION, "request": ScheduleSerializer})
    @action(detail=True, methods=["post"], required_permissions=CHANGE, filter_backends=[])
    def schedule(self, request, pk=None):
        """Schedule a draft, or move a scheduled campaign to another time."""
        campaign = self.get_object()  # an unknown campaign is a 404 whatever the body
        query = ScheduleSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        return self.act(schedule_campaign, campaign=campaign, at=query.validated_data["at"])

    @extend_schema(**_ACTION)
    @action(
        detail=True,
        methods=["post"],
        url_path="send-now",
        required_permissions=CHANGE,
        filter_backends=[],
    )
    def send_now(self, request, pk=None):
        """Send a draft or scheduled campaign now."""
        return self.act(start_campaign)

    @extend_schema(**_ACTION)
    @action(detail=True, methods=["post"], required_permissions=CHANGE, filter_backends=[])
    def pause(self, request, pk=None):
        """Stop sending after the group of messages in flight."""
        return self.act(pause_campaign, _("Only a campaign being sent can be paused."))

    @extend_schema(**_ACTION)
    @action(detail=True, methods=["post"], required_permissions=CHANGE, filter_backends=[])
    def resume(self, request, pk=None):
        """Send the rest of a paused campaign."""
        return self.act(resume_campaign, _("Only a paused campaign can be resumed."))

    @extend_schema(**_ACTION)
    @action(detail=True, methods=["post"], required_permissions=CHANGE, filter_backends=[])
    def cancel(self, request, pk=None):
        """Send nothing more; what was sent stays sent."""
        return self.act(cancel_campaign, _("This campaign has already finished."))
