"""Error pages. Under /api/ they answer in the API's error format, elsewhere with a page."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

_API_ERRORS = {
    400: ("client_error", "bad_request", lambda: _("Bad request.")),
    403: ("client_error", "permission_denied", lambda: _("You do not have permission to do this.")),
    404: ("client_error", "not_found", lambda: _("Not found.")),
    500: ("server_error", "error", lambda: _("A server error occurred.")),
}


def _respond(request, status: int, template: str):
    if request.path.startswith("/api/"):
        kind, code, detail = _API_ERRORS[status]
        body = {"type": kind, "errors": [{"code": code, "detail": detail(), "attr": None}]}
        return JsonResponse(body, status=status)
    return render(request, template, status=status)


def bad_request(request, exception=None):
    return _respond(request, 400, "400.html")


def permission_denied(request, exception=None):
    return _respond(request, 403, "403.html")


def page_not_found(request, exception=None):
    return _respond(request, 404, "404.html")


def server_error(request):
    return _respond(request, 500, "500.html")
