"""Support tickets with their replies and internal notes (customers.ticketing)."""

from __future__ import annotations

import django_filters
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_view,
)
from drf_standardized_errors.openapi_serializers import (
    ErrorResponse404Serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from customers.api.base import (
    ActiveUserField,
    APIModelSerializer,
    BooleanFilter,
    Conflict,
    IdFilter,
    ListCreateRetrieveUpdateViewSet,
    VisibleToUserField,
    writes_404_409,
)
from customers.api.fields import (
    EnumField,
)
from customers.models import (
    ContactChannel,
    Customer,
    SupportTicket,
    TicketReply,
    TicketStatus,
)
from customers.ticketing import (
    TransitionNotAllowed,
    add_ticket_reply,
    change_ticket_status,
    open_ticket,
)


class TicketReplySerializer(APIModelSerializer):
    class Meta:
        model = TicketReply
        fields = ["id", "author", "body", "internal", "created_at"]
        read_only_fields = ["author", "created_at"]


class SupportTicketSerializer(APIModelSerializer):
    customer = VisibleToUserField(queryset=Customer.objects, label=_("customer"))
    assignee = ActiveUserField(required=False, allow_null=True, label=_("assignee"))
    channel = EnumField(ContactChannel, required=False, label=_("channel"))
    status = EnumField(
        TicketStatus,
        required=False,
        label=_("status"),
        help_text=_(
            "open → pending → resolved → closed; pending can go back to open, "
            "resolved and closed tickets can be reopened. Another change is a 409."
        ),
    )
    is_overdue = serializers.BooleanField(read_only=True)
    replies = TicketReplySerializer(many=True, read_only=True)

    class Meta:
        model = SupportTicket
        fields = [
            "id",
            "customer",
            "opened_at",
            "channel",
            "subject",
            "body",
            "status",
            "priority",
            "assignee",
            "due_at",
            "resolved_at",
            "is_overdue",
            "replies",
        ]
        read_only_fields = ["resolved_at"]

    @transaction.atomic
    def update(self, instance: SupportTicket, validated_data: dict) -> SupportTicket:
        by = self.context["request"].user
        new_status = validated_data.pop("status", instance.status)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance._history_user = by
        instance.save()
        if new_status != instance.status:
            try:
                instance = change_ticket_status(ticket=instance, status=new_status, by=by)
            except TransitionNotAllowed as error:
                raise Conflict({"status": [str(error)]}, code="transition_not_allowed") from error
        return instance


class SupportTicketCreateSerializer(SupportTicketSerializer):
    """A new ticket is open; its status then changes through updates."""

    status = EnumField(TicketStatus, read_only=True, label=_("status"))

    def create(self, validated_data: dict) -> SupportTicket:
        opened_at = validated_data.pop("opened_at", None)
        ticket = open_ticket(by=self.context["request"].user, **validated_data)
        if opened_at is not None:  # an inquiry recorded after the fact
            ticket.opened_at = opened_at
            if "due_at" not in validated_data:
                ticket.due_at = None  # counted from the opening again (SupportTicket.save)
            ticket.save(update_fields=["opened_at", "due_at"])
        return ticket


class SupportTicketFilter(django_filters.FilterSet):
    assignee = IdFilter(field_name="assignee")
    customer = IdFilter(field_name="customer")
    overdue = BooleanFilter(method="filter_overdue", label=_("Overdue (open or pending, past due)"))

    class Meta:
        model = SupportTicket
        fields = ["status", "priority", "assignee", "customer", "overdue"]

    def filter_overdue(self, queryset, name, value: bool):
        overdue = SupportTicket.objects.overdue().values("pk")
        return queryset.filter(pk__in=overdue) if value else queryset.exclude(pk__in=overdue)


@extend_schema_view(
    **{
        **writes_404_409(SupportTicketSerializer),
        "create": extend_schema(
            request=SupportTicketCreateSerializer,
            responses={201: SupportTicketSerializer, 404: ErrorResponse404Serializer},
        ),
    }
)
class SupportTicketViewSet(ListCreateRetrieveUpdateViewSet):
    """Support tickets (inquiries) with their replies and internal notes, newest first."""

    filterset_class = SupportTicketFilter
    ordering_fields = ["opened_at", "due_at", "id"]
    ordering = ["-opened_at", "-id"]
    required_permissions = None  # model permissions, except where an action declares its own

    def get_queryset(self):
        return SupportTicket.objects.visible_to(self.request.user).prefetch_related("replies")

    def get_serializer_class(self):
        if self.action == "create":
            return SupportTicketCreateSerializer
        if self.action == "replies":
            return TicketReplySerializer
        return SupportTicketSerializer

    @extend_schema(
        request=TicketReplySerializer,
        responses={201: TicketReplySerializer},
        summary="Reply to a ticket, or add an internal note",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="replies",
        required_permissions=("customers.add_ticketreply", "customers.view_supportticket"),
        filter_backends=[],
        pagination_class=None,
    )
    def replies(self, request, pk=None):
        """A reply to the customer, or with internal=true a note for colleagues only; the
        author is the caller."""
        ticket = self.get_object()
        serializer = TicketReplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reply = add_ticket_reply(ticket=ticket, by=request.user, **serializer.validated_data)
        return Response(TicketReplySerializer(reply).data, status=status.HTTP_201_CREATED)
