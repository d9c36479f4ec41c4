from __future__ import annotations

import django_filters
from django.contrib.auth import authenticate
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from drf_standardized_errors.openapi_serializers import ErrorResponse401Serializer
from rest_framework import exceptions, generics, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.filters import DateTimeFilter
from crm.api.serializers import (
    MeSerializer,
    OutboxEmailSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from crm.lockout import lockout_message
from crm.models import OutboxEmail


class LockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self):
        super().__init__(detail=lockout_message())


class ObtainTokenView(APIView):
    """Exchange a username and password for an API token.

    Failed attempts count toward the same lockout as the login page.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []
    serializer_class = TokenRequestSerializer

    def get_authenticate_header(self, request) -> str:
        # Wrong credentials are a 401 (with this challenge), as for any other API request.
        return "Token"

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, 401: ErrorResponse401Serializer},
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # django-axes reads and marks the Django request, not DRF's wrapper around it.
        django_request = request._request
        user = authenticate(
            request=django_request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if getattr(django_request, "axes_locked_out", False):
            raise LockedOut()
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed(_("Unable to log in with these credentials."))
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class MeView(generics.RetrieveAPIView):
    """The signed-in user, with roles."""

    serializer_class = MeSerializer
    required_permissions = ()

    def get_object(self):
        return self.request.user


class OutboxEmailFilter(django_filters.FilterSet):
    to = django_filters.CharFilter(lookup_expr="icontains")
    subject = django_filters.CharFilter(lookup_expr="icontains")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = OutboxEmail
        fields = ["to", "subject", "created_after", "created_before"]


class OutboxEmailViewSet(viewsets.ReadOnlyModelViewSet):
    """E-mails captured by the embedded outbox backend (demo and development setups)."""

    serializer_class = OutboxEmailSerializer
    filterset_class = OutboxEmailFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return OutboxEmail.objects.visible_to(self.request.user)
