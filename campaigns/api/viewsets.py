"""What the campaigns and automations resources share: CRUD (changes only before the start,
deletion of drafts only), the stats and the preview."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from drf_standardized_errors.openapi_serializers import ErrorResponse404Serializer
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from campaigns.api.reports import (
    PreviewQuerySerializer,
    PreviewSerializer,
    StatsSerializer,
)
from campaigns.api.saving import delete_draft
from campaigns.api.serializers import conflict
from campaigns.models import Campaign, CampaignKind, CampaignStatus
from campaigns.rendering import preview
from campaigns.results import campaign_results
from campaigns.sending import campaign_progress
from crm.api.filters import IdFilter
from crm.api.schema import AutoSchema
from customers.api.base import APIViewSetMixin, Conflict, ConflictResponseSerializer
from customers.models import Customer

VIEW = ("campaigns.view_campaign",)
CHANGE = ("campaigns.view_campaign", "campaigns.change_campaign")
NOT_FOUND = {404: ErrorResponse404Serializer}
CONFLICT = {409: ConflictResponseSerializer}


class CampaignFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CampaignStatus.choices)
    segment = IdFilter(field_name="segment")

    class Meta:
        model = Campaign
        fields = ["status", "segment"]


def writes_schema(serializer) -> dict:
    """The extra answers of the writes: 404 (unknown segment), 409 (started, not a draft)."""
    return {
        "create": extend_schema(responses={201: serializer, **NOT_FOUND}),
        "update": extend_schema(responses={200: serializer, **NOT_FOUND, **CONFLICT}),
        "partial_update": extend_schema(responses={200: serializer, **NOT_FOUND, **CONFLICT}),
        "destroy": extend_schema(responses={204: None, **NOT_FOUND, **CONFLICT}),
    }


class CampaignSchema(AutoSchema):
    """Documents the validation errors of the preview's query parameters."""

    def _get_extra_validation_errors(self) -> dict[str, set[str]]:
        errors = dict(super()._get_extra_validation_errors())
        if getattr(self.view, "action", None) == "preview":
            for name, field in PreviewQuerySerializer().fields.items():
                errors[name] = errors.get(name, set()) | {"invalid", *field.error_messages}
        return errors


# The list's own rules (weights add up to 100, labels differ): see serializers.variant_errors.
@extend_validation_errors(["invalid"], field_name="variants", methods=["post", "put", "patch"])
class CampaignKindViewSet(APIViewSetMixin, viewsets.ModelViewSet):
    """Campaigns of one kind; subclasses set ``campaign_kind`` and the serializer."""

    campaign_kind: CampaignKind
    filterset_class = CampaignFilter
    ordering_fields = ["created_at", "name", "id"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"[0-9]+"
    # Model permissions for CRUD; the extra actions declare theirs.
    required_permissions = None
    schema = CampaignSchema()

    def get_queryset(self):
        return Campaign.objects.filter(kind=self.campaign_kind).prefetch_related("variants")

    def perform_destroy(self, instance: Campaign) -> None:
        try:
            delete_draft(campaign=instance)
        except ValidationError as error:
            raise conflict(error) from error

    def act(self, act, refusal: str = "", *, campaign: Campaign | None = None, **kwargs):
        """Call one of campaigns' actions on the campaign in the URL and answer it as it is
        now; a refusal (a ValidationError, or False: nothing to do in this status) is a 409."""
        campaign = campaign or self.get_object()
        try:
            done = act(campaign=campaign, by=self.request.user, **kwargs)
        except ValidationError as error:
            raise conflict(error) from error
        if done is False:
            raise Conflict(refusal, code="not_allowed")
        campaign = self.get_queryset().get(pk=campaign.pk)
        return Response(self.get_serializer(campaign).data)

    @extend_schema(responses={200: StatsSerializer, **NOT_FOUND})
    @action(detail=True, required_permissions=VIEW, filter_backends=[], pagination_class=None)
    def stats(self, request, pk=None):
        """Progress (the messages counted by status, as the campaign page shows them) and
        results (delivered, opens, clicks, conversions, revenue, rates, per variant, holdout
        lift, goal attainment, as the review page shows them)."""
        campaign = self.get_object()
        stats = {
            "id": campaign.pk,
            "status": campaign.status,
            "progress": campaign_progress(campaign),
            "results": campaign_results(campaign),
        }
        return Response(StatsSerializer(stats).data)

    @extend_schema(
        parameters=[PreviewQuerySerializer],
        responses={200: PreviewSerializer, **NOT_FOUND, **CONFLICT},
    )
    @action(
        detail=True,
        required_permissions=(*VIEW, "customers.view_customer"),
        filter_backends=[],
        pagination_class=None,
    )
    def preview(self, request, pk=None):
        """The e-mail a customer would get from a variant, personalised (its links and open
        pixel lead nowhere)."""
        campaign = self.get_object()
        # An empty parameter ("?variant=") means not given, as for every list filter.
        given = {name: value for name, value in request.query_params.items() if value != ""}
        query = PreviewQuerySerializer(data=given)
        query.is_valid(raise_exception=True)
        variants = campaign.variants.order_by("label")
        if "variant" in query.validated_data:
            variant = get_object_or_404(variants, pk=query.validated_data["variant"])
        else:
            variant = variants.first()
            if variant is None:
                raise Conflict(_("This campaign has no variant yet."), code="no_variant")
        customer = get_object_or_404(
            Customer.objects.visible_to(request.user), pk=query.validated_data["customer"]
        )
        email = preview(variant=variant, customer=customer)
        rendered = {
            "variant": variant.pk,
            "customer": customer.pk,
            "from_email": email.from_email,
            "reply_to": email.reply_to,
            "to": email.to,
            "subject": email.subject,
            "html": email.alternatives[0][0] if email.alternatives else "",
            "text": email.body,
        }
        return Response(PreviewSerializer(rendered).data)
