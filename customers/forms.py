"""Forms of the sales pages: they validate and normalise what staff type; the service
functions in profiles.py, ticketing.py and interactions.py do the writing."""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.names import user_display_name
from customers.models import (
    Customer,
    Interaction,
    SourceChannel,
    SupportTicket,
    Tag,
    TicketReply,
    TicketStatus,
)
from customers.normalize import (
    is_kana,
    normalize_email,
    normalize_phone,
    normalize_postal_code,
    to_katakana,
)
from customers.prefectures import Prefecture
from customers.selectors import staff_users

_PHONE_CHARACTERS = re.compile(r"^[0-9+\-‐‑‒–—―ー－()\s.]*$")
_POSTAL_CHARACTERS = re.compile(r"^〒?\s*[0-9\-‐‑‒–—―ー－\s]*$")
_TAG_SEPARATORS = re.compile(r"[,、，]")
TAG_MAX_LENGTH = Tag._meta.get_field("name").max_length
# A browser's clock and ours may differ by a little; "now" typed by hand must still be valid.
CLOCK_TOLERANCE = timedelta(minutes=5)
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return user_display_name(obj)


class NormalisedEmailField(forms.EmailField):
    """Full-width letters and capitals fold before validation: "ＹＡＭＡＤＡ＠example.jp" is
    a valid address, stored as "yamada@example.jp"."""

    def to_python(self, value):
        return normalize_email(super().to_python(value))


def split_tags(text: str) -> list[str]:
    """Tag names from "VIP, 定期便、メルマガ希望" (ASCII, Japanese and full-width commas)."""
    names = (" ".join(part.split()) for part in _TAG_SEPARATORS.split(text or ""))
    return list(dict.fromkeys(name for name in names if name))


def parse_sns_accounts(text: str) -> dict[str, str]:
    """{"line": "@yamada", ...} from lines of "service: account"; raises ValidationError."""
    accounts: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = unicodedata.normalize("NFKC", line).strip()
        if not line:
            continue
        service, colon, account = line.partition(":")
        service, account = service.strip().lower(), account.strip()
        if not colon or not service or not account:
            raise forms.ValidationError(
                _('Line %(number)s: write "service: account", e.g. "instagram: @yamada".'),
                code="invalid",
                params={"number": number},
            )
        accounts[service] = account
    return accounts


def format_sns_accounts(accounts: dict) -> str:
    return "\n".join(f"{service}: {account}" for service, account in (accounts or {}).items())


class CustomerForm(forms.ModelForm):
    """Every profile field a person can edit; consent is changed through record_consent."""

    email = NormalisedEmailField(label=_("e-mail"), required=False, max_length=254)
    # Typed with a prefix, hyphens or spaces, so longer than the digits that are stored.
    phone = forms.CharField(label=_("phone"), required=False, max_length=30)
    postal_code = forms.CharField(label=_("postal code"), required=False, max_length=12)
    sns_accounts = forms.CharField(
        label=_("SNS accounts"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_('One per line: "service: account", e.g. "instagram: @yamada".'),
    )
    tags = forms.CharField(
        label=_("tags"),
        required=False,
        help_text=_("Separated by commas; new tags are created."),
    )
    email_opt_in = forms.BooleanField(
        label=_("The customer agrees to receive e-mail"), required=False
    )
    consent_note = forms.CharField(
        label=_("How and on which form consent was given"),
        required=False,
        max_length=200,
        help_text=_(
            'Required when you turn consent on, e.g. "paper form at the Shibuya store event".'
        ),
    )

    class Meta:
        model = Customer
        fields = [
            "family_name",
            "given_name",
            "family_name_kana",
            "given_name_kana",
            "external_id",
            "email",
            "phone",
            "birthday",
            "gender",
            "postal_code",
            "prefecture",
            "address",
            "channel",
            "owner",
            "notes",
        ]
        field_classes = {"owner": UserChoiceField}
        widgets = {
            "birthday": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "notes": forms.Textarea(attrs={"rows": 4}),
        }
        error_messages = {
            "external_id": {"unique": _("Another customer already has this external ID.")}
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = staff_users()
        self.fields["family_name_kana"].help_text = _("Hiragana or katakana.")
        self.fields["given_name_kana"].help_text = _("Hiragana or katakana.")
        if self.instance.pk:
            self.initial.setdefault("sns_accounts", format_sns_accounts(self.instance.sns_accounts))
            self.initial.setdefault("tags", ", ".join(tag.name for tag in self.instance.tags.all()))
            self.initial.setdefault("email_opt_in", self.instance.email_opt_in)

    def _clean_kana(self, name: str) -> str:
        value = self.cleaned_data.get(name, "")
        if value and not is_kana(value):
            raise forms.ValidationError(
                _("Enter the reading in kana (hiragana or katakana)."), code="not_kana"
            )
        return to_katakana(value)

    def clean_family_name_kana(self) -> str:
        return self._clean_kana("family_name_kana")

    def clean_given_name_kana(self) -> str:
        return self._clean_kana("given_name_kana")

    def clean_external_id(self) -> str:
        external_id = unicodedata.normalize("NFKC", self.cleaned_data["external_id"]).strip()
        if not external_id:
            raise forms.ValidationError(self.fields["external_id"].error_messages["required"])
        return external_id

    def clean_phone(self) -> str:
        raw = unicodedata.normalize("NFKC", self.cleaned_data.get("phone", "")).strip()
        if not raw:
            return ""
        number = normalize_phone(raw)
        if not _PHONE_CHARACTERS.match(raw) or not 10 <= len(number) <= 15:
            raise forms.ValidationError(
                _("Enter a phone number of 10 to 15 digits (hyphens and spaces are fine)."),
                code="invalid_phone",
            )
        return number

    def clean_postal_code(self) -> str:
        raw = unicodedata.normalize("NFKC", self.cleaned_data.get("postal_code", "")).strip()
        if not raw:
            return ""
        code = normalize_postal_code(raw)
        if not _POSTAL_CHARACTERS.match(raw) or len(code) != 7:
            raise forms.ValidationError(
                _("Enter a postal code of 7 digits, e.g. 100-0001."), code="invalid_postal_code"
            )
        return code

    def clean_birthday(self):
        birthday = self.cleaned_data.get("birthday")
        if birthday and birthday > timezone.localdate():
            raise forms.ValidationError(
                _("The birthday cannot be in the future."), code="future_birthday"
            )
        return birthday

    def clean_sns_accounts(self) -> dict[str, str]:
        return parse_sns_accounts(self.cleaned_data.get("sns_accounts", ""))

    def clean_tags(self) -> list[str]:
        names = split_tags(self.cleaned_data.get("tags", ""))
        too_long = [name for name in names if len(name) > TAG_MAX_LENGTH]
        if too_long:
            raise forms.ValidationError(
                _("A tag can have at most %(max)s characters: %(tags)s"),
                code="tag_too_long",
                params={"max": TAG_MAX_LENGTH, "tags": ", ".join(too_long)},
            )
        return names

    def clean(self):
        cleaned = super().clean()
        turning_on = cleaned.get("email_opt_in") and not self.instance.email_opt_in
        if turning_on and not cleaned.get("consent_note", "").strip():
            self.add_error(
                "consent_note",
                forms.ValidationError(
                    _("Say how and on which form the customer gave consent."),
                    code="consent_note_required",
                ),
            )
        if cleaned.get("email_opt_in") and "email" in cleaned and not cleaned["email"]:
            self.add_error(
                "email",
                forms.ValidationError(
                    _("Consent to e-mail needs an e-mail address."), code="consent_without_email"
                ),
            )
        return cleaned

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of profiles.create_customer / update_customer."""
        fields = {name: self.cleaned_data[name] for name in self._meta.fields}
        fields["sns_accounts"] = self.cleaned_data["sns_accounts"]
        return {
            "fields": fields,
            "tags": self.cleaned_data["tags"],
            "email_opt_in": self.cleaned_data["email_opt_in"],
            "consent_note": self.cleaned_data["consent_note"].strip(),
        }


CONSENT_CHOICES = [("", _("Any consent")), ("yes", _("Consented")), ("no", _("Not consented"))]
NO_OWNER = "none"


class CustomerFilterForm(forms.Form):
    """The list's search box and filters, read from the query string."""

    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    prefecture = forms.ChoiceField(label=_("prefecture"), required=False)
    channel = forms.ChoiceField(label=_("source channel"), required=False)
    owner = forms.ChoiceField(label=_("owner"), required=False)
    tag = forms.ChoiceField(label=_("tag"), required=False)
    consent = forms.ChoiceField(label=_("e-mail consent"), required=False, choices=CONSENT_CHOICES)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["prefecture"].choices = [("", _("All prefectures")), *Prefecture.choices]
        self.fields["channel"].choices = [("", _("All channels")), *SourceChannel.choices]
        self.fields["owner"].choices = [
            ("", _("Any owner")),
            (NO_OWNER, _("No owner")),
            *((str(user.pk), user_display_name(user)) for user in staff_users()),
        ]
        self.fields["tag"].choices = [
            ("", _("Any tag")),
            *((name, name) for name in Tag.objects.values_list("name", flat=True)),
        ]

    def filters(self) -> dict[str, Any]:
        """Keyword arguments of selectors.customers_for_list from the fields that are valid
        (an invalid filter shows its error and is ignored, the others still apply)."""
        data = self.cleaned_data if self.is_bound else {}
        owner = data.get("owner", "")
        consent = data.get("consent", "")
        return {
            "q": data.get("q", "").strip(),
            "prefecture": data.get("prefecture", ""),
            "channel": data.get("channel", ""),
            "owner_id": int(owner) if owner and owner != NO_OWNER else None,
            "unowned": owner == NO_OWNER,
            "tag": data.get("tag", ""),
            "consent": {"yes": True, "no": False}.get(consent),
        }

    @property
    def is_filtered(self) -> bool:
        return any(value not in ("", None, False) for value in self.filters().values())


class InteractionForm(forms.ModelForm):
    class Meta:
        model = Interaction
        fields = ["kind", "occurred_at", "summary"]
        widgets = {
            "occurred_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format=DATETIME_LOCAL
            ),
            "summary": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault(
                "occurred_at", timezone.localtime().replace(second=0, microsecond=0)
            )

    def clean_occurred_at(self):
        occurred_at = self.cleaned_data["occurred_at"]
        if occurred_at > timezone.now() + CLOCK_TOLERANCE:
            raise forms.ValidationError(
                _("An interaction cannot be in the future."), code="future_interaction"
            )
        return occurred_at


class CustomerChoiceField(forms.ModelChoiceField):
    """A customer chosen by id (the page the form was opened from), never a select of a
    million options."""

    widget = forms.HiddenInput


class TicketForm(forms.ModelForm):
    customer = CustomerChoiceField(queryset=Customer.objects.none())
    assignee = UserChoiceField(label=_("assignee"), queryset=None, required=False)

    class Meta:
        model = SupportTicket
        fields = ["customer", "subject", "body", "channel", "priority", "assignee", "due_at"]
        widgets = {
            "body": forms.Textarea(attrs={"rows": 5}),
            "due_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        }
        help_texts = {"due_at": _("Leave empty to use the response time of the priority.")}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.visible_to(user)
        self.fields["customer"].error_messages["invalid_choice"] = _(
            "This customer does not exist or you cannot see it."
        )
        self.fields["assignee"].queryset = staff_users()


class ReplyForm(forms.ModelForm):
    class Meta:
        model = TicketReply
        fields = ["body", "internal"]
        widgets = {"body": forms.Textarea(attrs={"rows": 4})}


class TicketStatusForm(forms.Form):
    status = forms.ChoiceField(choices=TicketStatus.choices)


class AssignForm(forms.Form):
    assignee = UserChoiceField(
        label=_("assignee"), queryset=None, required=False, empty_label=_("Nobody")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = staff_users()
