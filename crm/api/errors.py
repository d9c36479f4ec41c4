"""Error schemas the API adds to drf-standardized-errors' format.

A 429 is either rate throttling or a login lockout (crm.lockout); clients can tell them
apart by the code.
"""

from django.db import models
from drf_standardized_errors.openapi_serializers import ClientErrorEnum
from rest_framework import serializers


class ErrorCode429Enum(models.TextChoices):
    THROTTLED = "throttled"
    LOCKED_OUT = "locked_out"


class Error429Serializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=ErrorCode429Enum.choices)
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ErrorResponse429Serializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ClientErrorEnum.choices)
    errors = Error429Serializer(many=True)
