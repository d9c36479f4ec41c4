"""The goal form and the goal list's filters.

People type rates and changes in percent ("35" for a 35% repeat rate, "5" for +5 points or
+5%); the model stores fractions, so the form divides by 100 on the way in and multiplies on
the way out. The rules are ``analytics.goals.goal_errors``, the API's too.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from analytics.goals import GoalState, analytics_today, goal_errors
from analytics.models import RATE_KPIS, Goal, GoalKpi, GoalTargetKind

HUNDRED = Decimal(100)


def in_percent(kpi: str, target_kind: str) -> bool:
    """Whether a target of this KPI and kind is typed in percent (or points)."""
    return kpi in RATE_KPIS or target_kind == GoalTargetKind.CHANGE


def plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and never in exponent form (500, not 5E+2)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def owners():
    return get_user_model().objects.filter(is_active=True).order_by("username")


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_full_name() or obj.get_username()


class GoalForm(forms.ModelForm):
    target = forms.DecimalField(
        label=_("Target"),
        max_digits=18,
        decimal_places=4,
        help_text=_(
            "A value to reach: rates (repeat, retention, churn) in percent (35 = 35%), "
            "amounts in yen, counts as whole numbers. A change vs the previous period: in "
            "points for rates (5 = +5 points, -2 = -2 points for churn), in percent for the "
            "others (10 = +10%)."
        ),
    )
    owner = OwnerChoiceField(queryset=owners(), label=_("Owner"))

    class Meta:
        model = Goal
        fields = ["kpi", "target_kind", "target", "start", "end", "owner", "note"]
        widgets = {
            "start": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "end": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "note": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, today=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today or analytics_today()
        self.fields["owner"].queryset = owners()
        goal = self.instance
        if goal.pk and not self.is_bound:
            shown = goal.target * HUNDRED if in_percent(goal.kpi, goal.target_kind) else goal.target
            self.initial["target"] = plain(shown)

    def clean(self):
        data = super().clean()
        needed = ("kpi", "target_kind", "target", "start", "end")
        if any(data.get(name) is None for name in needed):
            return data  # each missing or invalid field already has its message
        if in_percent(data["kpi"], data["target_kind"]):
            data["target"] = data["target"] / HUNDRED
        errors = goal_errors(
            kpi=data["kpi"],
            start=data["start"],
            end=data["end"],
            target_kind=data["target_kind"],
            target=data["target"],
            today=self.today,
        )
        for field, problems in errors.items():
            for code, message in problems:
                self.add_error(field, forms.ValidationError(message, code=code))
        return data

    def _post_clean(self):
        # The model's own checks would repeat goal_errors() in fractions the user never
        # typed; the action functions save.
        pass

    def action_fields(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class GoalFilterForm(forms.Form):
    """The list's filters, from the query string; an invalid value is shown and ignored."""

    state = forms.ChoiceField(
        label=_("Period"),
        choices=[("", _("All")), *GoalState.choices],
        required=False,
    )
    owner = OwnerChoiceField(
        queryset=owners(), label=_("Owner"), required=False, empty_label=_("Anyone")
    )
    kpi = forms.ChoiceField(
        label=_("KPI"), choices=[("", _("Any KPI")), *GoalKpi.choices], required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = owners()

    def filters(self) -> dict:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        owner = data.get("owner")
        return {
            "state": data.get("state") or None,
            "owner_id": owner.pk if owner else None,
            "kpi": data.get("kpi") or None,
        }
