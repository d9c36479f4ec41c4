"""REST API of the analytics figures (read-only): KPIs with comparisons, cohorts, LTV,
deciles and Pareto. Every view parses its query, calls one function of analytics.kpis /
cohorts / deciles and serialises the result; the figures come from the rollups, so they are
as fresh as ``refreshed_at`` says (a refresh runs every few minutes).

Money is a string with two decimals (as in the customers API), rates are numbers 0-1 or null
when their denominator is zero, dates are ISO ``YYYY-MM-DD`` in the organisation's time zone.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from drf_standardized_errors.openapi_serializers import ErrorResponse404Serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.cohorts import average_ltv, cohort_table, ltv_by_channel, ltv_by_cohort
from analytics.deciles import DEFAULT_A, DEFAULT_B, decile_table, pareto_table
from analytics.definitions import help_text
from analytics.kpis import (
    Filters,
    customer_set,
    kpis_with_comparisons,
    refreshed_at,
    shift_years,
)
from crm.api.filters import MAX_ID
from crm.api.schema import AutoSchema
from customers.models import SourceChannel
from customers.prefectures import Prefecture
from segments.models import Segment

REQUIRED_PERMISSIONS = ("analytics.view_dashboard",)
MAX_YEARS = 10
EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)


# Dates from 1900 to 2999: far enough for any business's history, and comparisons (up to 20
# years back, for the previous period of a 10-year one's last year) stay within the calendar.
DATE_PATTERN = r"^(?:19[0-9]{2}|2[0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"


@extend_schema_field({"type": "string", "format": "date", "pattern": DATE_PATTERN})
class PeriodDateField(serializers.DateField):
    """A date, YYYY-MM-DD, from 1900-01-01 to 2999-12-31."""


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=2, **kwargs)


def _rate(help_text) -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, min_value=0, max_value=1, help_text=help_text)


# --- Query parameters -------------------------------------------------------------------------


class FilterQuerySerializer(serializers.Serializer):
    prefecture = serializers.ChoiceField(
        choices=Prefecture.choices,
        required=False,
        help_text=_("Only customers of this prefecture (JIS code)."),
    )
    channel = serializers.ChoiceField(
        choices=SourceChannel.choices,
        required=False,
        help_text=_("Only customers from this source channel."),
    )
    segment = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text=_("Only the current members of this segment (its ID)."),
    )

    def filters(self) -> Filters:
        """The filters asked for; a segment that does not exist is a 404, as a reference to
        any other missing record is in this API."""
        data = self.validated_data
        segment = data.get("segment")
        if segment is not None and not Segment.objects.filter(pk=segment).exists():
            raise exceptions.NotFound(_("No segment with this ID."))
        return Filters(
            prefecture=data.get("prefecture"),
            channel=data.get("channel"),
            segment=data.get("segment"),
        )


def _check_range(start: date | None, end: date | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise serializers.ValidationError(
                {
                    name: serializers.ErrorDetail(
                        _("Enter a date between %(first)s and %(last)s.")
                        % {"first": EARLIEST.isoformat(), "last": LATEST.isoformat()},
                        code="out_of_range",
                    )
                }
            )
    if start is None or end is None:
        return
    if end < start:
        raise serializers.ValidationError(
            {"end": serializers.ErrorDetail(_("The end is before the start."), code="before_start")}
        )
    if end >= shift_years(start, MAX_YEARS):
        raise serializers.ValidationError(
            {
                "end": serializers.ErrorDetail(
                    _("A period can be at most %(years)d years long.") % {"years": MAX_YEARS},
                    code="too_long",
                )
            }
        )


class PeriodQuerySerializer(FilterQuerySerializer):
    start = PeriodDateField(help_text=_("First day of the period (YYYY-MM-DD), included."))
    end = PeriodDateField(help_text=_("Last day of the period (YYYY-MM-DD), included."))

    def validate(self, attrs):
        _check_range(attrs["start"], attrs["end"])
        return attrs


class ParetoQuerySerializer(PeriodQuerySerializer):
    a = serializers.DecimalField(
        max_digits=3,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("0.99"),
        default=DEFAULT_A,
        help_text=_("Class A while the revenue share before the customer is below this."),
    )
    b = serializers.DecimalField(
        max_digits=3,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("0.99"),
        default=DEFAULT_B,
        help_text=_("Class B while the share before the customer is below this (above a)."),
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs["b"] <= attrs["a"]:
            raise serializers.ValidationError(
                {"b": serializers.ErrorDetail(_("b must be above a."), code="not_above_a")}
            )
        return attrs


class MonthsQuerySerializer(serializers.Serializer):
    start = PeriodDateField(
        required=False,
        help_text=_("Cohorts from the month of this day (YYYY-MM-DD); default: the first."),
    )
    end = PeriodDateField(
        required=False,
        help_text=_("Cohorts up to the month of this day (YYYY-MM-DD); default: the newest."),
    )

    def validate(self, attrs):
        _check_range(attrs.get("start"), attrs.get("end"))
        return attrs


class CohortQuerySerializer(MonthsQuerySerializer, FilterQuerySerializer):
    pass


class LtvQuerySerializer(CohortQuerySerializer):
    """The same cohorts and filters as the retention table's: every LTV figure (average, by
    cohort, by source channel) counts only the customers matching the filters now."""


# --- Responses ---------------------------------------------------------------------------------


class KpiFiguresSerializer(serializers.Serializer):
    # Help texts: the definitions the dashboard shows (analytics.definitions).
    start = serializers.DateField()
    end = serializers.DateField()
    customers = serializers.IntegerField(help_text=help_text("customers"))
    active_customers = serializers.IntegerField(help_text=help_text("active_customers"))
    new_customers = serializers.IntegerField(help_text=help_text("new_customers"))
    revenue = _money(help_text=help_text("revenue"))
    purchases = serializers.IntegerField(help_text=help_text("purchases"))
    aov = _money(allow_null=True, help_text=help_text("aov"))
    purchases_per_customer = serializers.FloatField(
        allow_null=True, help_text=help_text("purchases_per_customer")
    )
    spend_per_customer = _money(allow_null=True, help_text=help_text("spend_per_customer"))
    repeat_rate = _rate(help_text("repeat_rate"))
    retention_rate = _rate(help_text("retention_rate"))
    churn_rate = _rate(help_text("churn_rate"))


class KpiResponseSerializer(KpiFiguresSerializer):
    refreshed_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the figures were last brought up to date.")
    )
    previous = KpiFiguresSerializer(help_text=_("The equal-length period just before."))
    last_year = KpiFiguresSerializer(help_text=_("The same dates a year earlier."))


class CohortRowSerializer(serializers.Serializer):
    cohort = serializers.DateField(help_text=_("First day of the month of first purchase."))
    size = serializers.IntegerField()
    retained = serializers.ListField(
        child=serializers.IntegerField(),
        help_text=_("Members with a purchase in month k after the cohort's (k = 0, 1, ...)."),
    )
    retention = serializers.ListField(child=serializers.FloatField(allow_null=True))


class CohortResponseSerializer(serializers.Serializer):
    refreshed_at = serializers.DateTimeField(allow_null=True)
    cohorts = CohortRowSerializer(many=True)


class LtvCohortSerializer(serializers.Serializer):
    cohort = serializers.DateField()
    customers = serializers.IntegerField()
    revenue = _money()
    ltv = _money(allow_null=True, help_text=_("Cumulative revenue / cohort size."))
    cumulative_ltv = serializers.ListField(
        child=_money(allow_null=True),
        help_text=_("LTV counting the purchases up to month k after the cohort's."),
    )


class LtvChannelSerializer(serializers.Serializer):
    channel = serializers.CharField(help_text=_("Source channel; empty: none recorded."))
    customers = serializers.IntegerField()
    revenue = _money()
    ltv = _money(allow_null=True)


class LtvAverageSerializer(serializers.Serializer):
    customers = serializers.IntegerField()
    revenue = _money()
    ltv = _money(allow_null=True)


class LtvResponseSerializer(serializers.Serializer):
    refreshed_at = serializers.DateTimeField(allow_null=True)
    average = LtvAverageSerializer()
    by_cohort = LtvCohortSerializer(many=True)
    by_channel = LtvChannelSerializer(many=True)


class DecileRowSerializer(serializers.Serializer):
    decile = serializers.IntegerField(min_value=1, max_value=10)
    customers = serializers.IntegerField()
    revenue = _money()
    revenue_share = _rate(_("Share of the period's revenue."))
    cumulative_revenue_share = _rate(_("Share of deciles 1 to this one."))
    min_spend = _money(allow_null=True)
    max_spend = _money(allow_null=True)
    average_spend = _money(allow_null=True)


class DecileResponseSerializer(serializers.Serializer):
    refreshed_at = serializers.DateTimeField(allow_null=True)
    start = serializers.DateField()
    end = serializers.DateField()
    deciles = DecileRowSerializer(many=True)


class ParetoClassSerializer(serializers.Serializer):
    pareto_class = serializers.ChoiceField(choices=["A", "B", "C"])
    customers = serializers.IntegerField()
    customer_share = _rate(_("Share of the period's active customers."))
    revenue = _money()
    revenue_share = _rate(_("Share of the period's revenue."))


class ParetoPointSerializer(serializers.Serializer):
    customer_share = serializers.FloatField()
    customers = serializers.IntegerField()
    revenue_share = _rate(_("Revenue share of the top customers up to this share."))


class ParetoResponseSerializer(serializers.Serializer):
    refreshed_at = serializers.DateTimeField(allow_null=True)
    start = serializers.DateField()
    end = serializers.DateField()
    customers = serializers.IntegerField()
    revenue = _money()
    a_threshold = serializers.DecimalField(max_digits=3, decimal_places=2)
    b_threshold = serializers.DecimalField(max_digits=3, decimal_places=2)
    top_20_customers = serializers.IntegerField(help_text=_("Customers in deciles 1-2."))
    top_20_revenue_share = _rate(_("Revenue share of deciles 1-2."))
    classes = ParetoClassSerializer(many=True)
    curve = ParetoPointSerializer(many=True)


# --- Views ------------------------------------------------------------------------------------


class AnalyticsSchema(AutoSchema):
    """Documents the validation errors of the query parameters."""

    def _get_extra_validation_errors(self) -> dict[str, set[str]]:
        errors = dict(super()._get_extra_validation_errors())
        query = getattr(self.view, "query_serializer", None)
        if query is not None:
            for name, field in query().fields.items():
                codes = {"invalid", *field.error_messages}
                if name in ("start", "end"):
                    codes |= {"out_of_range"}
                if name == "end":
                    codes |= {"before_start", "too_long"}
                if name == "b":
                    codes |= {"not_above_a"}
                errors[name] = errors.get(name, set()) | codes
        return errors


class AnalyticsView(APIView):
    required_permissions = REQUIRED_PERMISSIONS
    schema = AnalyticsSchema()
    query_serializer: type[serializers.Serializer]

    def query(self, request) -> serializers.Serializer:
        query = self.query_serializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return query


class KpiView(AnalyticsView):
    """KPIs of a period with the previous equal-length period and the same dates last year."""

    query_serializer = PeriodQuerySerializer

    @extend_schema(
        parameters=[PeriodQuerySerializer],
        responses={200: KpiResponseSerializer, 404: ErrorResponse404Serializer},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        figures = kpis_with_comparisons(
            start=data["start"], end=data["end"], filters=query.filters()
        )
        return Response(KpiResponseSerializer({**figures, "refreshed_at": refreshed_at()}).data)


class CohortView(AnalyticsView):
    """Retention of each acquisition cohort (month of first purchase), month by month."""

    query_serializer = CohortQuerySerializer

    @extend_schema(
        parameters=[CohortQuerySerializer],
        responses={200: CohortResponseSerializer, 404: ErrorResponse404Serializer},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        table = cohort_table(
            start_month=data.get("start"), end_month=data.get("end"), filters=query.filters()
        )
        result = {"cohorts": table, "refreshed_at": refreshed_at()}
        return Response(CohortResponseSerializer(result).data)


class LtvView(AnalyticsView):
    """Historical lifetime value by acquisition cohort and by current source channel, of the
    customers matching the filters."""

    query_serializer = LtvQuerySerializer

    @extend_schema(
        parameters=[LtvQuerySerializer],
        responses={200: LtvResponseSerializer, 404: ErrorResponse404Serializer},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        months = {"start_month": data.get("start"), "end_month": data.get("end")}
        customers = customer_set(query.filters())
        result = {
            "refreshed_at": refreshed_at(),
            "average": average_ltv(**months, customers=customers),
            "by_cohort": ltv_by_cohort(**months, customers=customers),
            "by_channel": ltv_by_channel(**months, customers=customers),
        }
        return Response(LtvResponseSerializer(result).data)


class DecileView(AnalyticsView):
    """The period's active customers in ten equal groups by revenue (decile 1: the top)."""

    query_serializer = PeriodQuerySerializer

    @extend_schema(
        parameters=[PeriodQuerySerializer],
        responses={200: DecileResponseSerializer, 404: ErrorResponse404Serializer},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        table = decile_table(start=data["start"], end=data["end"], filters=query.filters())
        result = {
            "refreshed_at": refreshed_at(),
            "start": data["start"],
            "end": data["end"],
            "deciles": table,
        }
        return Response(DecileResponseSerializer(result).data)


class ParetoView(AnalyticsView):
    """Pareto (ABC) classes of the period's customers and the cumulative revenue curve."""

    query_serializer = ParetoQuerySerializer

    @extend_schema(
        parameters=[ParetoQuerySerializer],
        responses={200: ParetoResponseSerializer, 404: ErrorResponse404Serializer},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        table = pareto_table(
            start=data["start"],
            end=data["end"],
            filters=query.filters(),
            a=data["a"],
            b=data["b"],
        )
        result = {**table, "refreshed_at": refreshed_at(), "start": data["start"]}
        result["end"] = data["end"]
        return Response(ParetoResponseSerializer(result).data)


urlpatterns = [
    path("analytics/kpis/", KpiView.as_view(), name="api-analytics-kpis"),
    path("analytics/cohorts/", CohortView.as_view(), name="api-analytics-cohorts"),
    path("analytics/ltv/", LtvView.as_view(), name="api-analytics-ltv"),
    path("analytics/deciles/", DecileView.as_view(), name="api-analytics-deciles"),
    path("analytics/pareto/", ParetoView.as_view(), name="api-analytics-pareto"),
]


def register(router) -> None:
    """The analytics API has no router collections: its routes are in ``urlpatterns``."""
