"""Interactions with customers: calls, visits, meetings, e-mails, notes
(customers.interactions)."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_view,
)
from drf_standardized_errors.openapi_serializers import (
    ErrorResponse404Serializer,
)

from crm.api.filters import DateTimeFilter
from customers.api.base import (
    APIModelSerializer,
    IdFilter,
    ListCreateRetrieveViewSet,
    VisibleToUserField,
)
from customers.interactions import log_interaction
from customers.models import (
    Customer,
    Interaction,
)


class InteractionSerializer(APIModelSerializer):
    customer = VisibleToUserField(queryset=Customer.objects, label=_("customer"))

    class Meta:
        model = Interaction
        fields = ["id", "customer", "kind", "occurred_at", "user", "summary"]
        read_only_fields = ["user"]

    def create(self, validated_data: dict) -> Interaction:
        return log_interaction(by=self.context["request"].user, **validated_data)


class InteractionFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer")
    user = IdFilter(field_name="user")
    occurred_after = DateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = DateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Interaction
        fields = ["customer", "kind", "user"]


@extend_schema_view(
    create=extend_schema(responses={201: InteractionSerializer, 404: ErrorResponse404Serializer})
)
class InteractionViewSet(ListCreateRetrieveViewSet):
    """Calls, visits, meetings, e-mails and notes with customers, newest first; the one who
    records an interaction is its user."""

    queryset = Interaction.objects.all()
    serializer_class = InteractionSerializer
    filterset_class = InteractionFilter
    ordering_fields = ["occurred_at", "id"]
    ordering = ["-occurred_at", "-id"]
