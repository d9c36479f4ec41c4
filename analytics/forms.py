"""The dashboard's filters, read from the query string so a view can be shared as a link.

The period is a preset relative to today (in the organisation's time zone) or custom dates;
the date rules are the API's (analytics.api: 1900-2999, end not before start, at most
``MAX_YEARS`` long). Invalid input shows form errors and the page falls back to the default
period without filters, never a server error.
"""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from analytics.api import EARLIEST, LATEST, MAX_YEARS
from analytics.kpis import Filters, shift_years
from analytics.rollups import month_end, month_of
from customers.models import SourceChannel
from customers.prefectures import Prefecture
from segments.models import Segment

THIS_MONTH = "this_month"
LAST_MONTH = "last_month"
THIS_QUARTER = "this_quarter"
LAST_QUARTER = "last_quarter"
THIS_YEAR = "this_year"
LAST_12_MONTHS = "last_12_months"
CUSTOM = "custom"
DEFAULT_PRESET = THIS_MONTH

PRESETS = [
    (THIS_MONTH, _("This month")),
    (LAST_MONTH, _("Last month")),
    (THIS_QUARTER, _("This quarter")),
    (LAST_QUARTER, _("Last quarter")),
    (THIS_YEAR, _("This year")),
    (LAST_12_MONTHS, _("Last 12 months")),
    (CUSTOM, _("Custom dates")),
]


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def preset_period(preset: str, today: date) -> tuple[date, date]:
    """The dates start..end (inclusive) of a preset, as of ``today``. Periods that include
    today end today: the figures of days to come would only dilute the comparison."""
    if preset == LAST_MONTH:
        end = month_of(today) - timedelta(days=1)
        return month_of(end), end
    if preset == THIS_QUARTER:
        return _quarter_start(today), today
    if preset == LAST_QUARTER:
        end = _quarter_start(today) - timedelta(days=1)
        return _quarter_start(end), end
    if preset == THIS_YEAR:
        return date(today.year, 1, 1), today
    if preset == LAST_12_MONTHS:
        start = shift_years(month_of(today), -1)
        return start, month_end(month_of(today) - timedelta(days=1))
    return month_of(today), today


class DashboardFilterForm(forms.Form):
    period = forms.ChoiceField(label=_("Period"), choices=PRESETS, required=False)
    start = forms.DateField(
        label=pgettext_lazy("start of a date range", "From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    end = forms.DateField(
        label=pgettext_lazy("end of a date range", "To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    channel = forms.ChoiceField(label=_("Source channel"), required=False)
    prefecture = forms.ChoiceField(label=_("Prefecture"), required=False)
    segment = forms.TypedChoiceField(label=_("Segment"), required=False, coerce=int)

    def __init__(self, *args, today: date | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today or timezone.localdate()
        self.fields["channel"].choices = [("", _("All channels")), *SourceChannel.choices]
        self.fields["prefecture"].choices = [("", _("All prefectures")), *Prefecture.choices]
        self.fields["segment"].choices = [
            ("", _("All customers")),
            *Segment.objects.order_by("name").values_list("pk", "name"),
        ]

    def clean(self):
        data = super().clean()
        preset = data.get("period") or DEFAULT_PRESET
        data["period"] = preset
        if preset != CUSTOM:
            return data
        start, end = data.get("start"), data.get("end")
        for name in ("start", "end"):
            if name not in self.errors and data.get(name) is None:
                self.add_error(name, _("Enter a date for a custom period."))
        for name, value in (("start", start), ("end", end)):
            if value is not None and not EARLIEST <= value <= LATEST:
                self.add_error(
                    name,
                    _("Enter a date between %(first)s and %(last)s.")
                    % {"first": EARLIEST.isoformat(), "last": LATEST.isoformat()},
                )
        if self.errors or start is None or end is None:
            return data
        if end < start:
            self.add_error("end", _("The end is before the start."))
        elif end >= shift_years(start, MAX_YEARS):
            self.add_error(
                "end", _("A period can be at most %(years)d years long.") % {"years": MAX_YEARS}
            )
        return data

    def dates(self) -> tuple[date, date]:
        """start..end of the valid input, else of the default preset."""
        if not self.is_bound or not self.is_valid():
            return preset_period(DEFAULT_PRESET, self.today)
        data = self.cleaned_data
        if data["period"] == CUSTOM:
            return data["start"], data["end"]
        return preset_period(data["period"], self.today)

    def filters(self) -> Filters:
        """The customer filters of the valid input (none when anything is invalid)."""
        if not self.is_bound or not self.is_valid():
            return Filters()
        data = self.cleaned_data
        return Filters(
            prefecture=data.get("prefecture") or None,
            channel=data.get("channel") or None,
            segment=data.get("segment") or None,
        )
