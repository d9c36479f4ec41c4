from __future__ import annotations

from django.conf import settings
from django.db import transaction

from crm.models import UserProfile


@transaction.atomic
def save_preferences(*, profile: UserProfile, language: str, time_zone: str) -> UserProfile:
    profile.language = language
    profile.time_zone = time_zone
    profile.save(update_fields=["language", "time_zone"])
    return profile


def remember_language(response, language: str) -> None:
    """Keep the choice in the language cookie too, so the login page speaks it next time.

    An empty choice ("follow the browser") clears the cookie.
    """
    if not language:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
        return
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
