"""What a locked-out client sees after too many failed logins (django-axes callable)."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

LOCKED_STATUS = 429


def lockout_message() -> str:
    minutes = round(settings.AXES_COOLOFF_TIME * 60)
    return _(
        "Too many failed login attempts. This account is locked for %(minutes)d minutes "
        "from this address."
    ) % {"minutes": minutes}


def api_lockout_body() -> dict:
    """The API error format (see crm.api) for a lockout."""
    return {
        "type": "client_error",
        "errors": [{"code": "locked_out", "detail": lockout_message(), "attr": None}],
    }


def lockout_response(request, *args, **kwargs):
    if request.path.startswith("/api/"):
        return JsonResponse(api_lockout_body(), status=LOCKED_STATUS)
    return render(
        request,
        "registration/locked_out.html",
        {"message": lockout_message()},
        status=LOCKED_STATUS,
    )
