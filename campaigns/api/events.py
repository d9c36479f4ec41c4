"""Tracking events, read-only: opens and clicks, machine ones (privacy proxies, link
scanners) flagged with the reason. Neither the user agent nor the IP hash is shown."""

from __future__ import annotations

import django_filters
from django.db.models import F
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets

from campaigns.models import EventKind, TrackingEvent
from crm.api.filters import DateTimeFilter, IdFilter
from customers.api.base import APIViewSetMixin, BooleanFilter
from customers.api.fields import EnumField


class EventSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id", read_only=True)
    kind = EnumField(EventKind, read_only=True)
    url = serializers.CharField(source="link.url", read_only=True, allow_null=True, default=None)

    class Meta:
        model = TrackingEvent
        fields = [
            "id",
            "campaign",
            "message",
            "kind",
            "link",
            "url",
            "occurred_at",
            "is_machine",
            "machine_reason",
        ]


class EventFilter(django_filters.FilterSet):
    campaign = IdFilter(field_name="message__campaign")
    message = IdFilter(field_name="message")
    kind = django_filters.ChoiceFilter(choices=EventKind.choices)
    is_machine = BooleanFilter()
    occurred_after = DateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = DateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = TrackingEvent
        fields = ["campaign", "message", "kind", "is_machine", "occurred_after", "occurred_before"]


@extend_schema(tags=["campaigns"])
class EventViewSet(APIViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Opens and clicks, newest first."""

    serializer_class = EventSerializer
    filterset_class = EventFilter
    ordering_fields = ["occurred_at", "id"]
    ordering = ["-occurred_at", "-id"]
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return TrackingEvent.objects.select_related("link").annotate(
            campaign_id=F("message__campaign_id")
        )
