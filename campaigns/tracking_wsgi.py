"""The tracking fast path: a small WSGI layer in front of Django for the open pixel and the
click redirect (mounted in crm/wsgi.py).

Mail clients fetch the pixel of every opened message; the full Django stack (middleware,
sessions, URL resolving, template engine) costs several times more CPU per hit than the work
itself (an HMAC check and one Redis RPUSH). This layer answers those two URLs with the same
functions as campaigns.tracking_views and hands everything else, including a click that
leads nowhere, a non-GET method and a plain-HTTP request that must be redirected to HTTPS, to
Django unchanged. It uses the same settings and sends the headers of Django's security
middleware that apply to an image or a redirect (nosniff, HSTS, Referrer-Policy).
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import close_old_connections
from django.utils.encoding import iri_to_uri

from campaigns import tracking

logger = logging.getLogger(__name__)

_OPEN = re.compile(r"^/t/o/([0-9A-Za-z_-]{1,64})\.gif$")
_CLICK = re.compile(r"^/t/c/([0-9A-Za-z_-]{1,64})/([0-9]{1,19})/$")


def _is_secure(environ) -> bool:
    if environ.get("wsgi.url_scheme") == "https":
        return True
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    return bool(header) and environ.get(header[0], "").split(",")[0].strip() == header[1]


class TrackingFastPath:
    def __init__(self, django_app):
        self.django_app = django_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/t/") or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.django_app(environ, start_response)
        secure = _is_secure(environ)
        if settings.SECURE_SSL_REDIRECT and not secure:
            return self.django_app(environ, start_response)
        try:
            answer = self._answer(environ, path)
        except Exception:
            logger.exception("Tracking fast path failed; Django answers instead")
            answer = None
        if answer is None:
            return self.django_app(environ, start_response)
        status, headers, body = answer
        headers.extend(tracking.TRACKING_HEADERS)
        if secure and settings.SECURE_HSTS_SECONDS:
            hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                hsts += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                hsts += "; preload"
            headers.append(("Strict-Transport-Security", hsts))
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def _answer(self, environ, path: str):
        request = {
            "method": environ["REQUEST_METHOD"],
            "ip": tracking.client_ip(environ),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
        }
        if match := _OPEN.match(path):
            tracking.record_open(token=match[1], **request)
            return "200 OK", [("Content-Type", "image/gif")], tracking.PIXEL_GIF
        if match := _CLICK.match(path):
            close_old_connections()
            try:
                url = tracking.record_click(token=match[1], link_id=int(match[2]), **request)
            finally:
                close_old_connections()
            if url is None or "\n" in url or "\r" in url:
                return None
            location = iri_to_uri(url)
            return "302 Found", [("Location", location), ("Content-Type", "text/html")], b""
        return None
