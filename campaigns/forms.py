"""Forms of the Plan and Do pages: a campaign (or automation) with its goal and its variants,
an automation's trigger, the schedule and the preview's choices.

Rates are typed in percent ("25" for a 25% open rate) and stored as fractions, as on the
goal form (analytics.forms_goals). A variant's content is checked with
campaigns.rendering.check_content, field by field, so each error shows beside its field.
"""

from __future__ import annotations

from decimal import Decimal
from email.utils import parseaddr

from django import forms
from django.core.validators import validate_email
from django.forms import BaseInlineFormSet, inlineformset_factory
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from analytics.forms_goals import plain
from campaigns.models import PLAN_FIELDS, Campaign, Trigger, TriggerKind, Variant
from campaigns.rendering import check_content
from segments.models import Segment

HUNDRED = Decimal(100)
RATE_GOALS = ("goal_open_rate", "goal_click_rate", "goal_conversion_rate")
LABELS = "ABCDEFGHIJ"


class SegmentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Segment) -> str:
        count = ngettext("%(count)s member", "%(count)s members", obj.member_count) % {
            "count": f"{obj.member_count:,}"
        }
        return f"{obj.name} ({count})"


def percent_field(label) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        min_value=0,
        max_value=100,
        max_digits=5,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.1", "inputmode": "decimal"}),
        help_text=_("In percent (25 = 25%). Empty: no goal."),
    )


class CampaignForm(forms.ModelForm):
    segment = SegmentChoiceField(
        queryset=Segment.objects.order_by("name"),
        label=_("Target segment"),
        help_text=_("Its members who may receive marketing e-mail, when the send starts."),
    )
    goal_open_rate = percent_field(_("Goal: open rate (%)"))
    goal_click_rate = percent_field(_("Goal: click rate (%)"))
    goal_conversion_rate = percent_field(_("Goal: conversion rate (%)"))
    goal_revenue = forms.DecimalField(
        label=_("Goal: revenue (JPY)"),
        required=False,
        min_value=0,
        max_digits=14,
        decimal_places=0,
        help_text=_("Revenue of the recipients' purchases within the attribution window."),
    )

    class Meta:
        model = Campaign
        fields = ["name", "segment", *PLAN_FIELDS]
        widgets = {"hypothesis": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            for name in RATE_GOALS:
                value = getattr(self.instance, name)
                self.initial[name] = None if value is None else plain(value * HUNDRED)
            if self.instance.goal_revenue is not None:
                self.initial["goal_revenue"] = plain(self.instance.goal_revenue)

    def clean_from_email(self) -> str:
        # "Shop <news@shop.example.jp>" or a bare address: a bad sender would fail every send.
        value = self.cleaned_data["from_email"].strip()
        if value:
            _name, address = parseaddr(value)
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(
                    _(
                        "Enter an address, optionally with a name: "
                        "株式会社サンプル <news@example.jp>"
                    )
                ) from None
        return value

    def clean(self):
        data = super().clean()
        for name in RATE_GOALS:
            if data.get(name) is not None:
                data[name] = (data[name] / HUNDRED).quantize(Decimal("0.0001"))
        return data


class AutomationForm(CampaignForm):
    """An automation's content and goal: the segment only narrows the trigger's matches, and
    there is no A/B test share (nobody waits for a winner: every match gets a variant)."""

    segment = SegmentChoiceField(
        queryset=Segment.objects.order_by("name"),
        label=_("Only members of"),
        required=False,
        empty_label=_("Every customer the trigger matches"),
    )

    class Meta(CampaignForm.Meta):
        fields = [name for name in CampaignForm.Meta.fields if name != "test_percent"]


class VariantForm(forms.ModelForm):
    class Meta:
        model = Variant
        fields = ["label", "subject", "html_body", "text_body", "weight"]
        widgets = {
            "label": forms.TextInput(attrs={"size": 3, "class": "variant-label"}),
            "html_body": forms.Textarea(attrs={"rows": 8, "class": "code"}),
            "text_body": forms.Textarea(attrs={"rows": 6, "class": "code"}),
            "weight": forms.NumberInput(attrs={"class": "variant-weight", "min": 1, "max": 100}),
        }
        # The content section explains the weights once for all variants.
        help_texts = {"weight": ""}

    def clean(self):
        data = super().clean()
        # One field at a time, so each template error shows beside the field that has it.
        for name in ("subject", "html_body", "text_body"):
            if data.get(name):
                content = {"subject": "", "html_body": "", "text_body": "", name: data[name]}
                for error in check_content(**content):
                    self.add_error(name, _("Template error: %(error)s") % {"error": error})
        return data


class BaseVariantFormSet(BaseInlineFormSet):
    def kept(self) -> list[forms.Form]:
        return [
            form
            for form in self.forms
            if form.has_changed() or form.instance.pk
            if not (self.can_delete and self._should_delete_form(form))
        ]

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = self.kept()
        if not kept:
            raise forms.ValidationError(_("Add at least one variant."))
        labels = [form.cleaned_data.get("label", "").strip() for form in kept]
        if len(set(labels)) != len(labels):
            raise forms.ValidationError(_("Each variant needs its own label (A, B, C…)."))
        total = sum(form.cleaned_data.get("weight") or 0 for form in kept)
        if total != 100:
            raise forms.ValidationError(
                _("The variants' weights must add up to 100 (now %(total)s).") % {"total": total}
            )
        for form in self.deleted_forms:
            if form.instance.pk and form.instance.messages.exists():
                raise forms.ValidationError(
                    _("Variant %(label)s has messages already and cannot be removed.")
                    % {"label": form.instance.label}
                )


def check_split(*, form: CampaignForm, variants: BaseVariantFormSet) -> bool:
    """Whether the A/B test share has variants to test (both forms valid); the error goes
    to the form's field when it has not."""
    if form.cleaned_data.get("test_percent") and len(variants.kept()) < 2:
        form.add_error(
            "test_percent", _("An A/B test needs at least two variants: add one, or set 0.")
        )
        return False
    return True


VariantFormSet = inlineformset_factory(
    Campaign,
    Variant,
    form=VariantForm,
    formset=BaseVariantFormSet,
    extra=0,
    min_num=1,
    max_num=len(LABELS),
    validate_max=True,
    can_delete=True,
)


def variant_formset(data=None, *, instance: Campaign) -> BaseVariantFormSet:
    """The variants of ``instance``; a new campaign starts with variant A at 100%."""
    initial = None if instance.pk else [{"label": "A", "weight": 100}]
    return VariantFormSet(data, instance=instance, prefix="variants", initial=initial)


class TriggerForm(forms.ModelForm):
    class Meta:
        model = Trigger
        fields = ["kind", "days", "gap_multiplier", "send_hour"]

    def clean(self):
        data = super().clean()
        # The usual gap only means something for a win-back (the page hides the field for
        # the other kinds; a value left there from before must not block the save).
        if data.get("kind") != TriggerKind.WIN_BACK:
            data["gap_multiplier"] = None
            self.instance.gap_multiplier = None
        return data


class ScheduleForm(forms.Form):
    at = forms.DateTimeField(
        label=_("Send at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )


class PreviewForm(forms.Form):
    """Which variant, for whom: a customer id, or a name or e-mail address to search."""

    variant = forms.IntegerField(required=False, widget=forms.HiddenInput)
    customer = forms.IntegerField(required=False, min_value=1, label=_("Customer ID"))
    q = forms.CharField(required=False, max_length=254, label=_("Search by name or e-mail"))
