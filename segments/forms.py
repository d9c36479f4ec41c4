"""The segment builder's form, and the save of an edited segment.

The rule tree travels as JSON in a hidden input that the builder's script keeps up to date;
the form checks it with ``segments.rules.validate_rules`` and keeps every problem with its
path (``conditions.1.value``) so the page can show each message beside its condition.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from segments.models import Segment
from segments.rules import RuleError, validate_rules


class RulesField(forms.CharField):
    """A rule tree written as JSON text; cleans to the parsed tree (not yet validated)."""

    widget = forms.HiddenInput

    def to_python(self, value: Any) -> Any:
        if value in (None, ""):
            return {}
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                _("The rules could not be read."), code="invalid"
            ) from error

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        return json.dumps(value or {"op": "and", "conditions": []}, ensure_ascii=False)

    def validate(self, value: Any) -> None:
        # An empty tree is a valid rule (every customer): nothing is "required" here.
        pass


def parse_rules(text: str) -> tuple[Any, list[dict[str, str]]]:
    """The rule tree in ``text`` (JSON) validated: (normalised tree, []) or (None, errors)."""
    try:
        tree = RulesField().clean(text)
    except forms.ValidationError as error:
        return None, [{"path": "", "message": str(message)} for message in error.messages]
    try:
        return validate_rules(tree), []
    except RuleError as error:
        return None, error.errors


class SegmentForm(forms.ModelForm):
    rules = RulesField(required=False, label=_("rules"))

    class Meta:
        model = Segment
        fields = ["name", "description", "kind", "rules"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "kind": forms.RadioSelect,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The problems of the rule tree, each with its path, for the builder to place.
        self.rule_errors: list[dict[str, str]] = []

    def clean_rules(self) -> dict:
        tree = self.cleaned_data.get("rules")
        try:
            return validate_rules(tree)
        except RuleError as error:
            self.rule_errors = error.errors
            raise forms.ValidationError(
                _("Some conditions are not complete or not valid; see the messages beside them."),
                code="invalid",
            ) from error
