"""Serializers of campaigns and automations with their variants (and an automation's
trigger), written whole through campaigns.api.saving.

Rules the schema states (lengths, ranges, not blank) are checked field by field; what it
cannot state is checked here and answered with a 400 at its place: the weights add up to 100,
labels differ, each part of the content compiles (``campaigns.rendering.check_content``), the
sender parses as an address, a gap multiplier only on a win-back trigger. A campaign that
has started cannot change: 409 (see campaigns.planning.EDITABLE).
"""

from __future__ import annotations

from email.utils import parseaddr

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from campaigns.api.fields import NumberField, rate_field
from campaigns.api.saving import create_campaign, update_campaign
from campaigns.models import (
    PLAN_FIELDS,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Trigger,
    TriggerKind,
    Variant,
)
from campaigns.rendering import check_content
from customers.api.base import APIModelSerializer, Conflict
from customers.api.fields import EnumField, PrimaryKeyRelatedField, TextField
from segments.models import Segment

MAX_VARIANTS = 10
# What a whole variant or trigger must hold, also in a PATCH (a nested object is replaced,
# not merged: the schema describes it whole).
_VARIANT_REQUIRED = ("label", "subject", "html_body", "text_body")
_TRIGGER_REQUIRED = ("kind", "days")


def conflict(error: DjangoValidationError) -> Conflict:
    """A 409 in the API's error format from a refusal of campaigns' functions (the state of
    the campaign, not the request, is what is wrong)."""
    return Conflict(" ".join(error.messages), code=error.code or "conflict")


class SegmentField(PrimaryKeyRelatedField):
    """A segment by id, among those the requesting user may see."""

    def get_queryset(self):
        user = self.context["request"].user
        segments = Segment.objects.all()
        return segments if user.has_perm("segments.view_segment") else segments.none()


class VariantSerializer(APIModelSerializer):
    label = TextField(max_length=10, label=_("label"), help_text=_('"A", "B"...'))

    class Meta:
        model = Variant
        fields = ["id", "label", "subject", "html_body", "text_body", "weight"]


def _missing(item: dict, names: tuple[str, ...]) -> dict[str, list[ErrorDetail]]:
    message = serializers.Field.default_error_messages["required"]
    return {
        name: [ErrorDetail(str(message), code="required")] for name in names if name not in item
    }


def variant_errors(variants: list[dict]) -> dict:
    """The problems of a whole list of variants that no single field sees."""
    items: list[dict] = [_missing(item, _VARIANT_REQUIRED) for item in variants]
    if any(items):
        return {"variants": items}
    for item, errors in zip(variants, items, strict=True):
        for part in ("subject", "html_body", "text_body"):
            content = {"subject": "", "html_body": "", "text_body": "", part: item[part]}
            problems = check_content(**content)
            if problems:
                errors[part] = [ErrorDetail(problem, code="invalid") for problem in problems]
    if any(items):
        return {"variants": items}
    labels = [item["label"] for item in variants]
    if len(set(labels)) != len(labels):
        return {"variants": [_("Give each variant its own label.")]}
    if sum(item.get("weight", 100) for item in variants) != 100:
        return {"variants": [_("The variants' weights must add up to 100.")]}
    return {}


# Set by actions and the sender, never by a client's write.
_WRITTEN_BY_THE_APP = [
    "scheduled_at",
    "started_at",
    "finished_at",
    "winner",
    "act_notes",
    "parent",
    "audience_size",
    "sent_count",
    "failed_count",
    "created_by",
    "created_at",
    "updated_at",
]


class CampaignSerializer(APIModelSerializer):
    campaign_kind = CampaignKind.CAMPAIGN
    segment = SegmentField(label=_("segment"))
    status = EnumField(CampaignStatus, read_only=True, label=_("status"))
    goal_open_rate = rate_field(label=_("goal: open rate"), help_text=_("A fraction: 0.25 is 25%."))
    goal_click_rate = rate_field(label=_("goal: click rate"), help_text=_("A fraction."))
    goal_conversion_rate = rate_field(label=_("goal: conversion rate"), help_text=_("A fraction."))
    variants = VariantSerializer(
        many=True,
        min_length=1,
        max_length=MAX_VARIANTS,
        help_text=_(
            "The whole list: labels differ, weights add up to 100. On a change, variants are "
            "matched by label; those left out are removed."
        ),
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "segment",
            "status",
            *PLAN_FIELDS,
            "variants",
            *_WRITTEN_BY_THE_APP,
        ]
        read_only_fields = _WRITTEN_BY_THE_APP

    def validate_from_email(self, value: str) -> str:
        if value:
            try:
                validate_email(parseaddr(value)[1])
            except DjangoValidationError as error:
                raise serializers.ValidationError(
                    _('Enter an address, optionally with a name: "Shop <news@example.jp>".'),
                    code="invalid",
                ) from error
        return value

    def validate(self, attrs: dict) -> dict:
        if "variants" in attrs:
            errors = variant_errors(attrs["variants"])
            if errors:
                raise serializers.ValidationError(errors)
            for variant in attrs["variants"]:
                variant.setdefault("weight", 100)  # as the sum was checked
        return attrs

    def create(self, validated_data: dict) -> Campaign:
        variants = validated_data.pop("variants")
        trigger = validated_data.pop("trigger", None)
        return create_campaign(
            kind=self.campaign_kind,
            fields=validated_data,
            variants=variants,
            trigger=trigger,
            by=self.context["request"].user,
        )

    def update(self, instance: Campaign, validated_data: dict) -> Campaign:
        variants = validated_data.pop("variants", None)
        trigger = validated_data.pop("trigger", None)
        try:
            return update_campaign(
                campaign=instance,
                fields=validated_data,
                variants=variants,
                trigger=trigger,
                by=self.context["request"].user,
            )
        except DjangoValidationError as error:
            raise conflict(error) from error


class TriggerSerializer(APIModelSerializer):
    kind = EnumField(TriggerKind, label=_("trigger"))
    gap_multiplier = NumberField(
        minimum=1,
        maximum=20,
        places=2,
        required=False,
        allow_null=True,
        label=_("times the customer's usual gap"),
        help_text=_("Win-back only (null otherwise), e.g. 2 for twice the usual gap."),
    )

    class Meta:
        model = Trigger
        fields = ["kind", "days", "gap_multiplier", "send_hour", "last_run_at", "last_run_matched"]
        read_only_fields = ["last_run_at", "last_run_matched"]


class AutomationSerializer(CampaignSerializer):
    campaign_kind = CampaignKind.AUTOMATION
    segment = SegmentField(
        label=_("segment"),
        required=False,
        allow_null=True,
        help_text=_("Optional: only the segment's members are sent to."),
    )
    trigger = TriggerSerializer(label=_("trigger"))

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "trigger"]

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        trigger = attrs.get("trigger")
        if trigger is not None:
            missing = _missing(trigger, _TRIGGER_REQUIRED)
            if missing:
                raise serializers.ValidationError({"trigger": missing})
            if trigger["kind"] != TriggerKind.WIN_BACK and trigger.get("gap_multiplier"):
                raise serializers.ValidationError(
                    {"trigger": {"gap_multiplier": [_("Only a win-back trigger has a gap.")]}}
                )
            # A trigger is written whole: what is left out takes its default.
            trigger.setdefault("gap_multiplier", None)
            trigger.setdefault("send_hour", Trigger._meta.get_field("send_hour").default)
        return attrs
