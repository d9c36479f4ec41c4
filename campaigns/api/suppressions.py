"""The suppression list: addresses that must never get marketing mail again, shown by their
hash only (the list never returns an address). Staff add an address by hand (stored hashed
through campaigns.suppression.suppress); taking one off the list re-subscribes someone, which
is an admin's decision."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from campaigns.models import Suppression, SuppressionReason
from campaigns.suppression import email_hash, suppress
from crm.roles import Role, user_roles
from customers.api.base import APIViewSetMixin
from customers.api.fields import EmailField, EnumField


class SuppressionSerializer(serializers.ModelSerializer):
    reason = EnumField(SuppressionReason, read_only=True)

    class Meta:
        model = Suppression
        fields = ["id", "email_hash", "reason", "created_at"]


class SuppressionRequestSerializer(serializers.Serializer):
    email = EmailField(
        max_length=254,
        label=_("e-mail"),
        help_text=_("Stored as its hash only; never returned."),
    )


class SuppressionFilter(django_filters.FilterSet):
    reason = django_filters.ChoiceFilter(choices=SuppressionReason.choices)

    class Meta:
        model = Suppression
        fields = ["reason"]


class AdminRemovesSuppressions(BasePermission):
    """Marketers hold every campaigns permission; removing an address from the list takes
    the Admin role as well."""

    def has_permission(self, request, view) -> bool:
        return request.method != "DELETE" or Role.ADMIN in user_roles(request.user)


@extend_schema_view(
    create=extend_schema(
        request=SuppressionRequestSerializer,
        responses={200: SuppressionSerializer, 201: SuppressionSerializer},
    )
)
@extend_schema(tags=["campaigns"])
class SuppressionViewSet(
    APIViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Suppressed addresses (as hashes), newest first."""

    queryset = Suppression.objects.all()
    serializer_class = SuppressionSerializer
    filterset_class = SuppressionFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"[0-9]+"

    def get_permissions(self):
        return [*super().get_permissions(), AdminRemovesSuppressions()]

    def create(self, request, *args, **kwargs):
        """Suppress an address by hand (reason "manual"). An address already on the list
        keeps its first reason: 200 instead of 201."""
        query = SuppressionRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        email = query.validated_data["email"]
        listed = Suppression.objects.filter(email_hash=email_hash(email)).exists()
        suppression = suppress(email=email, reason=SuppressionReason.MANUAL)
        return Response(
            SuppressionSerializer(suppression).data,
            status=status.HTTP_200_OK if listed else status.HTTP_201_CREATED,
        )
