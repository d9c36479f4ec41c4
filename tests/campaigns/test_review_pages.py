"""The review page, its CSV, the campaign list and the Act buttons, per role."""

from __future__ import annotations

import csv
import io

import pytest

from campaigns.models import AudienceRule, Campaign, CampaignStatus, Message, MessageStatus
from campaigns.results import compute_results
from tests.campaigns.factories import CampaignFactory, VariantFactory
from tests.campaigns.test_results import build_campaign

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def post(client, path, data=None):
    """A POST as the browser sends it: with the CSRF token of a page just read."""
    if "csrftoken" not in client.cookies:
        client.get("/campaigns/")
    token = client.cookies["csrftoken"].value
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": token})


def _percent(rate) -> str:
    return f"{rate * 100:.1f}%"


@pytest.fixture
def sent():
    campaign, _variants = build_campaign(sent_days_ago=30)
    return campaign


@pytest.mark.parametrize("role", ["admin_member", "marketer", "sales"])
def test_everyone_reads_the_review_but_only_managers_act(request, client_as, sent, role):
    response = client_as(request.getfixturevalue(role)).get(f"/campaigns/{sent.pk}/review/", **EN)
    assert response.status_code == 200
    html = response.content.decode()
    results = compute_results(sent)
    assert _percent(results.total.open_rate) in html
    assert _percent(results.total.click_rate) in html
    assert _percent(results.total.conversion_rate) in html
    assert "Variants side by side" in html and "Holdout lift" in html
    assert 'id="heatmap-table"' in html and 'id="rfm-table"' in html
    manages = role != "sales"
    assert (f"/campaigns/{sent.pk}/notes/" in html) is manages
    assert (f"/campaigns/{sent.pk}/duplicate/" in html) is manages
    assert (f"/campaigns/{sent.pk}/resend-non-openers/" in html) is manages


def test_review_shows_goals_verdicts_and_machine_events_apart(client_as, marketer, sent):
    html = client_as(marketer).get(f"/campaigns/{sent.pk}/review/", **EN).content.decode()
    results = compute_results(sent)
    for goal in results.goals:
        assert f'data-goal-state="{goal.state.value}"' in html
    for sentence in results.verdicts():
        assert sentence.replace("'", "&#x27;") in html
    assert f"{results.total.machine_opened} messages opened only by machines" in html


def test_review_csv_has_the_same_figures(client_as, sales, sent):
    response = client_as(sales).get(f"/campaigns/{sent.pk}/review/csv/", **EN)
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    results = compute_results(sent)
    total = rows[0]
    assert total["Breakdown"] == "Total"
    assert int(total["Delivered (holdout: members)"]) == results.total.delivered
    assert int(total["Opened"]) == results.total.opened
    assert float(total["Open rate"]) == round(results.total.open_rate, 4)
    assert [r["Group"] for r in rows if r["Breakdown"] == "Variant"] == ["A", "B"]
    holdout = next(r for r in rows if r["Breakdown"] == "Holdout")
    assert int(holdout["Delivered (holdout: members)"]) == results.holdout.members


@pytest.mark.parametrize("role", ["marketer", "sales"])
def test_list_shows_every_campaign_with_rates_and_goal_badges(request, client_as, sent, role):
    draft = CampaignFactory(name="下書きキャンペーン")
    client = client_as(request.getfixturevalue(role))
    client.get(f"/campaigns/{sent.pk}/review/")  # computes and stores the conversions
    html = client.get("/campaigns/", **EN).content.decode()
    results = compute_results(sent)
    assert sent.name in html and draft.name in html
    assert html.index(draft.name) < html.index(sent.name)  # newest first
    assert _percent(results.total.open_rate) in html
    assert _percent(results.total.conversion_rate) in html
    assert "goal-badge goal-" in html
    assert ('href="/campaigns/new/"' in html) is (role == "marketer")

    filtered = client.get("/campaigns/?status=draft", **EN).content.decode()
    assert draft.name in filtered and sent.name not in filtered
    assert client.get("/campaigns/?status=nonsense").status_code == 200


def test_notes_duplicate_and_resend_from_the_review(client_as, marketer, sent):
    client = client_as(marketer)
    response = post(client, f"/campaigns/{sent.pk}/notes/", {"notes": "件名を短くする"})
    assert response.status_code == 302
    sent.refresh_from_db()
    assert sent.act_notes == "件名を短くする"

    response = post(client, f"/campaigns/{sent.pk}/duplicate/")
    copy = Campaign.objects.get(parent=sent, audience_rule=AudienceRule.SEGMENT)
    assert response["Location"] == f"/campaigns/{copy.pk}/"
    assert copy.status == CampaignStatus.DRAFT and copy.variants.count() == 2

    response = post(client, f"/campaigns/{sent.pk}/resend-non-openers/", {"subject": "再送"})
    resend = Campaign.objects.get(parent=sent, audience_rule=AudienceRule.NON_OPENERS_OF_PARENT)
    assert response["Location"] == f"/campaigns/{resend.pk}/"
    assert set(resend.variants.values_list("subject", flat=True)) == {"再送"}

    response = post(client, f"/campaigns/{sent.pk}/resend-non-openers/", {"subject": ""})
    assert response["Location"] == f"/campaigns/{sent.pk}/review/"


def test_sales_cannot_act(client_as, sales, sent):
    client = client_as(sales)
    for action in ("notes", "duplicate", "resend-non-openers", "send-winner"):
        assert post(client, f"/campaigns/{sent.pk}/{action}/", {"subject": "x"}).status_code == 403
    assert not Campaign.objects.filter(parent=sent).exists()


def test_send_winner_from_the_review(client_as, marketer):
    campaign = CampaignFactory(status=CampaignStatus.TESTING, test_percent=50)
    a = VariantFactory(campaign=campaign, label="A", weight=50)
    VariantFactory(campaign=campaign, label="B", weight=50)
    from tests.customers.factories import CustomerFactory

    customer = CustomerFactory()
    Message.objects.create(
        campaign=campaign, customer=customer, email=customer.email, status=MessageStatus.WAITING
    )
    client = client_as(marketer)
    html = client.get(f"/campaigns/{campaign.pk}/review/", **EN).content.decode()
    assert "Send the winning variant to the rest" in html
    response = post(client, f"/campaigns/{campaign.pk}/send-winner/", {"variant": a.pk})
    assert response["Location"] == f"/campaigns/{campaign.pk}/"
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING and campaign.winner == a
    assert Message.objects.get(campaign=campaign).status == MessageStatus.QUEUED
    other = VariantFactory()
    assert (
        post(client, f"/campaigns/{campaign.pk}/send-winner/", {"variant": other.pk}).status_code
        == 404
    )


def test_review_of_a_campaign_without_messages(client_as, marketer):
    campaign = CampaignFactory()
    VariantFactory(campaign=campaign)
    response = client_as(marketer).get(f"/campaigns/{campaign.pk}/review/", **EN)
    assert response.status_code == 200
    assert "Nothing delivered yet." in response.content.decode()
    assert client_as(marketer).get("/campaigns/999999/review/").status_code == 404


def test_cached_results_are_shown_in_each_reader_s_language(client_as, marketer, sales, sent):
    from django.utils import translation

    from segments.models import RfmLabel

    with translation.override("ja"):
        champions_ja = str(RfmLabel.CHAMPIONS.label)
    assert champions_ja != "Champions"
    english = client_as(marketer).get(f"/campaigns/{sent.pk}/review/", **EN).content.decode()
    japanese = (
        client_as(sales)
        .get(f"/campaigns/{sent.pk}/review/", HTTP_ACCEPT_LANGUAGE="ja")
        .content.decode()
    )
    assert "Champions" in english and champions_ja not in english
    assert champions_ja in japanese
