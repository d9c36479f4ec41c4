from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from crm.models import UserProfile


class PreferencesForm(forms.ModelForm):
    class Meta:
        model = UserProfile
        fields = ["language", "time_zone"]


class LanguageForm(forms.Form):
    language = forms.ChoiceField(label=_("language"), choices=settings.LANGUAGES)
