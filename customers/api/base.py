"""What every resource of the API shares: the model serializer base (a 404 or 409 rather than
a 400 for what only the database refuses), the conflict error, the filters, and the viewset
bases with our parsers, filter backends and pagination."""

from __future__ import annotations

from collections.abc import Iterator

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db import models
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    extend_schema,
)
from drf_standardized_errors.openapi_serializers import (
    ClientErrorEnum,
    ErrorResponse404Serializer,
)
from rest_framework import exceptions, filters, mixins, serializers, status, viewsets
from rest_framework.exceptions import ErrorDetail
from rest_framework.parsers import JSONParser

from crm.api.filters import IdFilter  # noqa: F401 - re-exported for the customers API
from customers.api.fields import (
    MAX_INT,
    AmountField,
    BooleanField,
    ChoiceField,
    DateTimeField,
    EmailField,
    IntegerField,
    PrimaryKeyRelatedField,
    TextField,
)

User = get_user_model()


# The base of the model serializers here: JSON-typed fields, and a 404 or 409 rather than a
# 400 for what only the database refuses (see _refusal). A comment, not a docstring, since the
# schema would show a docstring as every serializer's description.
class APIModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        **dict.fromkeys([models.CharField, models.TextField], TextField),
        models.EmailField: EmailField,
        models.BooleanField: BooleanField,
        models.IntegerField: IntegerField,
        models.PositiveIntegerField: IntegerField,
        models.DecimalField: AmountField,
        models.DateTimeField: DateTimeField,
    }
    serializer_related_field = PrimaryKeyRelatedField
    serializer_choice_field = ChoiceField

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, IntegerField):
            kwargs.setdefault("max_value", MAX_INT)
        return field_class, kwargs

    def is_valid(self, *, raise_exception=False):
        valid = super().is_valid(raise_exception=False)
        if not valid and raise_exception:
            raise _refusal(self.errors)
        return valid


def _codes(detail) -> Iterator[str]:
    if isinstance(detail, dict):
        for value in detail.values():
            yield from _codes(value)
    elif isinstance(detail, list):
        for value in detail:
            yield from _codes(value)
    else:
        yield detail.code


def recoded(detail, code: str):
    if isinstance(detail, dict):
        return {key: recoded(value, code) for key, value in detail.items()}
    if isinstance(detail, list):
        return [recoded(value, code) for value in detail]
    return ErrorDetail(str(detail), code=code)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = _("The request conflicts with the current state of the data.")


def _refusal(errors) -> exceptions.APIException:
    """A 400 for invalid input; a 404 when the only problem is a reference to something that
    does not exist, a 409 when it is a value another record already has."""
    codes = set(_codes(errors))
    if codes == {"does_not_exist"}:
        return exceptions.NotFound(recoded(errors, "not_found"))
    if codes and codes <= {"does_not_exist", "unique"}:
        return Conflict(errors)
    return serializers.ValidationError(errors)


class ConflictErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ConflictResponseSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ClientErrorEnum.choices)
    errors = ConflictErrorSerializer(many=True)


class _TrueOrFalseField(forms.Field):
    default_error_messages = {"invalid": _("Enter true or false.")}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class BooleanFilter(django_filters.BooleanFilter):
    """``true`` or ``false``, as the schema says; anything else is a 400, not ignored."""

    field_class = _TrueOrFalseField


class StableOrderingFilter(filters.OrderingFilter):
    """``ordering=`` with the id as the last key, so that cursor pagination stays exact when
    several rows share a date."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if ordering and ordering[-1].lstrip("-") not in ("id", "pk"):
            ordering.append("-id" if ordering[-1].startswith("-") else "id")
        return ordering


class APIViewSetMixin:
    """JSON requests only; django-filter and ``ordering=`` (id last) on every list. The schema
    class is the project's default, crm.api.schema.AutoSchema."""

    parser_classes = [JSONParser]
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, StableOrderingFilter]


class ListCreateRetrieveViewSet(
    APIViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Records that are listed, read and created here, and never changed through the API."""


class ListCreateRetrieveUpdateViewSet(
    APIViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Records that are listed, read, created and changed here, but not deleted (a customer is
    erased through a logged personal-data request; purchases and tickets are records)."""


class VisibleToUserField(PrimaryKeyRelatedField):
    """A related record by id, among those the requesting user may see."""

    def get_queryset(self):
        return self.queryset.visible_to(self.context["request"].user)


class ActiveUserField(PrimaryKeyRelatedField):
    def __init__(self, **kwargs):
        super().__init__(queryset=User.objects.filter(is_active=True), **kwargs)


def writes_404_409(serializer) -> dict:
    """Schema of the create/update operations: the 404 and 409 that ``_refusal`` answers."""
    responses = {404: ErrorResponse404Serializer, 409: ConflictResponseSerializer}
    return {
        "create": extend_schema(responses={201: serializer, **responses}),
        "update": extend_schema(responses={200: serializer, **responses}),
        "partial_update": extend_schema(responses={200: serializer, **responses}),
    }
