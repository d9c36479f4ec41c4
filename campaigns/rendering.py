"""Turning a campaign variant into one personalised e-mail per recipient.

Content is written in a restricted template language (campaigns.template_library: variables,
``if``, ``firstof`` and formatting filters; no tag that loads files or touches the database),
and the context holds only plain strings, never model instances, so ``{{ x.y }}`` reaches
nothing beyond string methods. HTML is autoescaped; the subject and plain-text part are not.

Variables (``VARIABLES``): family_name, given_name, full_name, family_name_kana,
given_name_kana, kana_name, email, prefecture, last_product, last_purchase_date, coupon_code,
rfm_label (translated), campaign_name, unsubscribe_url.

Every link (``href`` in HTML, bare http(s) URLs in text) is stored as a campaign Link and
rewritten to that message's click URL; the HTML gets the open pixel; both parts get the
sender identification footer the Japanese Act on Specified Electronic Mail requires
(templates/campaigns/email/footer.*, from the CAMPAIGN_SENDER_* settings) with the
unsubscribe link; every message carries the RFC 8058 one-click List-Unsubscribe headers and a
Message-ID derived from its row, so a copy sent twice is recognisable.

Speed: templates and footers are compiled once per batch (``Renderer``), the per-customer data
of a batch is read in three queries, and each message costs a few template renders.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.template import Context, Engine, TemplateSyntaxError
from django.template.loader import render_to_string
from django.utils import translation

from campaigns import tokens
from campaigns.mime import CampaignEmail
from campaigns.models import Campaign, Link, Variant
from crm.names import full_name
from customers.models import Customer, Purchase, PurchaseItem, PurchaseStatus
from customers.prefectures import Prefecture
from segments.models import CustomerScore, RfmLabel, ScoringRun

VARIABLES = (
    "family_name",
    "given_name",
    "full_name",
    "family_name_kana",
    "given_name_kana",
    "kana_name",
    "email",
    "prefecture",
    "last_product",
    "last_purchase_date",
    "coupon_code",
    "rfm_label",
    "campaign_name",
    "unsubscribe_url",
)


class _RestrictedEngine(Engine):
    # Django adds its default tags (include, load, url...) to any engine's builtins.
    default_builtins = []


_ENGINE_OPTIONS = {
    "builtins": ["campaigns.template_library"],
    "libraries": {},
    "loaders": [],
    "string_if_invalid": "",
    "debug": False,
}
HTML_ENGINE = _RestrictedEngine(autoescape=True, **_ENGINE_OPTIONS)
TEXT_ENGINE = _RestrictedEngine(autoescape=False, **_ENGINE_OPTIONS)

_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE)
# ASCII URL characters only: Japanese text often runs straight on after a URL.
_BARE_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_TRAILING = ".,;:!?)'"
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_LINK_VARIABLE = "tracked_link_{}"
# Stands for the per-message unsubscribe URL in the footers rendered once per batch.
_UNSUBSCRIBE_MARK = "CAMPAIGN-UNSUBSCRIBE-URL"


def _bare_url(match: re.Match) -> str:
    return match.group(0).rstrip(_TRAILING)


def _storable(url: str) -> bool:
    # URLs built from template variables differ per recipient: they cannot be stored links.
    return "{" not in url and "}" not in url and len(url) <= 2000


def content_links(*, html_body: str, text_body: str) -> list[str]:
    """The URLs in the content that will be tracked, in order of appearance."""
    urls = [html.unescape(match.group(3)) for match in _HREF.finditer(html_body)]
    urls += [_bare_url(match) for match in _BARE_URL.finditer(text_body)]
    return [url for url in dict.fromkeys(urls) if _storable(url)]


def store_links(*, campaign: Campaign) -> dict[str, int]:
    """Store every link of the campaign's variants; returns url -> Link id."""
    urls: list[str] = []
    for variant in campaign.variants.all():
        urls += content_links(html_body=variant.html_body, text_body=variant.text_body)
    Link.objects.bulk_create(
        [Link(campaign=campaign, url=url) for url in dict.fromkeys(urls)],
        ignore_conflicts=True,
    )
    return dict(campaign.links.values_list("url", "id"))


def _rewrite_html(source: str, link_ids: dict[str, int]) -> str:
    def replace(match: re.Match) -> str:
        link_id = link_ids.get(html.unescape(match.group(3)))
        if link_id is None:
            return match.group(0)
        quote = match.group(2)
        return f"{match.group(1)}{quote}{{{{ {_LINK_VARIABLE.format(link_id)} }}}}{quote}"

    return _HREF.sub(replace, source)


def _rewrite_text(source: str, link_ids: dict[str, int]) -> str:
    def replace(match: re.Match) -> str:
        url = _bare_url(match)
        link_id = link_ids.get(url)
        if link_id is None:
            return match.group(0)
        return "{{ " + _LINK_VARIABLE.format(link_id) + " }}" + match.group(0)[len(url) :]

    return _BARE_URL.sub(replace, source)


def check_content(*, subject: str, html_body: str, text_body: str) -> list[str]:
    """The template errors of a variant's content (empty when it compiles)."""
    errors = []
    for engine, source in (
        (TEXT_ENGINE, subject),
        (HTML_ENGINE, html_body),
        (TEXT_ENGINE, text_body),
    ):
        try:
            engine.from_string(source)
        except TemplateSyntaxError as error:
            errors.append(str(error))
    return errors


@dataclass
class _CompiledVariant:
    subject: object
    html: object
    text: object


@dataclass(frozen=True)
class Recipient:
    """What rendering needs of one message."""

    message_id: int
    customer_id: int
    email: str
    variant_id: int


def _sender_footers() -> tuple[str, str]:
    context = {
        "sender_name": settings.CAMPAIGN_SENDER_NAME,
        "sender_address": settings.CAMPAIGN_SENDER_ADDRESS,
        "sender_contact": settings.CAMPAIGN_SENDER_CONTACT,
        "unsubscribe_url": _UNSUBSCRIBE_MARK,
    }
    return (
        render_to_string("campaigns/email/footer.html", context),
        render_to_string("campaigns/email/footer.txt", context),
    )


def _insert_before_body_end(document: str, addition: str) -> str:
    ends = list(_BODY_END.finditer(document))
    if not ends:
        return document + addition
    at = ends[-1].start()
    return document[:at] + addition + document[at:]


def message_id_domain() -> str:
    return (
        settings.CAMPAIGN_MESSAGE_ID_DOMAIN or urlsplit(settings.SITE_URL).hostname or "localhost"
    )


def message_id_header(*, campaign_id: int, message_id: int) -> str:
    """The Message-ID of a message: derived from its row, the same on every copy."""
    return f"<campaign-{campaign_id}.message-{message_id}@{message_id_domain()}>"


def customer_contexts(customer_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """The personalisation values of each customer (three queries for the whole batch)."""
    customer_ids = list(customer_ids)
    last_purchase = (
        Purchase.objects.completed()
        .filter(customer=OuterRef("pk"))
        .order_by("-purchased_at", "-id")
    )
    # One level of subquery: OuterRef("pk") must name the customer, not a purchase.
    last_product = PurchaseItem.objects.filter(
        purchase__customer=OuterRef("pk"), purchase__status=PurchaseStatus.COMPLETED
    ).order_by("-purchase__purchased_at", "-purchase__id", "id")
    rows = Customer.objects.filter(id__in=customer_ids).annotate(
        last_purchase_at=Subquery(last_purchase.values("purchased_at")[:1]),
        last_product=Subquery(last_product.values("product__name")[:1]),
    )
    run = ScoringRun.objects.latest_succeeded()
    labels = {}
    if run is not None:
        labels = dict(
            CustomerScore.objects.filter(run=run, customer_id__in=customer_ids).values_list(
                "customer_id", "rfm_label"
            )
        )
    prefectures = dict(Prefecture.choices)
    contexts = {}
    for row in rows.values(
        "id",
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
        "email",
        "prefecture",
        "last_purchase_at",
        "last_product",
    ):
        label = labels.get(row["id"])
        contexts[row["id"]] = {
            "family_name": row["family_name"],
            "given_name": row["given_name"],
            "full_name": full_name(row["family_name"], row["given_name"]),
            "family_name_kana": row["family_name_kana"],
            "given_name_kana": row["given_name_kana"],
            "kana_name": f"{row['family_name_kana']} {row['given_name_kana']}".strip(),
            "email": row["email"],
            "prefecture": str(prefectures.get(row["prefecture"], "")),
            "last_product": row["last_product"] or "",
            "last_purchase_date": row["last_purchase_at"],
            "rfm_label": str(RfmLabel(label).label) if label else "",
        }
    return contexts


class Renderer:
    """Renders one campaign's messages; build one per batch (templates compiled once)."""

    def __init__(self, *, campaign: Campaign, variants: Iterable[Variant] | None = None):
        self.campaign = campaign
        self.language = settings.LANGUAGE_CODE
        link_ids = dict(campaign.links.values_list("url", "id"))
        self.link_ids = sorted(set(link_ids.values()))
        self.variants: dict[int, _CompiledVariant] = {}
        for variant in variants if variants is not None else campaign.variants.all():
            self.variants[variant.pk] = _CompiledVariant(
                subject=TEXT_ENGINE.from_string(variant.subject),
                html=HTML_ENGINE.from_string(_rewrite_html(variant.html_body, link_ids)),
                text=TEXT_ENGINE.from_string(_rewrite_text(variant.text_body, link_ids)),
            )
        with translation.override(self.language):
            self.html_footer, self.text_footer = _sender_footers()
        self.from_email = campaign.from_email or settings.DEFAULT_FROM_EMAIL
        self.reply_to = [campaign.reply_to] if campaign.reply_to else []
        self.mailto = settings.CAMPAIGN_UNSUBSCRIBE_MAILTO

    def render(
        self, recipients: Iterable[Recipient], contexts: dict[int, dict] | None = None
    ) -> list[CampaignEmail]:
        recipients = list(recipients)
        if contexts is None:
            contexts = customer_contexts(r.customer_id for r in recipients)
        with translation.override(self.language):
            return [
                self.render_one(recipient, contexts.get(recipient.customer_id, {}))
                for recipient in recipients
            ]

    def render_one(self, recipient: Recipient, values: dict) -> CampaignEmail:
        compiled = self.variants[recipient.variant_id]
        message_id = recipient.message_id
        unsubscribe = tokens.unsubscribe_url(message_id)
        context = {
            **values,
            "coupon_code": self.campaign.coupon_code,
            "campaign_name": self.campaign.name,
            "unsubscribe_url": unsubscribe,
        }
        for link_id in self.link_ids:
            context[_LINK_VARIABLE.format(link_id)] = tokens.click_url(message_id, link_id)
        subject = " ".join(compiled.subject.render(Context(context, autoescape=False)).split())
        text = compiled.text.render(Context(context, autoescape=False))
        body_html = compiled.html.render(Context(context))
        pixel = (
            f'<img src="{tokens.open_url(message_id)}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">'
        )
        body_html = _insert_before_body_end(
            body_html, self.html_footer.replace(_UNSUBSCRIBE_MARK, unsubscribe) + pixel
        )
        text = text.rstrip() + "\n\n" + self.text_footer.replace(_UNSUBSCRIBE_MARK, unsubscribe)
        list_unsubscribe = f"<{unsubscribe}>"
        if self.mailto:
            list_unsubscribe += f", <mailto:{self.mailto}?subject=unsubscribe-{message_id}>"
        email = CampaignEmail(
            subject=subject,
            body=text,
            from_email=self.from_email,
            to=[recipient.email],
            reply_to=self.reply_to,
            headers={
                "Message-ID": message_id_header(
                    campaign_id=self.campaign.pk, message_id=message_id
                ),
                "List-Unsubscribe": list_unsubscribe,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        email.attach_alternative(body_html, "text/html")
        return email


def preview(*, variant: Variant, customer: Customer) -> CampaignEmail:
    """The e-mail ``customer`` would get from ``variant`` (links and pixel point nowhere real:
    message 0 has no valid token)."""
    store_links(campaign=variant.campaign)
    renderer = Renderer(campaign=variant.campaign, variants=[variant])
    recipient = Recipient(
        message_id=0, customer_id=customer.pk, email=customer.email, variant_id=variant.pk
    )
    return renderer.render([recipient])[0]
