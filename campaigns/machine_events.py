"""Which opens and clicks were made by machines rather than by the recipient.

Machine events are stored (``TrackingEvent.is_machine`` with a short ``machine_reason``), shown
apart on the review, excluded from open and click rates by default, and never fire automations:
``campaigns.tracking.human_events_recorded`` is sent for human events only, and that signal is
the one hook automations may listen to.

Two stages, because the evidence arrives at two moments:

* at the request (``classify_request``), from what only the request carries and must not be
  stored: the raw IP address, the method and the user agent;
* when the buffered events are written (``classify_timing`` and ``scanner_bursts``), from what
  only the database knows: when the message was sent and the message's other clicks.

The heuristics and where they come from:

``apple_mpp`` (opens): Apple Mail Privacy Protection (iOS 15 / macOS 12 and later) downloads
    every remote image of a message through Apple's proxies when the message reaches the
    device, opened or not. The proxies send the bare user agent ``Mozilla/5.0`` and come from
    Apple's own address blocks 17.0.0.0/8 and 2620:149::/32 (SocketLabs, "Identifying Apple
    MPP opens in notification API events"; Suped, "What methods do ESPs and SMTP providers use
    to identify Apple MPP and GoogleProxyImages", 2025; Word to the Wise, "Apple MPP", 2021).
    Either sign is enough: a real mail client always sends a detailed user agent.
Gmail (``GoogleImageProxy``, ``ggpht.com``) is a *human* open: Gmail fetches a message's
    images through its proxy when the recipient opens the message, not on delivery, and then
    serves its cached copy, so the first fetch marks a real open (later opens are invisible).
    Yahoo's ``YahooMailProxy`` works the same way.
``scanner`` (clicks and opens): security gateways follow every link of incoming mail before
    the recipient sees it (Microsoft Defender Safe Links, Proofpoint URL Defense, Mimecast,
    Barracuda, Cisco, Symantec, Trend Micro...). Signs: a known scanner or HTTP-library user
    agent, an event within ``MACHINE_EVENT_SECONDS`` of sending (no person reads and clicks a
    mail that fast), and a burst of clicks on ``BURST_LINKS`` or more different links of one
    message within ``BURST_SECONDS`` (a person follows one link at a time).
``head`` (clicks and opens): a HEAD request fetches no content: link checkers and previewers,
    never a browser following a link.
``prefetch``: link-preview and prefetch bots (``BingPreview``, ``Slackbot``,
    ``facebookexternalhit``...) that fetch a URL because it was pasted or shown, not opened.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache

APPLE_MPP = "apple_mpp"
SCANNER = "scanner"
HEAD = "head"
PREFETCH = "prefetch"

# Apple owns 17.0.0.0/8 (and 2620:149::/32 for IPv6) outright; the Mail Privacy Protection
# proxies fetch from them.
_APPLE_IPV4_PREFIX = "17."
_APPLE_IPV6_NETWORKS = (ipaddress.ip_network("2620:149::/32"),)
_APPLE_MPP_USER_AGENT = "Mozilla/5.0"

# Lower-case marks in user agents. Plain substring tests: the classifier runs on every pixel
# request, where a big case-insensitive regular expression cost more than the rest together.
# Mail providers' image proxies that fetch on the recipient's open: human opens.
_HUMAN_PROXY_MARKS = ("googleimageproxy", "ggpht.com", "yahoomailproxy")
_PREFETCH_MARKS = (
    "bingpreview",
    "slackbot",
    "facebookexternalhit",
    "twitterbot",
    "linkedinbot",
    "discordbot",
    "whatsapp",
    "telegrambot",
    "skypeuripreview",
    "googlebot",
)
_SCANNER_MARKS = (
    "barracuda",
    "proofpoint",
    "mimecast",
    "safelinks",
    "microsoft office protocol",
    "forcepoint",
    "trendmicro",
    "trend micro",
    "symantec",
    "messagelabs",
    "cisco",
    "ironport",
    "fireeye",
    "sophos",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "curl/",
    "wget/",
    "okhttp",
    "java/",
    "libwww-perl",
    "httpclient",
    "headlesschrome",
    "phantomjs",
    "bot/",
    "bot;",
    "bot)",
    "crawler",
    "spider",
)
_HUMAN = "human"

# No person opens or clicks a message within this many seconds of it leaving the server.
MACHINE_EVENT_SECONDS = 5
BURST_LINKS = 3
BURST_SECONDS = 5


def _is_apple_address(ip: str) -> bool:
    if ip.startswith(_APPLE_IPV4_PREFIX):
        return True
    if ":" not in ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in _APPLE_IPV6_NETWORKS)


@lru_cache(maxsize=4096)
def _agent_verdict(agent: str) -> str:
    """What the user agent alone says (mail clients repeat a few agents: cached)."""
    lowered = agent.lower()
    if any(mark in lowered for mark in _HUMAN_PROXY_MARKS):
        return _HUMAN
    if agent == _APPLE_MPP_USER_AGENT:
        return APPLE_MPP
    if any(mark in lowered for mark in _PREFETCH_MARKS):
        return PREFETCH
    if not agent or any(mark in lowered for mark in _SCANNER_MARKS):
        return SCANNER
    return ""


def classify_request(*, kind: str, method: str, ip: str, user_agent: str) -> str:
    """The machine reason the request itself shows (uses the raw IP, which is never stored),
    or "" when it looks like a person."""
    if method == "HEAD":
        return HEAD
    verdict = _agent_verdict(user_agent.strip())
    if verdict == _HUMAN:
        return ""
    if kind == "open" and (verdict == APPLE_MPP or _is_apple_address(ip)):
        return APPLE_MPP
    return "" if verdict == APPLE_MPP else verdict


def classify_timing(*, occurred_at: datetime, sent_at: datetime | None) -> str:
    """``scanner`` for an event within seconds of sending, else ""."""
    if sent_at is None:
        return ""
    if occurred_at - sent_at < timedelta(seconds=MACHINE_EVENT_SECONDS):
        return SCANNER
    return ""


def scanner_bursts(clicks: Iterable[tuple[object, int, int, datetime]]) -> set[object]:
    """The keys of clicks that belong to a burst: ``BURST_LINKS`` or more different links of
    one message clicked within ``BURST_SECONDS``. ``clicks`` are (key, message id, link id,
    time) of new clicks and of the message's recent earlier ones alike, so a burst split
    across two drains is still seen."""
    by_message: dict[int, list[tuple[datetime, int, object]]] = defaultdict(list)
    for key, message_id, link_id, at in clicks:
        by_message[message_id].append((at, link_id, key))
    flagged: set[object] = set()
    window = timedelta(seconds=BURST_SECONDS)
    for rows in by_message.values():
        if len({link for _, link, _ in rows}) < BURST_LINKS:
            continue
        rows.sort(key=lambda row: row[0])
        start = 0
        for end in range(len(rows)):
            while rows[end][0] - rows[start][0] > window:
                start += 1
            in_window = rows[start : end + 1]
            if len({link for _, link, _ in in_window}) >= BURST_LINKS:
                flagged.update(key for _, _, key in in_window)
    return flagged
