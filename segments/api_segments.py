"""API of the segments (see segments/api_urls.py): CRUD, a preview of rules without saving,
the members (cursor-paginated and as CSV), a refresh on demand and the field catalogue.

The rule tree is described in the OpenAPI schema as exactly as JSON Schema allows
(``RULES_SCHEMA``, built from the registered fields). What JSON Schema cannot say is checked
by ``segments.rules.validate_rules``: a minimum above its maximum, a tag, user or product that
does not exist, more than 50 conditions in all. Either way the answer is a 400 listing every
problem with its place in the tree as ``attr`` (``rules.conditions.1.value``) in the standard
error format (schemathesis.toml tells the schema tests that such a 400 is expected).

Reading takes ``segments.view_segment``; writing, previewing and refreshing take the add /
change / delete permissions (marketers and admins); members also take
``customers.view_customer`` since they are personal data.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import django_filters
from django.db import IntegrityError, transaction
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from drf_standardized_errors.openapi_serializers import ErrorResponse404Serializer
from rest_framework import renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.response import Response

from crm.api.pagination import CursorPagination
from crm.exporting import csv_response
from customers import selectors
from customers.api import (
    MAX_ID,
    APIModelSerializer,
    APIViewSetMixin,
    Conflict,
    ConflictResponseSerializer,
    StableOrderingFilter,
)
from customers.api import AutoSchema as PositionalErrorsSchema
from customers.models import Customer
from customers.views import customer_export_columns
from segments import tasks
from segments.membership import create_segment, update_segment
from segments.models import Segment, SegmentKind
from segments.preview import live_preview
from segments.rules import (
    FIELDS,
    GROUP_OPS,
    MAX_CONDITIONS,
    MAX_DAYS,
    MAX_DEPTH,
    MAX_VALUES,
    UNOWNED,
    RuleError,
    field_catalogue,
    validate_rules,
)

VIEW = ("segments.view_segment",)
MEMBERS = ("segments.view_segment", "customers.view_customer")
MAX_INT = 2**31 - 1
MAX_AMOUNT = 10**12

# --- The rule tree's JSON Schema --------------------------------------------------------------

_DAYS = {"type": "integer", "minimum": 0, "maximum": MAX_DAYS}
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
_AMOUNT = {
    "anyOf": [
        # Whole numbers or decimal strings: a float such as 1e-170 would come back as a
        # string of 170 digits (amounts are kept exact, as strings, in the stored tree).
        {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT},
        {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,2})?$"},
    ]
}
# Not blank as Python's str.strip() sees it (what validate_rules checks).
_NOT_BLANK = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"}


def _nullable(schema: dict) -> dict:
    if "anyOf" in schema:
        return {"anyOf": schema["anyOf"], "nullable": True}
    return {**schema, "nullable": True}


def _list_of(item: dict) -> dict:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_VALUES}


def _bounds(item: dict) -> dict:
    """[minimum, maximum], either null (open-ended) but not both."""
    return {
        "type": "array",
        "items": _nullable(item),
        "minItems": 2,
        "maxItems": 2,
        "not": {"type": "array", "items": {"enum": [None]}},
    }


def _object(properties: dict, *, required: tuple = (), one_of_bounds: bool = False) -> dict:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    if one_of_bounds:  # "min" or "max" given and not null
        schema["anyOf"] = [
            {"required": [bound], "properties": {bound: {"not": {"enum": [None]}}}}
            for bound in ("min", "max")
        ]
    return schema


def _value_schemas(field) -> list[tuple[tuple[str, ...], dict]]:
    """(operators, schema of the value) pairs of a field, by its value type."""
    ops = field.operators
    low, high = field.minimum, field.maximum
    number = {"type": "integer"}
    if low is not None:
        number["minimum"] = low
    if high is not None:
        number["maximum"] = high
    kind = field.value_type
    if kind == "choices":
        if field.key in ("tags",):
            item = {"type": "string", "minLength": 1, "maxLength": 50}
        elif field.key == "owner":
            item = {
                "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_ID}, {"enum": [UNOWNED]}]
            }
        else:
            item = {"type": "string", "enum": [value for value, _label in field.choices()]}
        return [(ops, _list_of(item))]
    if kind == "int_list":
        return [(ops, _list_of(number))]
    if kind == "int_range":
        listed = tuple(op for op in ops if op == "in")
        ranged = tuple(op for op in ops if op == "between")
        return [(listed, _list_of(number)), (ranged, _bounds(number))]
    if kind == "boolean":
        return [(ops, {"type": "boolean"})]
    if kind == "date_range":
        day = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
        return [(("between",), _bounds(day)), (("within_last_days",), _DAYS)]
    if kind == "days":
        return [(("between",), _bounds(_DAYS)), (("at_least", "at_most"), _DAYS)]
    if kind in ("window_count", "window_amount"):
        bound = _COUNT if kind == "window_count" else _AMOUNT
        properties = {"days": _DAYS, "min": _nullable(bound), "max": _nullable(bound)}
        return [(ops, _object(properties, required=("days",), one_of_bounds=True))]
    if kind == "products":
        item = {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                {"type": "string", "minLength": 1, "maxLength": 64},
            ]
        }
        properties = {"products": _list_of(item), "days": _nullable(_DAYS)}
        return [(ops, _object(properties, required=("products",)))]
    if kind == "categories":
        properties = {"categories": _list_of(_NOT_BLANK), "days": _nullable(_DAYS)}
        return [(ops, _object(properties, required=("categories",)))]
    if kind == "campaign":
        campaign = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        properties = {"campaign": campaign, "days": _nullable(_DAYS)}
        return [(ops, _object(properties, required=("campaign",)))]
    if kind == "ticket_count":
        properties = {
            "min": _nullable(_COUNT),
            "max": _nullable(_COUNT),
            "open_only": {"type": "boolean"},
        }
        return [(ops, _object(properties, one_of_bounds=True))]
    return []  # a type this API does not describe: the field is not offered here


def _condition_schemas() -> list[dict]:
    conditions = []
    for field in FIELDS.values():
        for ops, value in _value_schemas(field):
            if not ops:
                continue
            conditions.append(
                _object(
                    {
                        "field": {"type": "string", "enum": [field.key]},
                        "op": {"type": "string", "enum": list(ops)},
                        "value": value,
                    },
                    required=("field", "op", "value"),
                )
            )
    return conditions


def _group_schema(depth: int, conditions: list[dict]) -> dict:
    children = list(conditions)
    if depth < MAX_DEPTH:
        children.append(_group_schema(depth + 1, conditions))
    return _object(
        {
            "op": {"type": "string", "enum": list(GROUP_OPS)},
            "conditions": {
                "type": "array",
                "items": {"anyOf": children},
                "maxItems": MAX_CONDITIONS,
            },
        },
        required=("op", "conditions"),
    )


RULES_SCHEMA = {
    **_group_schema(1, _condition_schemas()),
    "description": (
        "A group {op: and|or, conditions: [...]} of conditions {field, op, value} and nested "
        f"groups (at most {MAX_DEPTH} levels, {MAX_CONDITIONS} conditions in all). "
        "GET /api/v1/segments/fields/ lists the fields, their operators and values."
    ),
}


# --- Checking a tree against RULES_SCHEMA -----------------------------------------------------

_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def schema_problems(schema: dict, value: Any, path: str = "") -> list[dict[str, str]]:
    """Where ``value`` breaks ``schema`` (the subset of JSON Schema RULES_SCHEMA uses), as
    {"path", "message"}; empty if it conforms. So the API refuses with a 400 exactly what
    its documented schema refuses."""

    def problem(message) -> list[dict[str, str]]:
        return [{"path": path, "message": str(message)}]

    def at(sub) -> str:
        return f"{path}.{sub}" if path else str(sub)

    if value is None:
        return [] if schema.get("nullable") else problem(_("This value may not be null."))
    if "anyOf" in schema and "type" not in schema:
        if any(not schema_problems(option, value, path) for option in schema["anyOf"]):
            return []
        return problem(_("Enter a valid value."))
    if "type" in schema and not _JSON_TYPES[schema["type"]](value):
        return problem(_("Expected a value of type %(type)s.") % {"type": schema["type"]})
    if "enum" in schema and value not in schema["enum"]:
        return problem(_("%(value)s is not one of the choices.") % {"value": str(value)[:40]})
    if "not" in schema and not schema_problems(schema["not"], value, path):
        return problem(_("Enter a minimum or a maximum."))
    problems: list[dict[str, str]] = []
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return problem(_("Enter a number of at least %(min)s.") % {"min": schema["minimum"]})
        if "maximum" in schema and value > schema["maximum"]:
            return problem(_("Enter a number of at most %(max)s.") % {"max": schema["maximum"]})
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
            return problem(_("Enter a value of a valid length."))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return problem(_("Enter a valid value."))
        if schema.get("format") == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                return problem(_("Enter a date as YYYY-MM-DD."))
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9):
            return problem(_("Enter a list of a valid length."))
        for n, item in enumerate(value):
            problems += schema_problems(schema.get("items", {}), item, at(n))
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                problems += problem(_("%(key)s is required.") % {"key": key})
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                problems += schema_problems(properties[key], item, at(key))
            elif schema.get("additionalProperties") is False:
                problems += [{"path": at(key), "message": str(_("Unknown key."))}]
        if (
            "anyOf" in schema
            and not problems
            and all(schema_problems(option, value, path) for option in schema["anyOf"])
        ):
            problems += problem(_("Enter a minimum or a maximum."))
    return problems


class RulesField(serializers.JSONField):
    """A rule tree, checked against RULES_SCHEMA and by validate_rules in the serializer."""

    def to_internal_value(self, data):
        return data


extend_schema_field(RULES_SCHEMA)(RulesField)


def _rule_errors(errors: list[dict[str, str]]) -> dict[str, list[ErrorDetail]]:
    """{"rules.conditions.1.value": [...]} for drf-standardized-errors, whose attr is the key."""
    detail: dict[str, list[ErrorDetail]] = {}
    for error in errors:
        attr = f"rules.{error['path']}" if error["path"] else "rules"
        detail.setdefault(attr, []).append(ErrorDetail(error["message"], code="invalid"))
    return detail


def checked_rules(tree: Any) -> dict:
    """The normalised tree, or a 400 listing every problem at its place in the tree."""
    structural = schema_problems(RULES_SCHEMA, tree)
    try:
        normalised = validate_rules(tree)
    except RuleError as error:
        problems = error.errors
    else:
        problems = []
    if structural or problems:
        raise ValidationError(_rule_errors(problems or structural))
    return normalised


# --- Segments ---------------------------------------------------------------------------------


class SegmentSerializer(APIModelSerializer):
    rules = RulesField(
        help_text=_("The rule tree; see GET /api/v1/segments/fields/ for the fields.")
    )
    created_by = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "rules",
            "member_count",
            "refreshed_at",
            "refresh_requested_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "member_count",
            "refreshed_at",
            "refresh_requested_at",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs: dict) -> dict:
        # Here rather than in validate_rules(): DRF would nest a field's errors under "rules",
        # and they name their own place in the tree.
        if "rules" in attrs:
            attrs["rules"] = checked_rules(attrs["rules"])
        return attrs

    def create(self, validated_data: dict) -> Segment:
        return self._saving(
            create_segment,
            name=validated_data["name"],
            description=validated_data.get("description", ""),
            kind=validated_data.get("kind", SegmentKind.DYNAMIC),
            rules=validated_data["rules"],
            created_by=self.context["request"].user,
        )

    def update(self, instance: Segment, validated_data: dict) -> Segment:
        return self._saving(
            update_segment,
            segment=instance,
            name=validated_data.get("name", instance.name),
            description=validated_data.get("description", instance.description),
            kind=validated_data.get("kind", instance.kind),
            rules=validated_data.get("rules", instance.rules),
        )

    @staticmethod
    def _saving(save, **kwargs) -> Segment:
        try:
            with transaction.atomic():
                return save(**kwargs)
        except IntegrityError as error:  # another request took the name meanwhile
            raise Conflict({"name": [_("Another segment already has this name.")]}) from error


class SegmentSchema(PositionalErrorsSchema):
    """Errors inside the rule tree are reported at their place: ``rules.conditions.1.value``."""

    def _get_validation_error_codes_by_field(self, data_fields):
        codes = super()._get_validation_error_codes_by_field(data_fields)
        if "rules" in codes:
            codes["rules"].add("invalid")
            codes["rules.KEY"] = {"invalid"}
        return codes


class SegmentPreviewRequestSerializer(serializers.Serializer):
    rules = RulesField()


class SegmentSampleCustomerSerializer(serializers.ModelSerializer):
    prefecture_label = serializers.CharField()
    rfm_label = serializers.CharField(allow_null=True, help_text=_("Latest scoring run."))

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "display_name",
            "kana_name",
            "prefecture",
            "prefecture_label",
            "rfm_label",
        ]


class SegmentBreakdownRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text=_("null: no value / not scored."))
    label = serializers.CharField()
    count = serializers.IntegerField()


class SegmentDecileRowSerializer(SegmentBreakdownRowSerializer):
    key = serializers.IntegerField(allow_null=True, help_text=_("null: not scored."))


class SegmentBreakdownsSerializer(serializers.Serializer):
    prefecture = SegmentBreakdownRowSerializer(many=True)
    rfm_label = SegmentBreakdownRowSerializer(many=True)
    decile = SegmentDecileRowSerializer(many=True)


class SegmentPreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text=_("Customers matching the rules now."))
    sample = SegmentSampleCustomerSerializer(many=True, help_text=_("Up to 20, newest first."))
    breakdowns = SegmentBreakdownsSerializer()


class SegmentMemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "family_name",
            "given_name",
            "family_name_kana",
            "given_name_kana",
            "email",
            "prefecture",
            "email_opt_in",
        ]


class RuleOperatorSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()


class RuleChoiceSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()


class RuleFieldSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    group = serializers.CharField()
    group_label = serializers.CharField()
    type = serializers.CharField(help_text=_("How the value is written (see the rules module)."))
    operators = RuleOperatorSerializer(many=True)
    choices = RuleChoiceSerializer(many=True, allow_null=True)
    min = serializers.IntegerField(allow_null=True)
    max = serializers.IntegerField(allow_null=True)
    help_text = serializers.CharField(allow_blank=True)


class SegmentRefreshSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    refresh_requested_at = serializers.DateTimeField()


class MemberPagination(CursorPagination):
    ordering = "id"


class CSVRenderer(renderers.BaseRenderer):
    """Lets clients ask for ``text/csv``; the export streams its own response."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class SegmentFilter(django_filters.FilterSet):
    class Meta:
        model = Segment
        fields = ["kind"]


# Rule errors are validation errors (400, documented by default); a 409 is another segment
# taking the same name at the same moment.
_RULE_ERRORS = {409: ConflictResponseSerializer}
_NOT_FOUND = {404: ErrorResponse404Serializer}


@extend_schema_view(
    create=extend_schema(responses={201: SegmentSerializer, **_RULE_ERRORS}),
    update=extend_schema(responses={200: SegmentSerializer, **_RULE_ERRORS}),
    partial_update=extend_schema(responses={200: SegmentSerializer, **_RULE_ERRORS}),
)
@extend_schema(tags=["segments"])
class SegmentViewSet(APIViewSetMixin, viewsets.ModelViewSet):
    """Segments by name. Saving takes the members at once (a static segment is frozen with
    the rules it is saved with); dynamic segments are refreshed after every scoring run."""

    queryset = Segment.objects.all()
    serializer_class = SegmentSerializer
    filterset_class = SegmentFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, StableOrderingFilter]
    ordering_fields = ["name", "created_at", "id"]
    ordering = ["name"]
    lookup_value_regex = r"[0-9]+"
    # Model permissions by default; the extra actions declare theirs.
    required_permissions = None
    schema = SegmentSchema()

    def handle_exception(self, exc):
        # An export that fails answers its error in JSON, like every other error.
        if isinstance(getattr(self.request, "accepted_renderer", None), CSVRenderer):
            self.request.accepted_renderer = renderers.JSONRenderer()
            self.request.accepted_media_type = renderers.JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        request=SegmentPreviewRequestSerializer,
        responses={200: SegmentPreviewSerializer, **_RULE_ERRORS},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="preview",
        required_permissions=("segments.view_segment", "segments.add_segment"),
        filter_backends=[],
        pagination_class=None,
    )
    def preview(self, request):
        """Count, sample and breakdowns (by prefecture, RFM label, decile) of the customers
        the rules match now, without saving anything."""
        query = SegmentPreviewRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        figures = live_preview(checked_rules(query.validated_data["rules"]))
        for customer in figures["sample"]:
            customer.rfm_label = customer.score.rfm_label if customer.score else None
        return Response(SegmentPreviewSerializer(figures).data)

    @extend_schema(responses={200: RuleFieldSerializer(many=True)})
    @action(
        detail=False,
        url_path="fields",
        required_permissions=VIEW,
        filter_backends=[],
        pagination_class=None,
    )
    def fields(self, request):
        """The fields rules can use, grouped (profile, scores, behaviour), with their
        operators, value type, choices and bounds, in the request's language."""
        return Response(RuleFieldSerializer(field_catalogue(), many=True).data)

    def _members(self, segment: Segment):
        return Customer.objects.visible_to(self.request.user).filter(
            segment_memberships__segment=segment
        )

    @extend_schema(responses={200: SegmentMemberSerializer(many=True), **_NOT_FOUND})
    @action(
        detail=True,
        url_path="members",
        required_permissions=MEMBERS,
        filter_backends=[],
        pagination_class=MemberPagination,
    )
    def members(self, request, pk=None):
        """The segment's members at its last refresh, by customer id."""
        members = self._members(self.get_object()).order_by("id")
        page = self.paginate_queryset(members)
        return self.get_paginated_response(SegmentMemberSerializer(page, many=True).data)

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description=_("The members, one row per customer.")
            ),
            **_NOT_FOUND,
        },
    )
    @action(
        detail=True,
        url_path="members/export",
        required_permissions=MEMBERS,
        renderer_classes=[CSVRenderer, renderers.JSONRenderer],
        filter_backends=[],
        pagination_class=None,
    )
    def export(self, request, pk=None):
        """The members as CSV (UTF-8 with BOM), streamed; text a spreadsheet would run as a
        formula is written with a leading apostrophe."""
        segment = self.get_object()
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response: StreamingHttpResponse = csv_response(
            columns=customer_export_columns(),
            objects=selectors.export_rows(self._members(segment)),
            filename=f"segment-{segment.pk}-{stamp}",
        )
        return response

    @extend_schema(
        request=None,
        responses={202: SegmentRefreshSerializer, **_NOT_FOUND, 409: ConflictResponseSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="refresh",
        required_permissions=("segments.view_segment", "segments.change_segment"),
        filter_backends=[],
        pagination_class=None,
    )
    def refresh(self, request, pk=None):
        """Re-take a dynamic segment's members in a worker (a static one keeps its list: 409)."""
        segment = self.get_object()
        if segment.kind == SegmentKind.STATIC:
            raise Conflict(
                gettext("A static segment keeps the members it was saved with."), code="static"
            )
        segment.refresh_requested_at = timezone.now()
        segment.save(update_fields=["refresh_requested_at"])
        tasks.refresh_segment.delay_on_commit(segment.pk)
        return Response(SegmentRefreshSerializer(segment).data, status=status.HTTP_202_ACCEPTED)


def register(router) -> None:
    router.register("segments", SegmentViewSet, basename="api-segment")


urlpatterns: list = []
