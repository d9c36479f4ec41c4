"""What the campaigns API reports about one campaign: its progress and results (stats) and the
e-mail a customer would get (preview)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from crm.api.filters import MAX_ID


class ProgressSerializer(serializers.Serializer):
    """campaigns.sending.Progress: message counts by status."""

    audience = serializers.IntegerField(help_text=_("Messages frozen, holdout included."))
    queued = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    bounced = serializers.IntegerField()
    skipped = serializers.IntegerField()
    holdout = serializers.IntegerField(help_text=_("Kept out to measure the lift; never sent."))
    waiting = serializers.IntegerField(
        help_text=_("Outside the A/B test share: wait for the winner.")
    )
    possibly_duplicated = serializers.IntegerField(
        help_text=_("Sent again after their sender died mid-send: may have arrived twice.")
    )
    to_send = serializers.IntegerField(help_text=_("Audience but holdout and waiting."))
    done = serializers.IntegerField()
    percent = serializers.IntegerField(min_value=0, max_value=100)


class StatsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    progress = ProgressSerializer()


class PreviewQuerySerializer(serializers.Serializer):
    customer = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text=_("The customer the e-mail is rendered for.")
    )
    variant = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text=_("A variant of this campaign; by default the first by label."),
    )


class PreviewSerializer(serializers.Serializer):
    variant = serializers.IntegerField()
    customer = serializers.IntegerField()
    from_email = serializers.CharField()
    reply_to = serializers.ListField(child=serializers.CharField())
    to = serializers.ListField(child=serializers.CharField())
    subject = serializers.CharField(allow_blank=True)
    html = serializers.CharField(allow_blank=True)
    text = serializers.CharField(allow_blank=True)
