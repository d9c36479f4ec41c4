"""Messages, read-only: one per recipient of a campaign (and per period of an automation),
with its status and first human open and click. The address and the sender's error (which
may quote it) only for users who may view customers."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, viewsets

from campaigns.models import Message, MessageStatus
from crm.api.filters import IdFilter
from customers.api.base import APIViewSetMixin, BooleanFilter
from customers.api.fields import EnumField


class MessageSerializer(serializers.ModelSerializer):
    status = EnumField(MessageStatus, read_only=True)
    email = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "campaign",
            "customer",
            "variant",
            "email",
            "period",
            "is_holdout",
            "status",
            "error",
            "attempts",
            "queued_at",
            "sent_at",
            "first_opened_at",
            "first_clicked_at",
            "opened_by_machine",
        ]

    def _personal(self) -> bool:
        request = self.context.get("request")
        return bool(request and request.user.has_perm("customers.view_customer"))

    @extend_schema_field({"type": "string", "nullable": True})
    def get_email(self, message: Message) -> str | None:
        return message.email if self._personal() else None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_error(self, message: Message) -> str | None:
        return message.error if self._personal() else None


class MessageFilter(django_filters.FilterSet):
    campaign = IdFilter(field_name="campaign")
    customer = IdFilter(field_name="customer")
    variant = IdFilter(field_name="variant")
    status = django_filters.ChoiceFilter(choices=MessageStatus.choices)
    is_holdout = BooleanFilter()

    class Meta:
        model = Message
        fields = ["campaign", "customer", "variant", "status", "is_holdout"]


@extend_schema(tags=["campaigns"])
class MessageViewSet(APIViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Campaign messages, newest first."""

    queryset = Message.objects.all()
    serializer_class = MessageSerializer
    filterset_class = MessageFilter
    ordering_fields = ["id"]
    ordering = ["-id"]
    lookup_value_regex = r"[0-9]+"
