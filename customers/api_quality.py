"""API for data quality (summary, duplicates, merge) and personal data requests (export,
erasure). The views parse input, call one function of customers.quality / merging / privacy
and serialise the result; the serializers are what the OpenAPI schema documents."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from drf_standardized_errors.openapi_serializers import ErrorResponse404Serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.filters import MAX_ID
from crm.api.pagination import CursorPagination
from crm.api.schema import AutoSchema
from customers.merging import MAX_MERGED, merge_customers
from customers.models import Customer
from customers.privacy import HISTORY_FIELDS, disclose_customer_data, erase_customer
from customers.quality import (
    GROUPS_PER_PAGE,
    PROFILE_FIELDS,
    RULE_LABELS,
    USES,
    attach_customers,
    latest_duplicate_groups,
    latest_summary,
)

# --- Query parameters and their schema ----------------------------------------------------


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.BooleanField(
        default=False,
        help_text=_(
            "Recompute instead of answering the figures computed within the last hour "
            "(slow on large databases)."
        ),
    )


class DuplicatePagination(PageNumberPagination):
    page_size = GROUPS_PER_PAGE
    page_size_query_param = "page_size"
    max_page_size = CursorPagination.max_page_size
    # The API's strict page_size: a wrong value is a 400, never silently replaced.
    get_page_size = CursorPagination.get_page_size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1)
        return parameters


class QualitySchema(AutoSchema):
    """Documents the validation errors of the query parameters: ``refresh``, and the
    page-numbered list's ``page_size``."""

    def _get_extra_validation_errors(self) -> dict[str, set[str]]:
        errors = dict(super()._get_extra_validation_errors())
        if self.method == "GET":
            errors.setdefault("refresh", set()).add("invalid")
            if isinstance(self._get_paginator(), DuplicatePagination):
                errors.setdefault(DuplicatePagination.page_size_query_param, set()).add("invalid")
        return errors


# --- Data quality summary ---------------------------------------------------------------------


class FieldRateSerializer(serializers.Serializer):
    profile_field = serializers.ChoiceField(
        source="key", choices=[(f.key, f.label) for f in PROFILE_FIELDS]
    )
    label = serializers.CharField(help_text=_("The field's name in the request's language."))
    filled = serializers.IntegerField(source="count", help_text=_("Customers with a value."))
    missing = serializers.IntegerField(help_text=_("Customers without a value."))
    share = serializers.FloatField(help_text=_("Fill rate, 0 to 1."))


class UseRateSerializer(serializers.Serializer):
    analysis = serializers.ChoiceField(source="key", choices=[(u.key, u.label) for u in USES])
    label = serializers.CharField()
    why = serializers.CharField(help_text=_("Why customers outside the share are left out."))
    usable = serializers.IntegerField(source="count")
    share = serializers.FloatField(help_text=_("Usable share, 0 to 1."))


class QualitySummarySerializer(serializers.Serializer):
    computed_at = serializers.DateTimeField(help_text=_("When these figures were computed."))
    total = serializers.IntegerField(help_text=_("Customers counted (erased ones excluded)."))
    fields = FieldRateSerializer(many=True)
    uses = UseRateSerializer(many=True)


class DataQualityView(APIView):
    """Fill rate of each profile field and the share of customers usable for each analysis."""

    required_permissions = ("customers.view_customer",)
    schema = QualitySchema()

    @extend_schema(parameters=[RefreshSerializer], responses={200: QualitySummarySerializer})
    def get(self, request):
        query = RefreshSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        summary, computed_at = latest_summary(
            Customer.objects.visible_to(request.user), refresh=query.validated_data["refresh"]
        )
        data = {"computed_at": computed_at, **vars(summary)}
        return Response(QualitySummarySerializer(data).data)


# --- Duplicates -------------------------------------------------------------------------------


class DuplicateCustomerSerializer(serializers.ModelSerializer):
    purchase_count = serializers.IntegerField(help_text=_("Completed purchases."))
    spend = serializers.DecimalField(
        max_digits=16, decimal_places=2, allow_null=True, help_text=_("Completed purchases.")
    )
    last_purchase_at = serializers.DateTimeField(allow_null=True)

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
            "phone",
            "birthday",
            "gender",
            "prefecture",
            "postal_code",
            "address",
            "email_opt_in",
            "created_at",
            "purchase_count",
            "spend",
            "last_purchase_at",
        ]


class DuplicateGroupSerializer(serializers.Serializer):
    customer_ids = serializers.ListField(child=serializers.IntegerField())
    rules = serializers.ListField(
        child=serializers.ChoiceField(choices=list(RULE_LABELS.items())),
        help_text=_("Why the records are probably the same person."),
    )
    reasons = serializers.ListField(child=serializers.CharField())
    keys = serializers.DictField(
        child=serializers.CharField(), help_text=_("The shared value, per rule.")
    )
    customers = DuplicateCustomerSerializer(many=True)


class DuplicateListView(generics.ListAPIView):
    """Groups of probable duplicates: same e-mail, same phone, or same kana name and birthday."""

    required_permissions = ("customers.view_customer",)
    serializer_class = DuplicateGroupSerializer
    pagination_class = DuplicatePagination
    filter_backends: list = []
    schema = QualitySchema()

    @extend_schema(parameters=[RefreshSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        query = RefreshSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        visible = Customer.objects.visible_to(request.user)
        groups, _computed_at = latest_duplicate_groups(
            visible, refresh=query.validated_data["refresh"]
        )
        page = attach_customers(self.paginate_queryset(groups), visible)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


# --- Merge ------------------------------------------------------------------------------------


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Error409Serializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ErrorResponse409Serializer(serializers.Serializer):
    type = serializers.CharField()
    errors = Error409Serializer(many=True)


class MergeRequestSerializer(serializers.Serializer):
    keep = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text=_("ID of the customer to keep.")
    )
    merge = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        min_length=1,
        max_length=MAX_MERGED,
        help_text=_("IDs of the customers merged into it and then deleted."),
    )


class MergeLogSerializer(serializers.Serializer):
    merged_customer_id = serializers.IntegerField()
    merged_external_id = serializers.CharField()
    moved = serializers.DictField(
        child=serializers.IntegerField(), help_text=_("Rows moved to the kept customer, per kind.")
    )
    filled_fields = serializers.ListField(
        child=serializers.CharField(),
        help_text=_("Empty fields of the kept customer filled from the merged one."),
    )
    merged_at = serializers.DateTimeField()


class MergeResultSerializer(serializers.Serializer):
    kept = serializers.IntegerField(source="kept_id")
    merges = MergeLogSerializer(many=True)


class MergeView(APIView):
    """Merge probable duplicates into the customer kept, in one transaction.

    Purchases, tickets, interactions, consent records, tags and history move to the kept
    customer, its empty fields are filled from the others, the most recent consent decision
    stands, and the merged customers are deleted.
    """

    required_permissions = ("customers.view_customer", "customers.merge_customer")

    @extend_schema(
        request=MergeRequestSerializer,
        responses={
            200: MergeResultSerializer,
            404: ErrorResponse404Serializer,
            409: ErrorResponse409Serializer,
        },
    )
    def post(self, request):
        serializer = MergeRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        keep_id = serializer.validated_data["keep"]
        merge_ids = list(dict.fromkeys(serializer.validated_data["merge"]))
        found = Customer.objects.visible_to(request.user).in_bulk([keep_id, *merge_ids])
        if len(found) != len({keep_id, *merge_ids}):
            raise exceptions.NotFound(_("No customer with one of these IDs."))
        try:
            logs = merge_customers(
                keep=found[keep_id], duplicates=[found[pk] for pk in merge_ids], by=request.user
            )
        except DjangoValidationError as error:
            raise Conflict(" ".join(error.messages)) from error
        result = {"kept_id": keep_id, "merges": logs}
        return Response(MergeResultSerializer(result).data)


# --- Personal data requests -------------------------------------------------------------------


class ExportProfileSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    family_name = serializers.CharField(allow_blank=True)
    given_name = serializers.CharField(allow_blank=True)
    family_name_kana = serializers.CharField(allow_blank=True)
    given_name_kana = serializers.CharField(allow_blank=True)
    email = serializers.CharField(allow_blank=True)
    phone = serializers.CharField(allow_blank=True)
    birthday = serializers.DateField(allow_null=True)
    gender = serializers.CharField(allow_blank=True)
    prefecture = serializers.CharField(allow_blank=True, help_text=_("JIS X 0401 code."))
    postal_code = serializers.CharField(allow_blank=True)
    address = serializers.CharField(allow_blank=True)
    channel = serializers.CharField(allow_blank=True)
    sns_accounts = serializers.DictField()
    notes = serializers.CharField(allow_blank=True)
    email_opt_in = serializers.BooleanField()
    email_opt_in_at = serializers.DateTimeField(allow_null=True)
    erased_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    owner = serializers.CharField(allow_null=True, help_text=_("Username of the staff owner."))
    tags = serializers.ListField(child=serializers.CharField())


class ExportConsentSerializer(serializers.Serializer):
    opted_in = serializers.BooleanField()
    recorded_at = serializers.DateTimeField()
    source = serializers.CharField()
    form = serializers.CharField(allow_blank=True)
    recorded_by = serializers.CharField(allow_null=True)


class ExportItemSerializer(serializers.Serializer):
    sku = serializers.CharField()
    product = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)


class ExportPurchaseSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    purchased_at = serializers.DateTimeField()
    channel = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    items = ExportItemSerializer(many=True)


class ExportReplySerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    author = serializers.CharField(allow_null=True)
    internal = serializers.BooleanField()
    body = serializers.CharField(allow_blank=True)


class ExportTicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    opened_at = serializers.DateTimeField()
    channel = serializers.CharField()
    subject = serializers.CharField(allow_blank=True)
    body = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    priority = serializers.CharField()
    assignee = serializers.CharField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    replies = ExportReplySerializer(many=True)


class ExportInteractionSerializer(serializers.Serializer):
    kind = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    user = serializers.CharField(allow_null=True)
    summary = serializers.CharField(allow_blank=True)


class ExportHistorySerializer(serializers.Serializer):
    changed_at = serializers.DateTimeField()
    change = serializers.CharField(help_text=_('"+" created, "~" changed, "-" deleted.'))
    changed_by = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    values = serializers.DictField(
        help_text=_("The profile as it was: %(fields)s.") % {"fields": ", ".join(HISTORY_FIELDS)}
    )


class PersonalDataSerializer(serializers.Serializer):
    format = serializers.CharField()
    exported_at = serializers.DateTimeField()
    customer = ExportProfileSerializer()
    consent_records = ExportConsentSerializer(many=True)
    purchases = ExportPurchaseSerializer(many=True)
    tickets = ExportTicketSerializer(many=True)
    interactions = ExportInteractionSerializer(many=True)
    history = ExportHistorySerializer(many=True)


class PersonalDataView(APIView):
    """Everything held on one customer (a personal data request); each export is logged."""

    required_permissions = ("customers.view_customer", "customers.export_customer_data")

    @extend_schema(responses={200: PersonalDataSerializer})
    def get(self, request, pk: int):
        customer = get_object_or_404(Customer.objects.visible_to(request.user), pk=pk)
        return Response(disclose_customer_data(customer=customer, by=request.user))


class ErasureSerializer(serializers.Serializer):
    customer = serializers.IntegerField(source="customer_id")
    erased_at = serializers.DateTimeField()
    erased_by = serializers.CharField(source="erased_by.username", allow_null=True, default=None)


class EraseView(APIView):
    """Erase a customer's personal data for good; purchases stay for aggregate figures.

    Erasing an erased customer changes nothing and answers the first erasure.
    """

    required_permissions = ("customers.view_customer", "customers.erase_customer")

    @extend_schema(request=None, responses={200: ErasureSerializer})
    def post(self, request, pk: int):
        customer = get_object_or_404(Customer.objects.visible_to(request.user), pk=pk)
        log = erase_customer(customer=customer, by=request.user)
        return Response(ErasureSerializer(log).data)
