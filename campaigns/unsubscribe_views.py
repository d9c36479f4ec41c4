"""The unsubscribe page: GET asks (and changes nothing), POST unsubscribes.

The POST needs no CSRF token, on purpose: RFC 8058 one-click unsubscribe is a POST from the
mailbox provider with the body ``List-Unsubscribe=One-Click``, without cookies or a token of
ours, and must answer 200 without a redirect. CSRF protects actions done with a visitor's
session; this one uses no session: the unguessable per-message token in the URL is the
authority, and whoever holds it could unsubscribe with or without a forged form. The worst a
forged POST can do is what the recipient's own link does.
"""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.tracking import TRACKING_HEADERS
from campaigns.unsubscribe import is_unsubscribed, message_for_token
from campaigns.unsubscribe import unsubscribe as do_unsubscribe


def _page(request, state: str, message=None, status: int = 200):
    response = render(
        request,
        "campaigns/unsubscribe.html",
        {"state": state, "message": message},
        status=status,
    )
    for name, value in TRACKING_HEADERS:
        response[name] = value
    return response


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    message = message_for_token(token)
    if message is None:
        return _page(request, "invalid", status=404)
    if request.method == "POST":
        do_unsubscribe(message=message)
        return _page(request, "done", message)
    return _page(request, "already" if is_unsubscribed(message) else "confirm", message)
