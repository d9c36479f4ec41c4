from drf_standardized_errors.openapi import AutoSchema as StandardizedErrorsAutoSchema

from crm.api.pagination import CursorPagination


class AutoSchema(StandardizedErrorsAutoSchema):
    """Documents the validation errors our pagination adds to every list."""

    def _get_extra_validation_errors(self) -> dict[str, set[str]]:
        errors = dict(super()._get_extra_validation_errors())
        paginator = self._get_paginator()
        if self.method == "GET" and isinstance(paginator, CursorPagination):
            name = paginator.page_size_query_param
            errors[name] = {*errors.get(name, ()), "invalid"}
        return errors


def allow_empty_query_parameters(result, generator, request, public):
    """drf-spectacular hook: optional query parameters accept an empty value, meaning "not
    given" (django-filter, ordering and pagination all read ``?to=`` as no filter)."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result
