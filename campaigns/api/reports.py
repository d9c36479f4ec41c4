"""What the campaigns API reports about one campaign: its progress and results (stats, from
campaigns.sending.campaign_progress and campaigns.results.campaign_results) and the e-mail a
customer would get (preview)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from campaigns.results import GoalState, Metric
from crm.api.filters import MAX_ID

# One named choice set in the schema (settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
METRIC_CHOICES = [m.value for m in Metric]


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


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=None, decimal_places=2, **kwargs)


def _rate(help_text=None) -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, help_text=help_text)


class FiguresSerializer(serializers.Serializer):
    """campaigns.results.Figures; rates are fractions, null without a denominator."""

    delivered = serializers.IntegerField(help_text=_("Messages with status sent."))
    opened = serializers.IntegerField(help_text=_("Delivered and opened by a person."))
    clicked = serializers.IntegerField(help_text=_("Delivered and clicked by a person."))
    machine_opened = serializers.IntegerField(help_text=_("Opened by machines only."))
    machine_clicked = serializers.IntegerField(help_text=_("Clicked by machines only."))
    unsubscribed = serializers.IntegerField()
    converted = serializers.IntegerField(
        help_text=_("Delivered with a completed purchase within the attribution window.")
    )
    revenue = _money(help_text=_("Attributed revenue."))
    open_rate = _rate()
    click_rate = _rate()
    click_to_open = _rate()
    unsubscribe_rate = _rate()
    conversion_rate = _rate()


class VariantResultSerializer(serializers.Serializer):
    variant = serializers.IntegerField(source="variant_id")
    label = serializers.CharField()
    subject = serializers.CharField()
    figures = FiguresSerializer()


class HoldoutSerializer(serializers.Serializer):
    members = serializers.IntegerField()
    converted = serializers.IntegerField()
    revenue = _money()
    conversion_rate = _rate()


class LiftSerializer(serializers.Serializer):
    absolute = serializers.FloatField(help_text=_("Conversion rate minus the holdout's."))
    relative = _rate(_("Relative to the holdout's conversion rate."))
    incremental_conversions = serializers.FloatField()
    incremental_revenue = _money()
    p_value = serializers.FloatField()
    significant = serializers.BooleanField()


class GoalResultSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=METRIC_CHOICES)
    goal = serializers.FloatField(allow_null=True, help_text=_("A fraction, or an amount."))
    actual = serializers.FloatField(allow_null=True)
    attainment = _rate(_("actual / goal."))
    state = serializers.ChoiceField(choices=[state.value for state in GoalState])


class GroupSerializer(serializers.Serializer):
    key = serializers.CharField(allow_blank=True, help_text=_('"": no score in the run.'))
    label = serializers.CharField()
    figures = FiguresSerializer()


class ResultsSerializer(serializers.Serializer):
    """campaigns.results.CampaignResults (its module says how each figure is counted)."""

    computed_at = serializers.DateTimeField()
    total = FiguresSerializer()
    variants = VariantResultSerializer(many=True)
    holdout = HoldoutSerializer(allow_null=True)
    lift = LiftSerializer(allow_null=True)
    primary_metric = serializers.ChoiceField(choices=METRIC_CHOICES)
    verdicts = serializers.ListField(child=serializers.CharField())
    suggested_winner = serializers.IntegerField(source="suggested_winner_id", allow_null=True)
    goals = GoalResultSerializer(many=True)
    provisional = serializers.BooleanField(
        help_text=_("Conversions can still come in: the attribution window is open.")
    )
    last_sent_at = serializers.DateTimeField(allow_null=True)
    window_closes_at = serializers.DateTimeField(allow_null=True)
    heat_map = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text=_("[weekday, 0 = Monday][hour]: delivered messages first opened then."),
    )
    by_rfm = GroupSerializer(many=True)
    by_decile = GroupSerializer(many=True)


class StatsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    progress = ProgressSerializer()
    results = ResultsSerializer()


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
