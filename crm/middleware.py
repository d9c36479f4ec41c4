from __future__ import annotations

import zoneinfo

from django.utils import timezone, translation


class UserPreferencesMiddleware:
    """Shows a signed-in user the app in the language and time zone of their profile.

    Runs after LocaleMiddleware, which already picked a language from the cookie or the
    browser; a language saved in the profile wins over both.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        profile = None
        if request.user.is_authenticated:
            profile = getattr(request.user, "profile", None)
        if profile and profile.language:
            translation.activate(profile.language)
            request.LANGUAGE_CODE = profile.language
        if profile and profile.time_zone:
            timezone.activate(zoneinfo.ZoneInfo(profile.time_zone))
        else:
            timezone.deactivate()
        return self.get_response(request)
