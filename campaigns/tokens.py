"""Per-message tokens for the open pixel, click redirect and unsubscribe links.

A token is the message id in base 36 followed by 22 characters of URL-safe base64 of the first
16 bytes of an HMAC-SHA256 of that id (``django.utils.crypto.salted_hmac``, salt
``campaigns.tracking``, key from ``SECRET_KEY``). Checking one needs no database: the tracking
endpoints reject a tampered or invented token before touching anything. 128 bits of MAC make
guessing hopeless, and the id being visible reveals nothing a recipient does not already have.

Tokens never expire (the issue asks for unsubscribe links that keep working for at least 60
days; an e-mail may be opened years later). They stop verifying only when ``SECRET_KEY``
changes: put the old key in ``SECRET_KEY_FALLBACKS`` while a rotation is under way, as Django
does for sessions and password-reset links, and tokens signed with it keep working.
"""

from __future__ import annotations

import base64
import hmac

from django.conf import settings
from django.utils.crypto import salted_hmac
from django.utils.http import base36_to_int, int_to_base36

SALT = "campaigns.tracking"
_MAC_BYTES = 16
_MAC_CHARS = 22  # len(base64 of 16 bytes) without its "==" padding
# A bigint id is at most 13 base-36 digits; refusing longer input bounds the work per request.
_MAX_ID_CHARS = 13

# Paths of the tracking endpoints (campaigns/urls_tracking.py and the WSGI fast path in
# crm/wsgi.py use the same shapes).
OPEN_PATH = "/t/o/{token}.gif"
CLICK_PATH = "/t/c/{token}/{link_id}/"
UNSUBSCRIBE_PATH = "/u/{token}/"


def _mac(message_id: int, secret: str | bytes) -> str:
    digest = salted_hmac(SALT, str(message_id), secret, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).decode("ascii").rstrip("=")


def message_token(message_id: int) -> str:
    """The unguessable, URL-safe token of one message."""
    return int_to_base36(message_id) + _mac(message_id, settings.SECRET_KEY)


def parse_message_token(token: str) -> int | None:
    """The message id a genuine token carries, or None for anything else (no database hit)."""
    if not isinstance(token, str) or not _MAC_CHARS < len(token) <= _MAC_CHARS + _MAX_ID_CHARS:
        return None
    id_part, mac = token[:-_MAC_CHARS], token[-_MAC_CHARS:]
    if not id_part.isascii() or not id_part.isalnum() or id_part != id_part.lower():
        return None
    try:
        message_id = base36_to_int(id_part)
    except ValueError:
        return None
    # One canonical spelling per id: "0a..." must not be a second token for "a...".
    if message_id <= 0 or int_to_base36(message_id) != id_part:
        return None
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        if hmac.compare_digest(mac, _mac(message_id, secret)):
            return message_id
    return None


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def open_url(message_id: int) -> str:
    """Absolute URL of the message's open pixel."""
    return _absolute(OPEN_PATH.format(token=message_token(message_id)))


def click_url(message_id: int, link_id: int) -> str:
    """Absolute URL that records a click of the campaign's stored link and redirects to it."""
    return _absolute(CLICK_PATH.format(token=message_token(message_id), link_id=link_id))


def unsubscribe_url(message_id: int) -> str:
    """Absolute URL of the unsubscribe page; also the RFC 8058 one-click POST target."""
    return _absolute(UNSUBSCRIBE_PATH.format(token=message_token(message_id)))
