"""Customers: profile, tags, SNS accounts and e-mail consent (written through
customers.profiles and customers.consent.record_consent), newest first."""

from __future__ import annotations

import django_filters
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    extend_schema_field,
    extend_schema_view,
)
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from crm.api.filters import DateTimeFilter
from customers import selectors
from customers.api.base import (
    ActiveUserField,
    APIModelSerializer,
    BooleanFilter,
    Conflict,
    IdFilter,
    ListCreateRetrieveUpdateViewSet,
    StableOrderingFilter,
    writes_404_409,
)
from customers.api.fields import (
    KANA_PATTERN,
    NUL_OR_SURROGATE,
    PHONE_PATTERN,
    POSTAL_CODE_PATTERN,
    BirthdayField,
    BooleanField,
    ChoiceField,
    EnumField,
    TextField,
    pattern_field,
)
from customers.consent import record_consent
from customers.models import (
    ConsentSource,
    Customer,
    SourceChannel,
    Tag,
)
from customers.normalize import (
    normalize_phone,
    normalize_postal_code,
    to_katakana,
)
from customers.prefectures import Prefecture
from customers.profiles import create_customer, update_customer


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "maxLength": 50},
        "maxItems": 100,
        "description": "Tag names; unknown ones are created, blank ones ignored.",
    }
)
class TagNamesField(serializers.ListField):
    child = TextField(max_length=50, allow_blank=True)

    def __init__(self, **kwargs):
        super().__init__(max_length=100, **kwargs)

    def to_internal_value(self, data):
        return list(dict.fromkeys(name for name in super().to_internal_value(data) if name))

    def to_representation(self, value):
        return [tag.name for tag in value.all()]


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 200},
        "maxProperties": 20,
    }
)
class SNSAccountsField(serializers.DictField):
    child = TextField(max_length=200, allow_blank=True)
    default_error_messages = {
        "too_many": _("At most 20 accounts."),
        "invalid_service": _("A service name cannot contain NUL or surrogate characters."),
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 20:
            self.fail("too_many")
        if any(NUL_OR_SURROGATE.search(service) for service in value):
            self.fail("invalid_service")
        return value


class CustomerSerializer(APIModelSerializer):
    family_name_kana = pattern_field(
        KANA_PATTERN,
        max_length=50,
        label=_("family name (kana)"),
        message=_("Enter the reading in kana (hiragana or katakana)."),
        help_text=_("Hiragana or katakana (half-width too); stored as full-width katakana."),
    )
    given_name_kana = pattern_field(
        KANA_PATTERN,
        max_length=50,
        label=_("given name (kana)"),
        message=_("Enter the reading in kana (hiragana or katakana)."),
        help_text=_("Hiragana or katakana (half-width too); stored as full-width katakana."),
    )
    phone = pattern_field(
        PHONE_PATTERN,
        max_length=30,
        label=_("phone"),
        message=_("Enter a phone number of 10 to 15 digits (hyphens and spaces are fine)."),
        help_text=_(
            'A number of 10 to 15 digits in any usual form ("03-1234-5678", '
            '"+81 90 1234 5678"); stored as digits.'
        ),
    )
    postal_code = pattern_field(
        POSTAL_CODE_PATTERN,
        max_length=10,
        label=_("postal code"),
        message=_("Enter a postal code of 7 digits, e.g. 100-0001."),
        help_text=_('Seven digits, e.g. "100-0001" or "〒1000001"; stored as digits.'),
    )
    birthday = BirthdayField(required=False, allow_null=True, label=_("birthday"))
    prefecture = ChoiceField(
        choices=Prefecture.choices,
        required=False,
        allow_blank=True,
        label=_("prefecture"),
        help_text=_("JIS X 0401 code, e.g. 13 for Tokyo."),
    )
    sns_accounts = SNSAccountsField(
        required=False,
        label=_("SNS accounts"),
        help_text=_('Service and account, e.g. {"line": "...", "instagram": "@..."}.'),
    )
    channel = EnumField(SourceChannel, required=False, allow_blank=True, label=_("source channel"))
    tags = TagNamesField(required=False, label=_("tags"))
    owner = ActiveUserField(required=False, allow_null=True, label=_("owner"))
    email_opt_in = BooleanField(
        required=False,
        label=_("e-mail consent"),
        help_text=_(
            "Send it only with consent_source (and optionally consent_form): every consent "
            "decision is recorded as a consent record."
        ),
    )
    consent_source = ChoiceField(
        choices=ConsentSource.choices,
        required=False,
        write_only=True,
        label=_("how consent was given"),
        help_text=_("Required with email_opt_in, and only with it."),
    )
    consent_form = TextField(
        max_length=200,
        required=False,
        allow_blank=True,
        write_only=True,
        label=_("form or wording"),
        help_text=_("Which form, or its text."),
    )

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
            "channel",
            "sns_accounts",
            "tags",
            "notes",
            "owner",
            "email_opt_in",
            "email_opt_in_at",
            "consent_source",
            "consent_form",
            "erased_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["email_opt_in_at", "updated_at"]
        extra_kwargs = {
            "external_id": {
                "validators": [
                    UniqueValidator(
                        queryset=Customer.objects.all(),
                        message=_("Another customer already has this external ID."),
                    ),
                ]
            }
        }

    # The fields' pattern lets only kana through (KANA_PATTERN); stored as katakana.
    def validate_family_name_kana(self, value: str) -> str:
        return to_katakana(value)

    def validate_given_name_kana(self, value: str) -> str:
        return to_katakana(value)

    def validate_phone(self, value: str) -> str:
        return normalize_phone(value)

    def validate_postal_code(self, value: str) -> str:
        return normalize_postal_code(value)

    def validate(self, attrs: dict) -> dict:
        # Stated in the schema too (see CustomerSerializerExtension): a consent decision is
        # email_opt_in with consent_source (and maybe consent_form), or none of them.
        given = {"email_opt_in", "consent_source", "consent_form"} & attrs.keys()
        if given and not {"email_opt_in", "consent_source"} <= given:
            missing = "consent_source" if "email_opt_in" in given else "email_opt_in"
            raise serializers.ValidationError(
                {
                    missing: _(
                        "Send email_opt_in together with consent_source: how the customer "
                        "gave or withdrew consent is part of the record."
                    )
                },
                code="required",
            )
        return attrs

    @transaction.atomic
    def create(self, validated_data: dict) -> Customer:
        consent = self._pop_consent(validated_data)
        tags = validated_data.pop("tags", [])
        by = self.context["request"].user
        customer = self._saving(create_customer, fields=validated_data, tags=tags, by=by)
        self._record_consent(customer, consent)
        return customer

    @transaction.atomic
    def update(self, instance: Customer, validated_data: dict) -> Customer:
        if instance.is_erased:
            raise Conflict(_("This customer's personal data was erased; it cannot be edited."))
        consent = self._pop_consent(validated_data)
        tags = validated_data.pop("tags", None)
        customer = self._saving(
            update_customer,
            customer=instance,
            fields=validated_data,
            tags=[tag.name for tag in instance.tags.all()] if tags is None else tags,
            # Unchanged here: a change is recorded below with the source the client gave.
            email_opt_in=instance.email_opt_in,
            by=self.context["request"].user,
        )
        self._record_consent(customer, consent)
        return customer

    @staticmethod
    def _pop_consent(data: dict) -> dict | None:
        if "email_opt_in" not in data:
            return None
        return {
            "opted_in": data.pop("email_opt_in"),
            "source": data.pop("consent_source"),
            "form": data.pop("consent_form", ""),
        }

    def _record_consent(self, customer: Customer, consent: dict | None) -> None:
        if consent is not None:
            record_consent(customer=customer, by=self.context["request"].user, **consent)

    @staticmethod
    def _saving(save, **kwargs) -> Customer:
        try:
            with transaction.atomic():
                return save(**kwargs)
        except IntegrityError as error:  # another request took the external ID meanwhile
            raise Conflict(
                {"external_id": [_("Another customer already has this external ID.")]}
            ) from error


class CustomerSerializerExtension(OpenApiSerializerExtension):
    """email_opt_in and consent_source come together or not at all."""

    target_class = CustomerSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["anyOf"] = [
                {"required": ["email_opt_in", "consent_source"]},
                {
                    "not": {
                        "anyOf": [
                            {"required": ["email_opt_in"]},
                            {"required": ["consent_source"]},
                            {"required": ["consent_form"]},
                        ]
                    }
                },
            ]
        return schema


class CustomerFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label=_("Name, kana, e-mail, phone or external ID, however typed (width, kana)"),
    )
    prefecture = django_filters.ChoiceFilter(choices=Prefecture.choices)
    owner = IdFilter(field_name="owner")
    tag = django_filters.CharFilter(method="tagged", label=_("Tag name"))
    email_opt_in = BooleanFilter()
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Customer
        fields = ["q", "prefecture", "channel", "owner", "tag", "email_opt_in"]

    def search(self, queryset, name, value: str):
        return queryset.search(value)

    def tagged(self, queryset, name, value: str):
        return selectors.with_tag(queryset, value)


class CustomerOrderingFilter(StableOrderingFilter):
    """A tag-filtered list is ordered on the tag row's copies of created_at and id (the same
    order, served by the tag's index: see selectors.with_tag)."""

    def get_ordering(self, request, queryset, view):
        return list(
            selectors.tag_side_ordering(super().get_ordering(request, queryset, view), queryset)
        )


@extend_schema_view(**writes_404_409(CustomerSerializer))
@extend_validation_errors(["required"], field_name="email_opt_in", methods=["post", "put", "patch"])
@extend_validation_errors(
    ["required"], field_name="consent_source", methods=["post", "put", "patch"]
)
class CustomerViewSet(ListCreateRetrieveUpdateViewSet):
    """Customers, newest first. Erasing one is a separate, logged personal-data request."""

    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, CustomerOrderingFilter]
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return Customer.objects.visible_to(self.request.user).prefetch_related(
            Prefetch("tags", queryset=Tag.objects.order_by("name"))
        )
