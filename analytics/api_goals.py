"""API of the goals (see analytics/api_urls.py): /api/v1/analytics/goals/, create, read,
update and delete, with each goal's progress as read-only fields.

Units are the stored ones: rates and changes are fractions (``"0.05"`` is 5% or +5 points),
amounts are in the currency, counts whole. The rules are ``analytics.goals.goal_errors`` (the
pages' too); a goal that breaks one is a 400 in the project's error format with the field as
``attr``. Reading takes ``analytics.view_goal`` (every role); writing takes add / change /
delete (admins and marketers). Progress rules: the docstring of ``analytics.goals``.
"""

from __future__ import annotations

import django_filters
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ErrorDetail, ValidationError

from analytics.api import PeriodDateField
from analytics.goals import (
    ERROR_CODES,
    GoalState,
    GoalStatus,
    analytics_today,
    create_goal,
    delete_goal,
    goal_errors,
    goal_progress,
    goals_queryset,
    periods_needed,
    prefetch_figures,
    update_goal,
)
from analytics.models import Goal, GoalKpi, GoalTargetKind
from crm.api.filters import IdFilter
from crm.api.schema import AutoSchema
from customers.api import APIViewSetMixin, StableOrderingFilter
from customers.api.fields import ChoiceField, DateTimeField, PrimaryKeyRelatedField, TextField

MAX_NOTE = 2000


def _decimal(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=6, **kwargs)


class GoalProgressSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=GoalStatus.choices, read_only=True)
    as_of = serializers.DateField(
        allow_null=True, read_only=True, help_text=_("The last day the actual covers.")
    )
    actual = _decimal(allow_null=True, read_only=True)
    target_value = _decimal(
        allow_null=True, read_only=True, help_text=_("The value the KPI should reach.")
    )
    expected = _decimal(
        allow_null=True, read_only=True, help_text=_("The value expected by now at the pace.")
    )
    attainment = serializers.FloatField(
        allow_null=True,
        read_only=True,
        help_text=_("Share of the target reached (1 = 100%), or of the planned change made."),
    )
    elapsed_days = serializers.IntegerField(read_only=True)
    days = serializers.IntegerField(read_only=True)


class GoalSerializer(serializers.ModelSerializer):
    kpi = ChoiceField(choices=GoalKpi.choices)
    target_kind = ChoiceField(choices=GoalTargetKind.choices, required=False)
    target = _decimal(
        help_text=_(
            "The value to reach, or the change vs the previous period. Rates and changes as "
            "fractions: 0.05 is 5%, +5 points or +5%."
        )
    )
    start = PeriodDateField()
    end = PeriodDateField()
    owner = PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        help_text=_("The user answerable for the goal (default: you)."),
    )
    note = TextField(max_length=MAX_NOTE, required=False, allow_blank=True)
    baseline = _decimal(
        read_only=True,
        allow_null=True,
        help_text=_("The KPI over the equal-length period before the start, frozen."),
    )
    created_by = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    progress = serializers.SerializerMethodField()
    created_at = DateTimeField(read_only=True)
    updated_at = DateTimeField(read_only=True)

    class Meta:
        model = Goal
        fields = [
            "id",
            "kpi",
            "target_kind",
            "target",
            "start",
            "end",
            "owner",
            "note",
            "baseline",
            "progress",
            "created_by",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(GoalProgressSerializer)
    def get_progress(self, goal: Goal) -> dict:
        progress = goal_progress(goal, today=self.context.get("today"))
        return GoalProgressSerializer(progress).data

    def validate(self, attrs: dict) -> dict:
        goal = self.instance
        merged = {
            "kpi": attrs.get("kpi", getattr(goal, "kpi", None)),
            "start": attrs.get("start", getattr(goal, "start", None)),
            "end": attrs.get("end", getattr(goal, "end", None)),
            "target_kind": attrs.get(
                "target_kind", getattr(goal, "target_kind", GoalTargetKind.ABSOLUTE)
            ),
            "target": attrs.get("target", getattr(goal, "target", None)),
        }
        errors = goal_errors(**merged, today=self.context["today"])
        if errors:
            raise ValidationError(
                {
                    field: [ErrorDetail(message, code=code) for code, message in problems]
                    for field, problems in errors.items()
                }
            )
        return {**attrs, **merged}

    def create(self, validated_data: dict) -> Goal:
        user = self.context["request"].user
        owner = validated_data.pop("owner", None) or user
        return create_goal(
            **validated_data,
            owner=owner,
            created_by=user,
            today=self.context["today"],
        )

    def update(self, instance: Goal, validated_data: dict) -> Goal:
        return update_goal(
            goal=instance,
            kpi=validated_data["kpi"],
            start=validated_data["start"],
            end=validated_data["end"],
            target_kind=validated_data["target_kind"],
            target=validated_data["target"],
            owner=validated_data.get("owner", instance.owner),
            note=validated_data.get("note", instance.note),
            today=self.context["today"],
        )


class GoalSchema(AutoSchema):
    """Documents the errors of the goal rules (analytics.goals.goal_errors) on their fields."""

    def _get_validation_error_codes_by_field(self, data_fields):
        codes = super()._get_validation_error_codes_by_field(data_fields)
        for name, extra in ERROR_CODES.items():
            if name in codes:
                codes[name] |= extra
        return codes


class GoalFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        choices=GoalState.choices,
        method="by_state",
        help_text=_("current: today in the period; upcoming: not begun; past: ended."),
    )
    kpi = django_filters.ChoiceFilter(choices=GoalKpi.choices)
    owner = IdFilter(field_name="owner")

    class Meta:
        model = Goal
        fields = ["state", "kpi", "owner"]

    def by_state(self, queryset, name, value):
        today = analytics_today()
        return queryset.filter(pk__in=goals_queryset(today=today, state=value).values("pk"))


@extend_schema(tags=["analytics"])
class GoalViewSet(APIViewSetMixin, viewsets.ModelViewSet):
    """Goals: numeric targets for the KPIs over a period, with an owner and their progress
    (see the API description of each field)."""

    queryset = Goal.objects.select_related("owner")
    serializer_class = GoalSerializer
    filterset_class = GoalFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, StableOrderingFilter]
    ordering_fields = ["end", "start", "kpi", "created_at", "id"]
    ordering = ["-end", "id"]
    lookup_value_regex = r"[0-9]+"
    # Model permissions: view to read, add / change / delete to write.
    required_permissions = None
    schema = GoalSchema()

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "today": analytics_today()}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None:  # the page's progress figures, read together
            today = analytics_today()
            prefetch_figures([p for goal in page for p in periods_needed(goal, today=today)])
        return page

    def perform_destroy(self, instance: Goal) -> None:
        delete_goal(goal=instance)


def register(router) -> None:
    router.register("analytics/goals", GoalViewSet, basename="api-analytics-goal")
