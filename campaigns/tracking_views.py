"""Open pixel and click redirect: public, no session, no cookies, never cached.

crm/wsgi.py answers these URLs before Django for speed (campaigns.tracking_wsgi); these views
serve them everywhere else (runserver, tests, an ASGI server) and answer what the fast path
hands over: a click that leads nowhere gets the not-found page here.
"""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_safe

from campaigns import tracking


def _tracking_headers(response: HttpResponse) -> HttpResponse:
    for name, value in tracking.TRACKING_HEADERS:
        response[name] = value
    return response


@require_safe
def open_pixel(request, token: str):
    # The same GIF whatever the token: a tampered one learns nothing.
    tracking.record_open(
        token=token,
        method=request.method,
        ip=tracking.client_ip(request.META),
        user_agent=request.headers.get("User-Agent", ""),
    )
    return _tracking_headers(HttpResponse(tracking.PIXEL_GIF, content_type="image/gif"))


@require_safe
def click(request, token: str, link_id: int):
    url = tracking.record_click(
        token=token,
        link_id=link_id,
        method=request.method,
        ip=tracking.client_ip(request.META),
        user_agent=request.headers.get("User-Agent", ""),
    )
    if url is None:
        return _tracking_headers(
            render(request, "campaigns/tracking_link_not_found.html", status=404)
        )
    return _tracking_headers(HttpResponseRedirect(url))
