"""The Plan and Do pages with the Django client: a campaign planned with its goal in percent
and two variants, the form's errors (weights, template errors) keeping what was typed, the
schedule read in the marketer's own time zone, send now / pause / resume / cancel, the
progress JSON, the preview for a chosen customer and the test send to a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest

from campaigns.audience import freeze_audience
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus, Variant
from campaigns.sending import INTERRUPTED, send_pending
from crm.models import UserProfile
from tests.campaigns.factories import CampaignFactory, VariantFactory, everyone_segment, subscriber

pytestmark = pytest.mark.django_db


class Browser:
    """A signed-in CSRF-enforcing client that sends the CSRF token with every POST, as a
    page's forms do."""

    def __init__(self, client):
        self.client = client
        client.get("/")
        self.token = client.cookies["csrftoken"].value

    def get(self, path, **extra):
        return self.client.get(path, **extra)

    def post(self, path, data=None, **extra):
        return self.client.post(path, {**(data or {}), "csrfmiddlewaretoken": self.token}, **extra)


@pytest.fixture
def signed_in(client_as):
    return lambda user: Browser(client_as(user))


HTML = '<html><body><p>{{ full_name }}様</p><a href="https://shop.example.jp/sale">セール</a></body></html>'


def plan(**changes) -> dict:
    """A complete POST of the campaign form: two variants, 50/50, a 20% A/B test share."""
    data = {
        "name": "冬のセール",
        "segment": everyone_segment().pk,
        "hypothesis": "名前入りの件名で開封率が上がる",
        "goal_open_rate": "25.5",
        "goal_click_rate": "4",
        "goal_conversion_rate": "",
        "goal_revenue": "500000",
        "attribution_days": "7",
        "holdout_percent": "10",
        "test_percent": "20",
        "coupon_code": "WINTER10",
        "from_email": "",
        "reply_to": "",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "1",
        "variants-MAX_NUM_FORMS": "10",
        "variants-0-label": "A",
        "variants-0-subject": "{{ family_name }}様へ冬のセール",
        "variants-0-html_body": HTML,
        "variants-0-text_body": "{{ full_name }}様 https://shop.example.jp/sale",
        "variants-0-weight": "50",
        "variants-1-label": "B",
        "variants-1-subject": "冬のセールのお知らせ",
        "variants-1-html_body": HTML,
        "variants-1-text_body": "セール https://shop.example.jp/sale",
        "variants-1-weight": "50",
    }
    data.update(changes)
    return data


def test_a_marketer_plans_a_campaign_with_a_goal_in_percent_and_two_variants(signed_in, marketer):
    client = signed_in(marketer)
    page = client.get("/campaigns/new/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "{{ kana_name }}" in page.content.decode()  # the variables are explained
    response = client.post("/campaigns/new/", plan())
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/campaigns/{campaign.pk}/"
    assert campaign.goal_open_rate == Decimal("0.2550")
    assert campaign.goal_click_rate == Decimal("0.0400")
    assert campaign.goal_conversion_rate is None
    assert campaign.goal_revenue == Decimal("500000")
    assert (campaign.holdout_percent, campaign.test_percent) == (10, 20)
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.created_by == marketer
    assert [(v.label, v.weight) for v in campaign.variants.order_by("label")] == [
        ("A", 50),
        ("B", 50),
    ]
    # Editing shows the goals in percent again.
    edit = client.get(f"/campaigns/{campaign.pk}/edit/").content.decode()
    assert 'value="25.5"' in edit
    assert 'value="500000"' in edit


def test_weights_not_adding_up_to_100_are_refused_and_nothing_typed_is_lost(signed_in, marketer):
    client = signed_in(marketer)
    response = client.post(
        "/campaigns/new/", plan(**{"variants-1-weight": "40"}), HTTP_ACCEPT_LANGUAGE="en"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "must add up to 100 (now 90)" in html
    assert not Campaign.objects.exists()
    assert "冬のセールのお知らせ" in html
    assert "名前入りの件名で開封率が上がる" in html
    assert 'value="25.5"' in html


def test_a_template_error_shows_beside_its_field(signed_in, marketer):
    response = signed_in(marketer).post(
        "/campaigns/new/",
        plan(**{"variants-1-subject": "{% if family_name %}閉じていない"}),
        HTTP_ACCEPT_LANGUAGE="en",
    )
    html = response.content.decode()
    assert "Template error" in html
    assert html.count('class="field has-error"') == 1
    assert not Campaign.objects.exists()


def test_an_ab_test_share_needs_two_variants(signed_in, marketer):
    data = plan(**{"variants-TOTAL_FORMS": "1", "variants-0-weight": "100"})
    response = signed_in(marketer).post("/campaigns/new/", data, HTTP_ACCEPT_LANGUAGE="en")
    assert "An A/B test needs at least two variants" in response.content.decode()
    assert not Campaign.objects.exists()


def test_the_sender_is_an_address_with_an_optional_name(signed_in, marketer):
    client = signed_in(marketer)
    refused = client.post("/campaigns/new/", plan(from_email="ショップ"), HTTP_ACCEPT_LANGUAGE="en")
    assert "Enter an address, optionally with a name" in refused.content.decode()
    assert not Campaign.objects.exists()
    client.post("/campaigns/new/", plan(from_email="株式会社サンプル <news@example.jp>"))
    assert Campaign.objects.get().from_email == "株式会社サンプル <news@example.jp>"


def test_a_rate_over_100_percent_is_refused(signed_in, marketer):
    response = signed_in(marketer).post("/campaigns/new/", plan(goal_open_rate="120"))
    assert response.status_code == 200
    assert not Campaign.objects.exists()


def test_editing_removes_and_adds_variants(signed_in, marketer):
    variant = VariantFactory(weight=100)
    campaign = variant.campaign
    data = plan(
        test_percent="0",
        **{
            "variants-INITIAL_FORMS": "1",
            "variants-0-id": str(variant.pk),
            "variants-0-campaign": str(campaign.pk),
            "variants-0-DELETE": "on",
            "variants-1-label": "A",
            "variants-1-weight": "100",
        },
    )
    response = signed_in(marketer).post(f"/campaigns/{campaign.pk}/edit/", data)
    assert response.status_code == 302
    assert list(campaign.variants.values_list("label", "subject")) == [
        ("A", "冬のセールのお知らせ")
    ]


def test_a_sent_campaign_is_read_only(signed_in, marketer):
    campaign = VariantFactory().campaign
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENT)
    client = signed_in(marketer)
    assert client.get(f"/campaigns/{campaign.pk}/edit/")["Location"] == f"/campaigns/{campaign.pk}/"
    client.post(f"/campaigns/{campaign.pk}/edit/", plan(name="書き換え"))
    campaign.refresh_from_db()
    assert campaign.name != "書き換え"
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f"/campaigns/{campaign.pk}/edit/" not in page


def test_the_schedule_is_read_in_the_marketers_own_time_zone(signed_in, marketer):
    UserProfile.objects.update_or_create(user=marketer, defaults={"time_zone": "Europe/Paris"})
    subscriber()
    campaign = VariantFactory().campaign
    client = signed_in(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Europe/Paris" in page
    response = client.post(f"/campaigns/{campaign.pk}/schedule/", {"at": "2099-07-01T10:00"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    # 10:00 in Paris in summer (UTC+2) is 08:00 UTC, not 10:00 in Tokyo (01:00 UTC).
    assert campaign.scheduled_at == datetime(2099, 7, 1, 8, 0, tzinfo=UTC)
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "2099-07-01 10:00" in page


def test_an_invalid_schedule_shows_an_error(signed_in, marketer):
    campaign = VariantFactory().campaign
    response = signed_in(marketer).post(f"/campaigns/{campaign.pk}/schedule/", {"at": "tomorrow"})
    assert response.status_code == 400
    assert b"has-error" in response.content
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_a_campaign_without_variant_cannot_be_sent(signed_in, marketer):
    campaign = CampaignFactory()
    client = signed_in(marketer)
    response = client.post(f"/campaigns/{campaign.pk}/send-now/", follow=True)
    assert (
        "variant" in response.content.decode().lower() or "バリアント" in response.content.decode()
    )
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_send_now_pause_resume_and_cancel(signed_in, marketer):
    subscriber()
    campaign = VariantFactory().campaign
    client = signed_in(marketer)
    base = f"/campaigns/{campaign.pk}"
    client.post(f"{base}/send-now/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    freeze_audience(campaign=campaign)
    client.post(f"{base}/pause/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    page = client.get(f"{base}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'action="{base}/resume/"' in page
    client.post(f"{base}/resume/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    page = client.get(f"{base}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Yes, cancel the campaign" in page
    client.post(f"{base}/cancel/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED
    assert not Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED).exists()
    # Pausing a cancelled campaign is refused with a message, not an error page.
    response = client.post(f"{base}/pause/", follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "Only a campaign being sent can be paused." in response.content.decode()


def test_the_progress_json_counts_what_was_sent(signed_in, marketer, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    for _n in range(4):
        subscriber()
    campaign = VariantFactory().campaign
    client = signed_in(marketer)
    before = client.get(f"/campaigns/{campaign.pk}/progress/").json()
    assert (before["status"], before["percent"], before["active"]) == ("draft", 0, False)
    freeze_audience(campaign=campaign)
    during = client.get(f"/campaigns/{campaign.pk}/progress/").json()
    assert (during["queued"], during["percent"], during["active"]) == (4, 0, True)
    send_pending(campaign_id=campaign.pk)
    after = client.get(f"/campaigns/{campaign.pk}/progress/").json()
    assert after["status"] == "sent"
    assert (after["sent"], after["queued"], after["percent"], after["active"]) == (4, 0, 100, False)


def test_possible_duplicates_after_an_interrupted_send_are_reported(signed_in, marketer):
    subscriber()
    subscriber()
    campaign = VariantFactory().campaign
    freeze_audience(campaign=campaign)
    Message.objects.filter(pk=Message.objects.filter(campaign=campaign).first().pk).update(
        status=MessageStatus.SENT, error=INTERRUPTED
    )
    client = signed_in(marketer)
    assert client.get(f"/campaigns/{campaign.pk}/progress/").json()["possibly_duplicated"] == 1
    page = client.get(f"/campaigns/{campaign.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    note = page[page.index("data-duplicates") : page.index("</p>", page.index("data-duplicates"))]
    assert "hidden" not in note.split(">")[0]
    assert "may have reached their recipients twice" in note


def test_the_preview_renders_a_chosen_variant_for_a_chosen_customer(signed_in, marketer):
    first = subscriber(
        family_name="山田", given_name="花子", family_name_kana="ヤマダ", email="hanako@example.jp"
    )
    second = subscriber(
        family_name="佐藤", given_name="次郎", family_name_kana="サトウ", email="jiro@example.jp"
    )
    stranger = subscriber(prefecture="27", email="osaka@example.jp")  # not in the segment
    variant_a = VariantFactory(weight=50)
    variant_b = VariantFactory(
        campaign=variant_a.campaign, label="B", weight=50, subject="{{ given_name }}さんへ"
    )
    campaign = variant_a.campaign
    client = signed_in(marketer)
    base = f"/campaigns/{campaign.pk}/preview/"
    default = client.get(base, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "山田様、秋のセールのお知らせ" in default  # variant A for the first member
    assert 'sandbox srcdoc="' in default
    assert "allow-scripts" not in default
    assert "List-Unsubscribe" in default
    chosen = client.get(f"{base}?variant={variant_b.pk}&customer={second.pk}").content.decode()
    assert "次郎さんへ" in chosen
    found = client.get(f"{base}?variant={variant_a.pk}&q=jiro").content.decode()
    assert "佐藤様、秋のセールのお知らせ" in found
    by_kana = client.get(f"{base}?variant={variant_a.pk}&q=さとう").content.decode()
    assert "佐藤様、秋のセールのお知らせ" in by_kana
    outside = client.get(f"{base}?customer={stranger.pk}", HTTP_ACCEPT_LANGUAGE="en")
    assert "is not among those who may receive" in outside.content.decode()
    assert first.pk  # the default above was the oldest member


def test_a_test_send_goes_to_the_marketer_through_the_smtp_server(
    signed_in, marketer, smtp_settings
):
    customer = subscriber(family_name="山田", email="hanako@example.jp")
    variant = VariantFactory()
    campaign = variant.campaign
    response = signed_in(marketer).post(
        f"/campaigns/{campaign.pk}/test-send/",
        {"variant": variant.pk, "customer": customer.pk},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert f"sent to {marketer.email}" in response.content.decode()
    assert len(smtp_settings.messages) == 1
    envelope = smtp_settings.messages[0]
    assert envelope.rcpt_tos == [marketer.email]
    message = message_from_bytes(envelope.content)
    assert (
        str(make_header(decode_header(message["Subject"]))) == "[TEST] 山田様、秋のセールのお知らせ"
    )
    assert "hanako@example.jp" not in envelope.rcpt_tos
    assert not Message.objects.exists()
    assert Variant.objects.get().pk == variant.pk


def test_a_test_send_without_an_address_says_so(signed_in, make_user, smtp_settings):
    from crm.roles import Role

    user = make_user(Role.MARKETER, username="no-mail", email="")
    customer = subscriber()
    variant = VariantFactory()
    response = signed_in(user).post(
        f"/campaigns/{variant.campaign.pk}/test-send/",
        {"variant": variant.pk, "customer": customer.pk},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "Your account has no e-mail address" in response.content.decode()
    assert smtp_settings.messages == []


def test_sales_see_the_campaign_page_without_actions_and_get_403_on_every_action(signed_in, sales):
    subscriber()
    variant = VariantFactory()
    campaign = variant.campaign
    client = signed_in(sales)
    page = client.get(f"/campaigns/{campaign.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    html = page.content.decode()
    assert "秋のセール" in html
    assert '<form method="post"' not in html.split('id="main"')[1]
    assert client.get(f"/campaigns/{campaign.pk}/progress/").status_code == 200
    for path in ("new/", f"{campaign.pk}/edit/", f"{campaign.pk}/preview/"):
        assert client.get(f"/campaigns/{path}").status_code == 403, path
    for action in ("schedule", "send-now", "pause", "resume", "cancel", "test-send", "edit"):
        assert client.post(f"/campaigns/{campaign.pk}/{action}/").status_code == 403, action
    assert client.post("/campaigns/new/", plan()).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT
