"""Purchases with their items, and the bulk upsert for shop integrations, which takes the
CSV import's code path (customers.importing.import_purchases)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import django_filters
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_view,
)
from drf_standardized_errors.openapi_serializers import (
    ErrorResponse404Serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail
from rest_framework.response import Response
from rest_framework.validators import UniqueValidator

from crm.api.filters import DateTimeFilter
from customers.api.base import (
    APIModelSerializer,
    Conflict,
    IdFilter,
    ListCreateRetrieveUpdateViewSet,
    VisibleToUserField,
    recoded,
    writes_404_409,
)
from customers.api.fields import (
    AMOUNT_STRING,
    EDGE_DAYS,
    MAX_INT,
    NUL_OR_SURROGATE,
    REPRESENTABLE_DATE_PATTERN,
    AmountField,
    BooleanField,
    DateTimeField,
    EnumField,
    IntegerField,
    SlugRelatedField,
    TextField,
)
from customers.freshness import days_changed, local_days
from customers.importing import RowError, import_purchases, record_api_import
from customers.models import (
    Customer,
    ImportKind,
    Product,
    Purchase,
    PurchaseChannel,
    PurchaseItem,
    PurchaseStatus,
)

MAX_BULK_PURCHASES = 10_000
MAX_ITEMS_PER_PURCHASE = 200


class PurchaseItemSerializer(APIModelSerializer):
    sku = SlugRelatedField(
        source="product",
        slug_field="sku",
        queryset=Product.objects.all(),
        label=_("SKU"),
        error_messages={"does_not_exist": _("No product has the SKU {value}.")},
    )
    name = serializers.CharField(source="product.name", read_only=True)

    class Meta:
        model = PurchaseItem
        fields = ["sku", "name", "quantity", "unit_price"]
        extra_kwargs = {"quantity": {"min_value": 1}}


class PurchaseSerializer(APIModelSerializer):
    customer = VisibleToUserField(queryset=Customer.objects, label=_("customer"))
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    channel = EnumField(PurchaseChannel, required=False, allow_blank=True, label=_("channel"))
    status = EnumField(PurchaseStatus, required=False, label=_("status"))
    items = PurchaseItemSerializer(
        many=True,
        required=False,
        max_length=MAX_ITEMS_PER_PURCHASE,
        help_text=_(
            "The purchase's lines; on update they replace the current ones. A SKU listed "
            "twice counts once, with its last line (as in the CSV import)."
        ),
    )

    class Meta:
        model = Purchase
        fields = [
            "id",
            "order_id",
            "customer",
            "customer_external_id",
            "purchased_at",
            "channel",
            "status",
            "total",
            "items",
        ]
        extra_kwargs = {
            "order_id": {
                "validators": [
                    UniqueValidator(
                        queryset=Purchase.objects.all(),
                        message=_("Another purchase already has this order ID."),
                    ),
                ]
            }
        }

    @transaction.atomic
    def create(self, validated_data: dict) -> Purchase:
        items = validated_data.pop("items", [])
        purchase = self._save(Purchase(), validated_data)
        self._replace_items(purchase, items)
        return purchase

    @transaction.atomic
    def update(self, instance: Purchase, validated_data: dict) -> Purchase:
        items = validated_data.pop("items", None)
        before = _counted(instance)
        purchase = self._save(instance, validated_data)
        if items is not None or _counted(purchase) != before:
            # The rollups' id watermark cannot see an edit (items count in the category
            # breakdown): the purchase's old and new days are marked.
            days_changed(local_days([before[0], purchase.purchased_at]))
        if items is not None:
            self._replace_items(purchase, items)
        return purchase

    @staticmethod
    def _save(purchase: Purchase, data: dict) -> Purchase:
        for field, value in data.items():
            setattr(purchase, field, value)
        try:
            with transaction.atomic():
                purchase.save()
        except IntegrityError as error:  # another request took the order ID meanwhile
            raise Conflict(
                {"order_id": [_("Another purchase already has this order ID.")]}
            ) from error
        return purchase

    @staticmethod
    def _replace_items(purchase: Purchase, items: list[dict]) -> None:
        lines = {item["product"].pk: item for item in items}  # one line per product
        purchase.items.all().delete()
        PurchaseItem.objects.bulk_create(
            PurchaseItem(purchase=purchase, **item) for item in lines.values()
        )


def _counted(purchase: Purchase) -> tuple:
    """What the analytics count of a purchase: when, whose, how much, whether completed."""
    return (purchase.purchased_at, purchase.customer_id, purchase.total, purchase.status)


class PurchaseFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer")
    customer_external_id = django_filters.CharFilter(field_name="customer__external_id")
    purchased_after = DateTimeFilter(field_name="purchased_at", lookup_expr="gte")
    purchased_before = DateTimeFilter(field_name="purchased_at", lookup_expr="lt")

    class Meta:
        model = Purchase
        fields = ["customer", "customer_external_id", "status", "channel"]


class DateOrDateTimeField(serializers.Field):
    """An ISO 8601 date (midnight in the organisation's time zone) or date-time."""

    default_error_messages = {
        "invalid": _("Enter an ISO 8601 date (YYYY-MM-DD) or date-time."),
        "out_of_range": _("Enter a date from 0001-01-03 to 9999-12-29."),
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if data.startswith(EDGE_DAYS):
            self.fail("out_of_range")
        field = serializers.DateField() if len(data) == 10 else DateTimeField()
        try:
            return field.run_validation(data)
        except serializers.ValidationError:
            self.fail("invalid")


class DateOrDateTimeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = DateOrDateTimeField

    def map_serializer_field(self, auto_schema, direction):
        return {
            "oneOf": [
                {"type": "string", "format": "date", "pattern": REPRESENTABLE_DATE_PATTERN},
                {"type": "string", "format": "date-time", "pattern": REPRESENTABLE_DATE_PATTERN},
            ]
        }


class BulkItemSerializer(serializers.Serializer):
    sku = TextField(max_length=64)
    quantity = IntegerField(min_value=1, max_value=MAX_INT, required=False)
    unit_price = AmountField(max_digits=12, decimal_places=2)


class BulkPurchaseSerializer(serializers.Serializer):
    order_id = TextField(max_length=64)
    customer_external_id = TextField(max_length=64)
    purchased_at = DateOrDateTimeField(
        help_text=_(
            "ISO 8601 date-time, or a date alone for midnight in the organisation's time zone."
        )
    )
    total = AmountField(max_digits=14, decimal_places=2)
    status = EnumField(PurchaseStatus, required=False)
    channel = EnumField(PurchaseChannel, required=False, allow_blank=True)
    items = BulkItemSerializer(many=True, required=False, max_length=MAX_ITEMS_PER_PURCHASE)


class _Unusual(Exception):
    """Input the fast path leaves to the serializer, which says exactly what is wrong."""


_PLAIN_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2}))?"
)
_CENT = Decimal("0.01")
_PURCHASE_STATUSES = frozenset(PurchaseStatus.values)
_PURCHASE_CHANNELS = frozenset([*PurchaseChannel.values, ""])


def _plain_identifier(value) -> str:
    if (
        type(value) is not str
        or not 0 < len(value) <= 64
        or value != value.strip()
        or NUL_OR_SURROGATE.search(value)
    ):
        raise _Unusual
    return value


def _plain_amount(value, whole_digits: int) -> Decimal:
    if type(value) is int and 0 <= value < 10**whole_digits:
        return Decimal(value).quantize(_CENT)
    if type(value) is str and re.fullmatch(AMOUNT_STRING % whole_digits, value):
        return Decimal(value).quantize(_CENT)
    raise _Unusual


def _plain_moment(value) -> date | datetime:
    if type(value) is not str or not _PLAIN_DATE_TIME.fullmatch(value):
        raise _Unusual
    if value.startswith(EDGE_DAYS):
        raise _Unusual
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        raise _Unusual from None


def _plain_choice(row: dict, name: str, choices: frozenset, into: dict) -> None:
    if name in row:
        value = row[name]
        if type(value) is not str or value not in choices:
            raise _Unusual
        into[name] = value


def _plain_purchase(row) -> dict:
    if type(row) is not dict:
        raise _Unusual
    purchase = {
        "order_id": _plain_identifier(row.get("order_id")),
        "customer_external_id": _plain_identifier(row.get("customer_external_id")),
        "purchased_at": _plain_moment(row.get("purchased_at")),
        "total": _plain_amount(row.get("total"), 12),
    }
    _plain_choice(row, "status", _PURCHASE_STATUSES, purchase)
    _plain_choice(row, "channel", _PURCHASE_CHANNELS, purchase)
    if "items" in row:
        items = row["items"]
        if type(items) is not list or len(items) > MAX_ITEMS_PER_PURCHASE:
            raise _Unusual
        purchase["items"] = [_plain_item(item) for item in items]
    return purchase


def _plain_item(row) -> dict:
    if type(row) is not dict:
        raise _Unusual
    item = {
        "sku": _plain_identifier(row.get("sku")),
        "unit_price": _plain_amount(row.get("unit_price"), 10),
    }
    if "quantity" in row:
        quantity = row["quantity"]
        if type(quantity) is not int or not 1 <= quantity <= MAX_INT:
            raise _Unusual
        item["quantity"] = quantity
    return item


class BulkRequestSerializer(serializers.Serializer):
    """Up to 10,000 purchases to create or update by order ID."""

    keep_valid_rows = BooleanField(
        default=False,
        help_text=_(
            "Write the purchases that can be written even if others cannot (unknown "
            "customers); by default nothing is written then."
        ),
    )
    purchases = BulkPurchaseSerializer(
        many=True, allow_empty=False, min_length=1, max_length=MAX_BULK_PURCHASES
    )

    def to_internal_value(self, data):
        # DRF validates 10,000 purchases with their items in 2-3 s, most of the request's
        # time. Plain, well-formed input (what integrations send) is checked here in a
        # fraction of that and gives the same values; anything else goes through the fields,
        # which then name every problem.
        try:
            return self._plain(data)
        except _Unusual:
            return super().to_internal_value(data)

    @staticmethod
    def _plain(data) -> dict:
        if type(data) is not dict:
            raise _Unusual
        keep_valid_rows = data.get("keep_valid_rows", False)
        purchases = data.get("purchases")
        if (
            type(keep_valid_rows) is not bool
            or type(purchases) is not list
            or not 1 <= len(purchases) <= MAX_BULK_PURCHASES
        ):
            raise _Unusual
        return {
            "keep_valid_rows": keep_valid_rows,
            "purchases": [_plain_purchase(row) for row in purchases],
        }


class BulkRowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text=_("Position of the purchase in the request."))
    field = serializers.CharField(help_text=_('e.g. "customer_external_id" or "items.0.sku".'))
    reason = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    committed = serializers.BooleanField()
    products_created = serializers.IntegerField()
    error_count = serializers.IntegerField(help_text=_("Purchase rows with an error."))
    errors = BulkRowErrorSerializer(many=True, help_text=_("The first 1,000 errors."))


class BulkValidationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(
        allow_null=True, help_text=_('Where, e.g. "purchases.3.purchased_at".')
    )


class BulkValidationResponseSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text=_('"validation_error", or "client_error" for a parse error.')
    )
    errors = BulkValidationErrorSerializer(many=True)


def _import_rows(purchases: list[dict]) -> tuple[list[tuple[int, dict]], list[tuple]]:
    """The purchases as the import's rows (one per item, as in a CSV file) and, for each row,
    the purchase and item it came from."""
    rows, origins = [], []
    for index, purchase in enumerate(purchases):
        at = purchase["purchased_at"]
        head = {
            "order_id": purchase["order_id"],
            "customer_external_id": purchase["customer_external_id"],
            "purchased_at": at.isoformat(),
            "total": f"{purchase['total']:f}",
            "status": purchase.get("status", ""),
            "channel": purchase.get("channel", ""),
            "sku": "",
            "quantity": "",
            "unit_price": "",
        }
        for item_index, item in enumerate(purchase.get("items") or [None]):
            row = dict(head)
            if item is not None:
                row.update(
                    sku=item["sku"],
                    quantity=str(item.get("quantity", 1)),
                    unit_price=f"{item['unit_price']:f}",
                )
            origins.append((index, item_index if item is not None else None))
            rows.append((len(rows), row))
    return rows, origins


_ITEM_COLUMNS = {"sku", "quantity", "unit_price"}


def _row_errors(errors: list[RowError], origins: list[tuple]) -> list[dict]:
    """The import's row errors by purchase (``index``) and field, each once."""
    found: dict[tuple, dict] = {}
    for error in errors:
        index, item_index = origins[error.line]
        field = error.column or "non_field_errors"
        if field in _ITEM_COLUMNS and item_index is not None:
            field = f"items.{item_index}.{field}"
        found.setdefault(
            (index, field, error.reason), {"index": index, "field": field, "reason": error.reason}
        )
    return list(found.values())


@extend_schema_view(**writes_404_409(PurchaseSerializer))
class PurchaseViewSet(ListCreateRetrieveUpdateViewSet):
    """Purchases with their items, newest first."""

    serializer_class = PurchaseSerializer
    filterset_class = PurchaseFilter
    ordering_fields = ["purchased_at", "id"]
    ordering = ["-purchased_at", "-id"]
    required_permissions = None  # model permissions, except where an action declares its own

    def get_queryset(self):
        return Purchase.objects.select_related("customer").prefetch_related(
            Prefetch("items", queryset=PurchaseItem.objects.select_related("product"))
        )

    @extend_schema(
        request=BulkRequestSerializer,
        responses={
            200: BulkResultSerializer,
            400: BulkValidationResponseSerializer,
            404: ErrorResponse404Serializer,
        },
        summary="Create or update purchases by order ID",
        description=(
            "Upserts up to 10,000 purchases with their items by order_id, as the CSV import "
            "does: a purchase's fields are replaced, its items added or updated by SKU, and an "
            "unknown SKU creates a product. A request that does not follow this schema is "
            'refused whole with a 400 naming the field, e.g. "purchases.3.purchased_at". '
            "A purchase of an unknown customer cannot be written: by default nothing is "
            'written and the answer is a 404 naming them ("purchases.3.customer_external_id"); '
            "with keep_valid_rows the others are written and the answer lists the errors."
        ),
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="bulk",
        required_permissions=("customers.add_purchase", "customers.change_purchase"),
        filter_backends=[],
        pagination_class=None,
    )
    def bulk(self, request):
        serializer = BulkRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rows, origins = _import_rows(serializer.validated_data["purchases"])
        started_at = timezone.now()
        keep_valid_rows = serializer.validated_data["keep_valid_rows"]
        result = import_purchases(
            rows, keep_valid_rows=keep_valid_rows, user=request.user, source="api"
        )
        errors = _row_errors(result.errors, origins)
        # Admins see API imports in the imports list, refused ones too.
        record_api_import(
            kind=ImportKind.PURCHASES,
            result=result,
            errors=errors,
            keep_valid_rows=keep_valid_rows,
            user=request.user,
            started_at=started_at,
        )
        if not result.committed:
            detail = {}
            for error in errors:
                detail.setdefault(f"purchases.{error['index']}.{error['field']}", []).append(
                    ErrorDetail(error["reason"], code="invalid")
                )
            raise _refusal_of_rows(detail)
        return Response(
            BulkResultSerializer(
                {
                    "created": result.created,
                    "updated": result.updated,
                    "committed": result.committed,
                    "products_created": result.products_created,
                    "error_count": result.error_count,
                    "errors": errors,
                }
            ).data
        )


def _refusal_of_rows(detail: dict) -> exceptions.APIException:
    """Rows refused only for unknown customers: a 404 (the request was well formed); any
    other row error: a 400."""
    if detail and all(attr.endswith(".customer_external_id") for attr in detail):
        return exceptions.NotFound(recoded(detail, "not_found"))
    return serializers.ValidationError(detail or {"purchases": [_("Nothing was written.")]})
