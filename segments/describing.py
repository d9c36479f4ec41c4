"""A rule tree in plain language (the segment's page shows its rules as nested lines)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from segments.rules import FIELDS, OPERATOR_LABELS


def _describe_value(field, op: str, value: Any) -> str:
    """A condition's value in words (choice labels rather than codes)."""
    labels = {str(v): str(label) for v, label in field.choices()} if field.choices else {}

    def listed(items) -> str:
        return ", ".join(labels.get(str(item), str(item)) for item in items)

    def bounds(low, high, unit: str = "") -> str:
        if low is not None and high is not None:
            return _("%(low)s to %(high)s%(unit)s") % {"low": low, "high": high, "unit": unit}
        if low is not None:
            return _("%(low)s%(unit)s or more") % {"low": low, "unit": unit}
        return _("%(high)s%(unit)s or less") % {"high": high, "unit": unit}

    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if field.value_type in ("window_count", "window_amount"):
        return _("%(bounds)s in the last %(days)s days") % {
            "bounds": bounds(value["min"], value["max"]),
            "days": value["days"],
        }
    if field.value_type == "ticket_count":
        text = bounds(value["min"], value["max"])
        return text + (" " + _("(open inquiries only)") if value.get("open_only") else "")
    if field.value_type in ("products", "categories", "campaign"):
        if field.value_type == "campaign":
            text = labels.get(str(value["campaign"]), f"#{value['campaign']}")
        else:
            text = listed(value[field.value_type])
        if value.get("days") is not None:
            text += " " + _("in the last %(days)s days") % {"days": value["days"]}
        return text
    if op == "between" and isinstance(value, list):
        return bounds(value[0], value[1])
    if isinstance(value, list):
        return listed(value)
    return str(value)


def describe_rules(tree: dict, *, depth: int = 0) -> list[dict[str, Any]]:
    """The (validated) rule tree as nested lines of plain language for the segment's page:
    [{"text": ..., "children": [...]}]."""
    lines = []
    for child in (tree or {}).get("conditions", []):
        if "conditions" in child:
            title = _("All of:") if child["op"] == "and" else _("Any of:")
            lines.append({"text": title, "children": describe_rules(child, depth=depth + 1)})
            continue
        field = FIELDS.get(child["field"])
        if field is None:  # a field another app registered and no longer offers
            lines.append({"text": str(child), "children": []})
            continue
        value = _describe_value(field, child["op"], child["value"])
        # "Age 20 to 30" reads better than "Age between 20 to 30", "Opened the campaign: X"
        # better than "Opened the campaign is X".
        if child["op"] == "between" or field.value_type == "campaign":
            text = _("%(field)s: %(value)s") % {"field": field.label, "value": value}
        else:
            text = _("%(field)s %(operator)s %(value)s") % {
                "field": field.label,
                "operator": OPERATOR_LABELS.get(child["op"], child["op"]),
                "value": value,
            }
        lines.append({"text": text, "children": []})
    return lines
