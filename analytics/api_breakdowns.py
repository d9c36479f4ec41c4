"""REST API of the dashboard's breakdowns (analytics.breakdowns): purchase timing, revenue by
prefecture / sales channel / product category, and the top customers. Same query parameters
(period, filters), formats and errors as the other analytics endpoints (analytics.api).
"""

from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from drf_standardized_errors.openapi_serializers import ErrorResponse404Serializer
from rest_framework import serializers
from rest_framework.response import Response

from analytics.api import AnalyticsView, PeriodQuerySerializer, _money, _rate
from analytics.breakdowns import (
    DIMENSION_TITLES,
    DIMENSIONS,
    TOP_CUSTOMERS,
    purchase_timing,
    revenue_by,
    top_customers,
)
from analytics.kpis import refreshed_at

MAX_TOP_CUSTOMERS = 100


# --- Query parameters -------------------------------------------------------------------------


class RevenueByQuerySerializer(PeriodQuerySerializer):
    dimension = serializers.ChoiceField(
        choices=[(d, DIMENSION_TITLES[d]) for d in DIMENSIONS],
        help_text=_(
            "prefecture: the customer's; channel: the purchase's sales channel (not the "
            "customer's source channel); category: the items' product categories."
        ),
    )


class TopCustomersQuerySerializer(PeriodQuerySerializer):
    limit = serializers.IntegerField(
        min_value=1,
        max_value=MAX_TOP_CUSTOMERS,
        default=TOP_CUSTOMERS,
        help_text=_("How many customers (1-100)."),
    )


# --- Responses --------------------------------------------------------------------------------


class PeriodResponseSerializer(serializers.Serializer):
    refreshed_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the figures were last brought up to date.")
    )
    start = serializers.DateField()
    end = serializers.DateField()


class TimingCellSerializer(serializers.Serializer):
    weekday = serializers.IntegerField(
        min_value=0, max_value=6, help_text=_("0 = Monday ... 6 = Sunday, local time.")
    )
    hour = serializers.IntegerField(min_value=0, max_value=23, help_text=_("Local hour."))
    purchases = serializers.IntegerField()
    revenue = _money()


class TimingResponseSerializer(PeriodResponseSerializer):
    cells = TimingCellSerializer(many=True, help_text=_("7 x 24 cells, Monday 0h first."))


class RevenueRowSerializer(serializers.Serializer):
    key = serializers.CharField(
        help_text=_("Prefecture code, sales channel or category; empty: none recorded.")
    )
    label = serializers.CharField(help_text=_("The value's name in the request's language."))
    purchases = serializers.IntegerField(
        help_text=_("Purchases with money in this value (a purchase can be in several categories).")
    )
    customers = serializers.IntegerField(help_text=_("Distinct customers."))
    revenue = _money()
    share = _rate(_("Share of the period's revenue."))


class RevenueByResponseSerializer(PeriodResponseSerializer):
    dimension = serializers.CharField()
    title = serializers.CharField()
    rows = RevenueRowSerializer(many=True)


class TopCustomerSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField()
    name = serializers.CharField()
    kana = serializers.CharField()
    prefecture = serializers.CharField(help_text=_("JIS code; empty: none recorded."))
    purchases = serializers.IntegerField()
    revenue = _money()
    share = _rate(_("Share of the period's revenue."))
    last_purchase = serializers.DateTimeField(
        allow_null=True, help_text=_("The customer's last completed purchase in the period.")
    )


class TopCustomersResponseSerializer(PeriodResponseSerializer):
    customers = TopCustomerSerializer(many=True)


# --- Views ------------------------------------------------------------------------------------

NOT_FOUND = {404: ErrorResponse404Serializer}


class TimingView(AnalyticsView):
    """Completed purchases and revenue by local weekday and hour."""

    query_serializer = PeriodQuerySerializer

    @extend_schema(
        parameters=[PeriodQuerySerializer],
        responses={200: TimingResponseSerializer, **NOT_FOUND},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        cells = purchase_timing(start=data["start"], end=data["end"], filters=query.filters())
        result = {"refreshed_at": refreshed_at(), **_period(data), "cells": cells}
        return Response(TimingResponseSerializer(result).data)


class RevenueByView(AnalyticsView):
    """Revenue, purchases and customers by prefecture, sales channel or product category."""

    query_serializer = RevenueByQuerySerializer

    @extend_schema(
        parameters=[RevenueByQuerySerializer],
        responses={200: RevenueByResponseSerializer, **NOT_FOUND},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        dimension = data["dimension"]
        rows = revenue_by(dimension, start=data["start"], end=data["end"], filters=query.filters())
        result = {
            "refreshed_at": refreshed_at(),
            **_period(data),
            "dimension": dimension,
            "title": DIMENSION_TITLES[dimension],
            "rows": rows,
        }
        return Response(RevenueByResponseSerializer(result).data)


class TopCustomersView(AnalyticsView):
    """The customers with the highest revenue in the period."""

    query_serializer = TopCustomersQuerySerializer

    @extend_schema(
        parameters=[TopCustomersQuerySerializer],
        responses={200: TopCustomersResponseSerializer, **NOT_FOUND},
    )
    def get(self, request):
        query = self.query(request)
        data = query.validated_data
        rows = top_customers(
            start=data["start"], end=data["end"], filters=query.filters(), limit=data["limit"]
        )
        result = {"refreshed_at": refreshed_at(), **_period(data), "customers": rows}
        return Response(TopCustomersResponseSerializer(result).data)


def _period(data: dict) -> dict:
    return {"start": data["start"], "end": data["end"]}


urlpatterns = [
    path("analytics/timing/", TimingView.as_view(), name="api-analytics-timing"),
    path("analytics/revenue-by/", RevenueByView.as_view(), name="api-analytics-revenue-by"),
    path(
        "analytics/top-customers/", TopCustomersView.as_view(), name="api-analytics-top-customers"
    ),
]
