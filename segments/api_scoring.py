"""API of the scores (see segments/api_urls.py): scoring runs (list, status, start one),
the scores of a run with filters, a customer's scores across runs, the CSV export and the
figures of the RFM page.

Reading takes ``segments.view_*`` (sales, marketers, admins); starting a run takes
``segments.run_scoring`` (marketers, admins). A run is started in a worker: the answer is a
202 with the pending run, whose ``progress`` and ``status`` the client polls; a 409 if a run
is already pending or running.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.http import content_disposition_header
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from drf_standardized_errors.openapi_serializers import ErrorResponse404Serializer
from rest_framework import exceptions, generics, mixins, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from crm.api.schema import AutoSchema
from customers.api import MAX_ID, BooleanFilter, ConflictResponseSerializer
from customers.models import Customer
from segments import reports
from segments.exporting import iter_scores_csv
from segments.models import (
    CustomerScore,
    ParetoClass,
    RfmLabel,
    RunPhase,
    RunStatus,
    RunTrigger,
    ScoringRun,
)
from segments.runs import ScoringAlreadyRunning, request_scoring_run

VIEW_RUNS = ("segments.view_scoringrun",)
VIEW_SCORES = ("segments.view_scoringrun", "segments.view_customerscore")
RUN_SCORING = ("segments.view_scoringrun", "segments.run_scoring")
# The class letters alone: the same enum as the analytics API's Pareto classes.
PARETO_CLASSES = [cls.value for cls in ParetoClass]
# A window longer than this (100 years) cannot be meant.
MAX_WINDOW_DAYS = 36_500


# --- Errors -----------------------------------------------------------------------------------


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "scoring_already_running"
    default_detail = _("A scoring run is already pending or running; try again when it is done.")


# --- Scoring runs -----------------------------------------------------------------------------


class ScoringRunSerializer(serializers.ModelSerializer):
    phase = serializers.ChoiceField(
        choices=RunPhase.choices,
        allow_blank=True,
        read_only=True,
        help_text=_("Empty: not started or finished."),
    )
    is_active = serializers.BooleanField(
        read_only=True, help_text=_("Pending or running: poll until it is false.")
    )
    revenue = serializers.DecimalField(max_digits=18, decimal_places=2, read_only=True)

    class Meta:
        model = ScoringRun
        fields = [
            "id",
            "status",
            "is_active",
            "trigger",
            "requested_by",
            "as_of",
            "window_days",
            "settings",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "progress",
            "phase",
            "customers_scored",
            "purchases_counted",
            "revenue",
            "counts",
            "error",
        ]
        read_only_fields = fields


class ScoringRunRequestSerializer(serializers.Serializer):
    as_of = serializers.DateField(
        required=False,
        allow_null=True,
        default=None,
        help_text=_(
            "Recency is counted up to this date; empty: the day after the newest purchase."
        ),
    )
    window_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=MAX_WINDOW_DAYS,
        help_text=_("Only purchases in this many days before the as-of date; empty: all history."),
    )


class ScoringRunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=RunTrigger.choices)

    class Meta:
        model = ScoringRun
        fields = ["status", "trigger"]


@extend_schema(tags=["scores"])
class ScoringRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Scoring runs, newest first. POST starts one in a worker (202); only one runs at a time."""

    queryset = ScoringRun.objects.all()
    serializer_class = ScoringRunSerializer
    filterset_class = ScoringRunFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
    parser_classes = [JSONParser]
    ordering = ("-created_at", "-id")
    required_permissions = {
        "GET": VIEW_RUNS,
        "HEAD": VIEW_RUNS,
        "OPTIONS": VIEW_RUNS,
        "POST": RUN_SCORING,
    }

    @extend_schema(
        request=ScoringRunRequestSerializer,
        responses={202: ScoringRunSerializer, 409: ConflictResponseSerializer},
    )
    def create(self, request):
        query = ScoringRunRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        try:
            run = request_scoring_run(
                trigger=RunTrigger.API, requested_by=request.user, **query.validated_data
            )
        except ScoringAlreadyRunning as error:
            raise Conflict(str(error)) from error
        return Response(ScoringRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


# --- Scores -----------------------------------------------------------------------------------


class CustomerScoreSerializer(serializers.ModelSerializer):
    pareto_class = serializers.ChoiceField(choices=PARETO_CLASSES, read_only=True)
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)

    class Meta:
        model = CustomerScore
        fields = [
            "run",
            "customer",
            "customer_external_id",
            "recency_days",
            "frequency",
            "monetary",
            "first_purchase_on",
            "last_purchase_on",
            "r",
            "f",
            "m",
            "rfm_code",
            "rfm_label",
            "decile",
            "cumulative_share",
            "pareto_class",
            "top20",
        ]
        read_only_fields = fields


class CustomerScoreHistorySerializer(CustomerScoreSerializer):
    run_as_of = serializers.DateField(source="run.as_of", read_only=True, allow_null=True)
    run_finished_at = serializers.DateTimeField(
        source="run.finished_at", read_only=True, allow_null=True
    )

    class Meta(CustomerScoreSerializer.Meta):
        fields = ["run", "run_as_of", "run_finished_at", *CustomerScoreSerializer.Meta.fields[1:]]
        read_only_fields = fields


class _RangeFilter(django_filters.NumberFilter):
    """A whole number from 1 to ``maximum``; anything else is a 400, not ignored."""

    field_class = forms.IntegerField
    maximum = 5

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=self.maximum, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 5})
class ScoreValueFilter(_RangeFilter):
    maximum = 5


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 10})
class DecileFilter(_RangeFilter):
    maximum = 10


class ScoreFilter(django_filters.FilterSet):
    rfm_label = django_filters.ChoiceFilter(choices=RfmLabel.choices)
    pareto_class = django_filters.ChoiceFilter(choices=[(c, c) for c in PARETO_CLASSES])
    decile = DecileFilter(field_name="decile")
    r = ScoreValueFilter(field_name="r")
    f = ScoreValueFilter(field_name="f")
    m = ScoreValueFilter(field_name="m")
    top20 = BooleanFilter()
    customer_external_id = django_filters.CharFilter(
        field_name="customer__external_id", max_length=50, label=_("Customer's external ID")
    )

    class Meta:
        model = CustomerScore
        fields = ["rfm_label", "pareto_class", "decile", "r", "f", "m", "top20"]


class RunQuerySerializer(serializers.Serializer):
    run = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text=_("ID of a succeeded scoring run; default: the latest succeeded run."),
    )


class MigrationQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text=_("The later run; default: the latest succeeded run."),
    )
    before = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text=_("The earlier run; default: the succeeded run before the later one."),
    )


def _succeeded_run(pk: int | None) -> ScoringRun:
    """The succeeded run ``pk``, or the latest one; a 404 if there is none."""
    if pk is None:
        run = ScoringRun.objects.latest_succeeded()
        if run is None:
            raise exceptions.NotFound(_("No scoring run has succeeded yet."))
        return run
    return get_object_or_404(reports.runs_with_scores(), pk=pk)


def _requested_run(request) -> ScoringRun:
    query = RunQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return _succeeded_run(query.validated_data.get("run"))


# Report figures, as the schema documents them.


class GridCellSerializer(serializers.Serializer):
    r = serializers.IntegerField()
    f = serializers.IntegerField()
    customers = serializers.IntegerField()
    share = serializers.FloatField(help_text=_("Fraction 0-1 of the scored customers."))
    average_monetary = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)


class GridRowSerializer(serializers.Serializer):
    r = serializers.IntegerField()
    cells = GridCellSerializer(many=True, help_text=_("F 1 to 5."))


class RfGridSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    total = serializers.IntegerField()
    max_customers = serializers.IntegerField()
    rows = GridRowSerializer(many=True, help_text=_("R 5 down to 1."))


class LabelShareSerializer(serializers.Serializer):
    rfm_label = serializers.ChoiceField(source="label", choices=RfmLabel.choices)
    name = serializers.CharField()
    definition = serializers.CharField()
    customers = serializers.IntegerField()
    share = serializers.FloatField()
    revenue = serializers.DecimalField(max_digits=18, decimal_places=2)
    revenue_share = serializers.FloatField()


class LabelDistributionSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    labels = LabelShareSerializer(many=True)


class DecileSerializer(serializers.Serializer):
    decile = serializers.IntegerField()
    customers = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=18, decimal_places=2)
    share = serializers.FloatField()
    cumulative_share = serializers.FloatField()


class DecileTableSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    deciles = DecileSerializer(many=True)


class CurvePointSerializer(serializers.Serializer):
    customer_share = serializers.FloatField()
    revenue_share = serializers.FloatField()


class ParetoClassShareSerializer(serializers.Serializer):
    pareto_class = serializers.ChoiceField(choices=PARETO_CLASSES)
    name = serializers.CharField()
    customers = serializers.IntegerField()
    share = serializers.FloatField()
    revenue = serializers.DecimalField(max_digits=18, decimal_places=2)
    revenue_share = serializers.FloatField()


class ParetoSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    customers = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=18, decimal_places=2)
    points = CurvePointSerializer(many=True)
    top20_customers = serializers.IntegerField()
    top20_customer_share = serializers.FloatField()
    top20_revenue_share = serializers.FloatField()
    classes = ParetoClassShareSerializer(many=True)


class MigrationLabelSerializer(serializers.Serializer):
    label = serializers.CharField(help_text=_("An RFM label, or not_scored."))
    name = serializers.CharField()


class MigrationRowSerializer(MigrationLabelSerializer):
    counts = serializers.ListField(
        child=serializers.IntegerField(), help_text=_("Customers per label in the later run.")
    )
    total = serializers.IntegerField()


class MigrationSerializer(serializers.Serializer):
    before = serializers.IntegerField()
    after = serializers.IntegerField()
    labels = MigrationLabelSerializer(many=True)
    rows = MigrationRowSerializer(many=True, help_text=_("Per label in the earlier run."))
    column_totals = serializers.ListField(child=serializers.IntegerField())
    total = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class ScoresCSVRenderer(renderers.BaseRenderer):
    """Lets clients ask for ``text/csv``; the export streams its own response."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ScoresSchema(AutoSchema):
    """Documents the validation errors of the run query parameters (``run``, ``before``,
    ``after``), which are checked by a serializer rather than a filter."""

    _INTEGER_ERRORS = {"invalid", "max_value", "min_value", "max_string_length"}

    def _get_extra_validation_errors(self) -> dict[str, set[str]]:
        errors = dict(super()._get_extra_validation_errors())
        if self.method == "GET":
            action = getattr(self.view, "action", None)
            names = ("before", "after") if action == "migration" else ("run",)
            for name in names:
                errors[name] = {*errors.get(name, ()), *self._INTEGER_ERRORS}
        return errors


_RUN_PARAMETER = [RunQuerySerializer]
_NOT_FOUND = {404: ErrorResponse404Serializer}


@extend_schema(tags=["scores"])
class ScoreViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The scores of one succeeded scoring run (default: the latest), one row per customer
    with a completed purchase in the run's window, and the run's report figures."""

    serializer_class = CustomerScoreSerializer
    filterset_class = ScoreFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
    ordering = ("id",)
    required_permissions = VIEW_SCORES
    schema = ScoresSchema()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request
            return CustomerScore.objects.none()
        run = _requested_run(self.request)
        return CustomerScore.objects.filter(run=run).select_related("customer")

    @extend_schema(
        parameters=_RUN_PARAMETER,
        responses={200: CustomerScoreSerializer(many=True), **_NOT_FOUND},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def handle_exception(self, exc):
        # An export that fails answers its error in JSON, like every other error.
        if isinstance(getattr(self.request, "accepted_renderer", None), ScoresCSVRenderer):
            self.request.accepted_renderer = renderers.JSONRenderer()
            self.request.accepted_media_type = renderers.JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        parameters=_RUN_PARAMETER,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description=_("The run's scores, one row per customer.")
            ),
            **_NOT_FOUND,
        },
    )
    @action(
        detail=False,
        url_path="export",
        renderer_classes=[ScoresCSVRenderer, renderers.JSONRenderer],
        filter_backends=[],
        pagination_class=None,
    )
    def export(self, request):
        """Every score of the run as CSV (``cumulative_share`` as a fraction 0-1), streamed."""
        run = _requested_run(request)
        response = StreamingHttpResponse(
            iter_scores_csv(run=run), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = content_disposition_header(
            True, f"scores-run-{run.pk}.csv"
        )
        return response

    @extend_schema(parameters=_RUN_PARAMETER, responses={200: RfGridSerializer, **_NOT_FOUND})
    @action(detail=False, url_path="rfm-grid", filter_backends=[], pagination_class=None)
    def rfm_grid(self, request):
        """Customers and average monetary value per R (rows 5..1) × F (cells 1..5) cell."""
        run = _requested_run(request)
        data = {"run": run.pk, **reports.cached(reports.rf_grid, run=run)}
        return Response(RfGridSerializer(data).data)

    @extend_schema(
        parameters=_RUN_PARAMETER, responses={200: LabelDistributionSerializer, **_NOT_FOUND}
    )
    @action(detail=False, url_path="labels", filter_backends=[], pagination_class=None)
    def labels(self, request):
        """Customers, revenue and their shares per RFM label."""
        run = _requested_run(request)
        data = {"run": run.pk, "labels": reports.cached(reports.label_distribution, run=run)}
        return Response(LabelDistributionSerializer(data).data)

    @extend_schema(parameters=_RUN_PARAMETER, responses={200: DecileTableSerializer, **_NOT_FOUND})
    @action(detail=False, url_path="deciles", filter_backends=[], pagination_class=None)
    def deciles(self, request):
        """Customers, revenue, share and cumulative share of revenue per decile 1..10."""
        run = _requested_run(request)
        data = {"run": run.pk, "deciles": reports.cached(reports.decile_table, run=run)}
        return Response(DecileTableSerializer(data).data)

    @extend_schema(parameters=_RUN_PARAMETER, responses={200: ParetoSerializer, **_NOT_FOUND})
    @action(detail=False, url_path="pareto", filter_backends=[], pagination_class=None)
    def pareto(self, request):
        """The Pareto curve (about 100 points), the top 20%'s revenue share, A/B/C classes."""
        run = _requested_run(request)
        data = {"run": run.pk, **reports.cached(reports.pareto_curve, run=run)}
        return Response(ParetoSerializer(data).data)

    @extend_schema(
        parameters=[MigrationQuerySerializer], responses={200: MigrationSerializer, **_NOT_FOUND}
    )
    @action(detail=False, url_path="migration", filter_backends=[], pagination_class=None)
    def migration(self, request):
        """Customers per (label in the earlier run, label in the later run), "not scored"
        included. A 404 if there is no earlier succeeded run to compare with."""
        query = MigrationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after = _succeeded_run(query.validated_data.get("after"))
        if "before" in query.validated_data:
            before = _succeeded_run(query.validated_data["before"])
        else:
            before = reports.previous_run(run=after)
            if before is None:
                raise exceptions.NotFound(_("There is no earlier succeeded run to compare with."))
        data = reports.cached(reports.migration_matrix, before=before, after=after)
        return Response(MigrationSerializer(data).data)


# --- A customer's scores across runs ------------------------------------------------------------


@extend_schema(tags=["scores"])
class CustomerScoreHistoryView(generics.ListAPIView):
    """One customer's scores in every succeeded run whose scores are kept, newest first."""

    serializer_class = CustomerScoreHistorySerializer
    filter_backends: list = []
    ordering = ("-id",)
    required_permissions = ("customers.view_customer", *VIEW_SCORES)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CustomerScore.objects.none()
        customer = get_object_or_404(
            Customer.objects.visible_to(self.request.user), pk=self.kwargs["pk"]
        )
        return CustomerScore.objects.filter(
            customer=customer, run__status=RunStatus.SUCCEEDED
        ).select_related("run", "customer")


urlpatterns = [
    path(
        "customers/<int:pk>/scores/",
        CustomerScoreHistoryView.as_view(),
        name="api-customer-scores",
    ),
]


def register(router) -> None:
    router.register("scoring-runs", ScoringRunViewSet, basename="api-scoring-run")
    router.register("scores", ScoreViewSet, basename="api-score")
