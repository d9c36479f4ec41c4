"""The product catalogue."""

from __future__ import annotations

import django_filters
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_view,
)
from rest_framework import viewsets
from rest_framework.validators import UniqueValidator

from customers.api.base import (
    APIModelSerializer,
    APIViewSetMixin,
    Conflict,
    ConflictResponseSerializer,
    writes_404_409,
)
from customers.models import (
    Product,
)


class ProductSerializer(APIModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "category", "price"]
        extra_kwargs = {
            "sku": {
                "validators": [
                    UniqueValidator(
                        queryset=Product.objects.all(),
                        message=_("Another product already has this SKU."),
                    ),
                ]
            }
        }

    def save(self, **kwargs):
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as error:  # another request took the SKU meanwhile
            raise Conflict({"sku": [_("Another product already has this SKU.")]}) from error


class ProductFilter(django_filters.FilterSet):
    class Meta:
        model = Product
        fields = ["sku", "category"]


@extend_schema_view(
    **writes_404_409(ProductSerializer),
    destroy=extend_schema(responses={204: None, 409: ConflictResponseSerializer}),
)
class ProductViewSet(APIViewSetMixin, viewsets.ModelViewSet):
    """The product catalogue. A product that appears on a purchase cannot be deleted."""

    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    ordering_fields = ["sku", "name", "id"]
    ordering = ["sku", "id"]

    def perform_destroy(self, instance: Product) -> None:
        try:
            instance.delete()
        except ProtectedError as error:
            raise Conflict(
                _("This product appears on purchases and cannot be deleted."), code="protected"
            ) from error
