"""The project's OpenAPI schema class (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS) and hooks."""

import re

from drf_spectacular.utils import PolymorphicProxySerializer
from drf_standardized_errors.openapi import AutoSchema as StandardizedErrorsAutoSchema
from drf_standardized_errors.openapi_serializers import ValidationErrorEnum
from drf_standardized_errors.settings import package_settings
from rest_framework import serializers
from rest_framework.settings import api_settings

from crm.api.pagination import CursorPagination


class AutoSchema(StandardizedErrorsAutoSchema):
    """drf-standardized-errors' schema with corrections, so that real requests and responses
    match it: the validation errors our pagination adds to every list are documented, lists
    of objects declare their size limits, and errors inside a list or a dictionary are
    described by a pattern naming their position ("items.0.sku") rather than the literal
    "items.INDEX.sku" drf-standardized-errors writes."""

    def _get_extra_validation_errors(self) -> dict[str, set[str]]:
        errors = dict(super()._get_extra_validation_errors())
        paginator = self._get_paginator()
        if self.method == "GET" and isinstance(paginator, CursorPagination):
            name = paginator.page_size_query_param
            errors[name] = {*errors.get(name, ()), "invalid"}
        return errors

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.ListSerializer)
            and schema.get("type") == "array"
        ):
            if field.min_length is not None or not field.allow_empty:
                schema["minItems"] = max(field.min_length or 0, 0 if field.allow_empty else 1)
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
        return schema

    def _get_validation_error_codes_by_field(self, data_fields):
        codes = super()._get_validation_error_codes_by_field(data_fields)
        for data_field in data_fields:
            field = data_field.field
            if isinstance(field, serializers.ListSerializer):
                # Checked by the list itself, not by validators the library looks at.
                if field.max_length is not None:
                    codes[data_field.name].add("max_length")
                if field.min_length is not None:
                    codes[data_field.name].add("min_length")
        return codes

    def _get_serializer_for_validation_error_response(self):
        base = super()._get_serializer_for_validation_error_response()
        errors = base._declared_fields["errors"]
        proxy = getattr(errors, "child", errors)
        separator = package_settings.NESTED_FIELD_SEPARATOR
        placeholders = {
            package_settings.LIST_INDEX_IN_API_SCHEMA: "[0-9]+",
            package_settings.DICT_KEY_IN_API_SCHEMA: r"[\s\S]*",
        }
        error_serializers, changed = [], False
        for attr, error_serializer in proxy.serializers.items():
            parts = (attr or "").split(separator)
            pattern = re.escape(separator).join(
                placeholders.get(part, re.escape(part)) for part in parts
            )
            if len(parts) > 1 and parts[-1] == api_settings.NON_FIELD_ERRORS_KEY:
                # A nested object or list that is null, or a list item that is not an object,
                # is reported on itself ("items", "items.0"), not on its non_field_errors.
                pattern = pattern.removesuffix(re.escape(separator + parts[-1]))
                pattern += f"(?:{re.escape(separator + parts[-1])})?"
            if pattern != re.escape(attr or ""):
                changed = True
                error_serializer = type(
                    error_serializer.__name__,
                    (error_serializer,),
                    {
                        "attr": serializers.RegexField(rf"^{pattern}\Z"),
                        "Meta": error_serializer.Meta,
                    },
                )
            error_serializers.append(error_serializer)
        if not changed:
            return base

        class ValidationErrorSerializer(serializers.Serializer):
            type = serializers.ChoiceField(choices=ValidationErrorEnum.choices)
            errors = PolymorphicProxySerializer(
                component_name=proxy.component_name,
                serializers=error_serializers,
                resource_type_field_name=None,
                many=True,
            )

            class Meta:
                ref_name = base.Meta.ref_name

        return ValidationErrorSerializer


def allow_empty_query_parameters(result, generator, request, public):
    """drf-spectacular hook: optional query parameters accept an empty value, meaning "not
    given" (django-filter, ordering and pagination all read ``?to=`` as no filter)."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result
