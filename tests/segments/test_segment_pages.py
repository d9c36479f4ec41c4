"""The segment builder's pages as marketers and sales staff use them: the list, the builder's
live preview, saving (valid and invalid rules), a segment's page with its members, refresh,
export and delete. Counts are checked against the customers counted in plain Python."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.utils import timezone

from customers.models import Customer
from segments import views
from segments.models import RfmLabel, Segment, SegmentKind, SegmentMember, SegmentSize
from tests.crm.test_auth import csrf_token
from tests.customers.factories import CustomerFactory
from tests.segments.factories import CustomerScoreFactory, ScoringRunFactory, SegmentFactory

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
LIST = "/segments/"
NEW = "/segments/new/"
PREVIEW = "/segments/preview/"

TOKYO_AND_CONSENT = {
    "op": "and",
    "conditions": [
        {"field": "prefecture", "op": "in", "value": ["13"]},
        {"field": "email_opt_in", "op": "is", "value": True},
    ],
}


def consenting(**kwargs) -> Customer:
    return CustomerFactory(email_opt_in=True, email_opt_in_at=timezone.now(), **kwargs)


@pytest.fixture
def people():
    """Customers in and around Tokyo with and without consent, some scored."""
    run = ScoringRunFactory()
    customers = [
        consenting(prefecture="13", family_name="東京", given_name="同意"),
        consenting(prefecture="13", family_name="東京", given_name="同意二"),
        CustomerFactory(prefecture="13", family_name="東京", given_name="拒否"),
        consenting(prefecture="27", family_name="大阪", given_name="同意"),
        CustomerFactory(prefecture="14", family_name="神奈川", given_name="拒否"),
    ]
    CustomerScoreFactory(run=run, customer=customers[0], rfm_label=RfmLabel.CHAMPIONS, decile=1)
    CustomerScoreFactory(run=run, customer=customers[3], rfm_label=RfmLabel.LOST, decile=9)
    return customers


def expected_tokyo_and_consent() -> set[int]:
    return {c.pk for c in Customer.objects.all() if c.prefecture == "13" and c.email_opt_in}


def page_token(client, url: str = NEW) -> str:
    return csrf_token(client.get(url, **EN))


def preview(client, rules) -> str:
    token = page_token(client)
    text = rules if isinstance(rules, str) else json.dumps(rules)
    response = client.post(PREVIEW, {"rules": text, "csrfmiddlewaretoken": token}, **EN)
    assert response.status_code == 200
    return response.content.decode()


def json_script(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert match, f"no {element_id} on the page"
    return json.loads(match.group(1))


# --- Access -----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    segment = SegmentFactory()
    for url in (LIST, NEW, f"/segments/{segment.pk}/", f"/segments/{segment.pk}/export/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_sales_see_segments_but_cannot_build_change_or_delete(client_as, sales, people):
    segment = SegmentFactory(name="東京の同意者", rules=TOKYO_AND_CONSENT)
    client = client_as(sales)
    listing = client.get(LIST, **EN).content.decode()
    assert "東京の同意者" in listing
    assert "New segment" not in listing
    detail = client.get(f"/segments/{segment.pk}/", **EN)
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "Refresh now" not in html and ">Edit<" not in html and ">Delete<" not in html
    assert "Export members CSV" in html
    assert client.get(NEW, **EN).status_code == 403
    assert client.get(f"/segments/{segment.pk}/edit/", **EN).status_code == 403
    assert client.get(f"/segments/{segment.pk}/delete/", **EN).status_code == 403
    token = csrf_token(detail)
    for url in (PREVIEW, f"/segments/{segment.pk}/refresh/", f"/segments/{segment.pk}/delete/"):
        response = client.post(url, {"rules": "{}", "csrfmiddlewaretoken": token}, **EN)
        assert response.status_code == 403, url
    assert Segment.objects.filter(pk=segment.pk).exists()


# --- Builder and live preview -----------------------------------------------------------------


def test_builder_page_offers_the_field_catalogue_in_groups(client_as, marketer):
    html = client_as(marketer).get(NEW, **EN).content.decode()
    catalogue = json_script(html, "segment-fields")
    keys = {field["key"] for field in catalogue}
    assert {"prefecture", "email_opt_in", "rfm_label", "days_since_last_purchase"} <= keys
    assert {field["group_label"] for field in catalogue} == {"Profile", "Scores", "Behaviour"}
    assert 'src="/static/js/segment-builder.js"' in html
    assert json.loads(
        re.search(r'name="rules" value="([^"]*)"', html).group(1).replace("&quot;", '"')
    ) == {
        "op": "and",
        "conditions": [],
    }


def test_preview_counts_the_matching_customers_with_a_sample_and_breakdowns(
    client_as, marketer, people
):
    html = preview(client_as(marketer), TOKYO_AND_CONSENT)
    expected = expected_tokyo_and_consent()
    assert len(expected) == 2
    assert re.search(r'data-count="(\d+)"', html).group(1) == str(len(expected))
    sample_links = set(map(int, re.findall(r'href="/customers/(\d+)/"', html)))
    assert sample_links == expected
    assert "Champions" in html  # the scored sample customer's label
    assert "Not scored" in html
    prefecture_table = re.search(r'data-breakdown="prefecture">(.*?)</table>', html, re.S).group(1)
    assert re.search(r"Tokyo</th><td class=\"number\">2<", prefecture_table)
    assert json_script(html, "preview-rule-errors") == []


def test_preview_of_invalid_rules_shows_each_error_with_its_path(client_as, marketer, people):
    rules = {
        "op": "and",
        "conditions": [
            {"field": "prefecture", "op": "in", "value": ["99"]},
            {"field": "nonsense", "op": "is", "value": 1},
        ],
    }
    html = preview(client_as(marketer), rules)
    errors = json_script(html, "preview-rule-errors")
    paths = {error["path"] for error in errors}
    assert paths == {"conditions.0.value.0", "conditions.1.field"}
    assert "data-count" not in html
    assert "is not one of the choices" in html
    assert "Unknown field" in html


def test_preview_of_text_that_is_not_json_is_an_error_not_a_crash(client_as, marketer):
    html = preview(client_as(marketer), "{not json")
    assert "The rules could not be read." in html


def test_saving_a_segment_takes_its_members(client_as, marketer, people):
    client = client_as(marketer)
    response = client.post(
        NEW,
        {
            "name": "東京の同意者",
            "description": "メール施策の対象",
            "kind": SegmentKind.DYNAMIC,
            "rules": json.dumps(TOKYO_AND_CONSENT),
            "csrfmiddlewaretoken": page_token(client),
        },
        **EN,
    )
    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/segments/{segment.pk}/"
    expected = expected_tokyo_and_consent()
    assert segment.member_count == len(expected)
    assert set(SegmentMember.objects.values_list("customer_id", flat=True)) == expected
    assert segment.created_by == marketer
    assert segment.rules == TOKYO_AND_CONSENT
    listing = client.get(LIST, **EN).content.decode()
    row = re.search(rf'data-segment="{segment.pk}">(.*?)</tr>', listing, re.S).group(1)
    assert re.search(rf'segment-members">{len(expected)}<', row)


def test_invalid_rules_are_shown_beside_their_conditions_and_nothing_is_saved(client_as, marketer):
    client = client_as(marketer)
    rules = {"op": "and", "conditions": [{"field": "age", "op": "between", "value": [50, 20]}]}
    response = client.post(
        NEW,
        {
            "name": "逆の年齢",
            "kind": SegmentKind.DYNAMIC,
            "rules": json.dumps(rules),
            "csrfmiddlewaretoken": page_token(client),
        },
        **EN,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert json_script(html, "rule-errors") == [
        {"path": "conditions.0.value", "message": "The minimum is larger than the maximum."}
    ]
    assert "Some conditions are not complete or not valid" in html
    assert not Segment.objects.exists()


def test_a_duplicate_name_is_refused(client_as, marketer):
    SegmentFactory(name="休眠顧客")
    client = client_as(marketer)
    response = client.post(
        NEW,
        {
            "name": "休眠顧客",
            "kind": SegmentKind.STATIC,
            "rules": "{}",
            "csrfmiddlewaretoken": page_token(client),
        },
        **EN,
    )
    assert response.status_code == 200
    assert "Segment with this Name already exists." in response.content.decode()
    assert Segment.objects.count() == 1


def test_editing_the_rules_re_takes_the_members(client_as, marketer, people):
    client = client_as(marketer)
    segment = SegmentFactory(name="東京", kind=SegmentKind.STATIC, rules=TOKYO_AND_CONSENT)
    edit = f"/segments/{segment.pk}/edit/"
    osaka = {"op": "or", "conditions": [{"field": "prefecture", "op": "in", "value": ["27"]}]}
    response = client.post(
        edit,
        {
            "name": "大阪",
            "kind": SegmentKind.STATIC,
            "rules": json.dumps(osaka),
            "csrfmiddlewaretoken": page_token(client, edit),
        },
        **EN,
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    osaka_ids = {c.pk for c in Customer.objects.all() if c.prefecture == "27"}
    assert (segment.name, segment.member_count) == ("大阪", len(osaka_ids))
    assert set(segment.members.values_list("customer_id", flat=True)) == osaka_ids


# --- A segment's page -------------------------------------------------------------------------


def test_segment_page_shows_rules_in_words_members_and_history(
    client_as, marketer, people, monkeypatch
):
    from segments.membership import create_segment

    rules = {
        "op": "and",
        "conditions": [
            {"field": "prefecture", "op": "in", "value": ["13", "27"]},
            {
                "op": "or",
                "conditions": [
                    {"field": "email_opt_in", "op": "is", "value": True},
                    {"field": "age", "op": "between", "value": [20, None]},
                ],
            },
        ],
    }
    segment = create_segment(
        name="関東関西", description="", kind=SegmentKind.DYNAMIC, rules=rules, created_by=marketer
    )
    monkeypatch.setattr(views, "MEMBERS_PAGE_SIZE", 2)
    client = client_as(marketer)
    html = client.get(f"/segments/{segment.pk}/", **EN).content.decode()
    assert "Prefecture is one of Tokyo, Osaka" in html
    assert "Any of:" in html
    assert "E-mail consent is yes" in html
    assert "Age: 20 or more" in html
    members = sorted(
        c.pk for c in Customer.objects.all() if c.prefecture in ("13", "27") and c.email_opt_in
    )
    assert segment.member_count == len(members) == 3
    first = [int(pk) for pk in re.findall(r'<td><a href="/customers/(\d+)/">', html)]
    assert first == members[:2]
    after = re.search(r'href="\?after=(\d+)" rel="next"', html).group(1)
    second_html = client.get(f"/segments/{segment.pk}/?after={after}", **EN).content.decode()
    second = [int(pk) for pk in re.findall(r'<td><a href="/customers/(\d+)/">', second_html)]
    assert second == members[2:]
    assert 'rel="next"' not in second_html
    history = re.search(r'class="table size-history">(.*?)</table>', html, re.S).group(1)
    assert '<td class="number">3</td>' in history


def test_segment_list_draws_the_size_trend(client_as, sales):
    segment = SegmentFactory(name="推移", member_count=12)
    for size in (10, 8, 12):
        SegmentSize.objects.create(segment=segment, size=size)
    html = client_as(sales).get(LIST, **EN).content.decode()
    row = re.search(rf'data-segment="{segment.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "<polyline" in row
    assert "Sizes at the last refreshes: 10, 8, 12" in row
    assert '<span class="trend-up">+4</span>' in row


def test_export_streams_the_members_safe_for_spreadsheets(client_as, sales):
    inside = CustomerFactory(family_name='=HYPERLINK("http://x")', given_name="太郎")
    CustomerFactory(family_name="外")
    segment = SegmentFactory(member_count=1)
    SegmentMember.objects.create(segment=segment, customer=inside)
    response = client_as(sales).get(f"/segments/{segment.pk}/export/", **EN)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["external ID", "family name", "given name"]
    assert [row[0] for row in rows[1:]] == [inside.external_id]
    assert rows[1][1] == '\'=HYPERLINK("http://x")'


def test_refresh_of_a_static_segment_is_refused(client_as, marketer):
    segment = SegmentFactory(kind=SegmentKind.STATIC)
    client = client_as(marketer)
    token = page_token(client, f"/segments/{segment.pk}/")
    response = client.post(
        f"/segments/{segment.pk}/refresh/", {"csrfmiddlewaretoken": token}, follow=True, **EN
    )
    assert "A static segment keeps the members it was saved with." in response.content.decode()
    segment.refresh_from_db()
    assert segment.refresh_requested_at is None


def test_delete_asks_first_then_deletes(client_as, marketer, people):
    segment = SegmentFactory(name="消す", member_count=1)
    SegmentMember.objects.create(segment=segment, customer=people[0])
    client = client_as(marketer)
    confirm = client.get(f"/segments/{segment.pk}/delete/", **EN)
    assert "Delete 消す?" in confirm.content.decode()
    response = client.post(
        f"/segments/{segment.pk}/delete/", {"csrfmiddlewaretoken": csrf_token(confirm)}, **EN
    )
    assert response.status_code == 302 and response["Location"] == LIST
    assert not Segment.objects.exists()
    assert Customer.objects.filter(pk=people[0].pk).exists()


@pytest.mark.django_db(transaction=True)
def test_refresh_now_re_takes_the_members_in_a_worker(client_as, marketer, celery_worker):
    from tests.conftest import wait_for

    segment = SegmentFactory(name="更新", rules=TOKYO_AND_CONSENT)  # no snapshot yet
    consenting(prefecture="13")
    CustomerFactory(prefecture="13")
    client = client_as(marketer)
    detail = f"/segments/{segment.pk}/"
    response = client.post(
        f"/segments/{segment.pk}/refresh/",
        {"csrfmiddlewaretoken": page_token(client, detail)},
        follow=True,
        **EN,
    )
    assert "The members are being refreshed" in response.content.decode()

    def refreshed():
        segment.refresh_from_db()
        return segment.refreshed_at is not None

    wait_for(refreshed)
    assert segment.member_count == len(expected_tokyo_and_consent()) == 1
    html = client.get(detail, **EN).content.decode()
    assert re.search(r'id="member-count">1<', html)


@pytest.mark.parametrize("scored", [True, False])
def test_live_preview_agrees_with_counting_each_breakdown_on_its_own(scored):
    """The preview's one grouped query gives what count_matching and breakdown() give."""
    from segments.evaluation import BREAKDOWNS, breakdown, count_matching
    from segments.preview import live_preview

    run = ScoringRunFactory() if scored else None
    for n, prefecture in enumerate(["13", "13", "27", "", "01", "13"]):
        customer = (
            consenting(prefecture=prefecture) if n % 2 else CustomerFactory(prefecture=prefecture)
        )
        if run and n < 4:
            CustomerScoreFactory(
                run=run, customer=customer, decile=n + 1, rfm_label=[*RfmLabel][n % 3]
            )
    rules = {"op": "or", "conditions": [{"field": "prefecture", "op": "not_in", "value": ["01"]}]}
    figures = live_preview(rules)
    assert figures["count"] == count_matching(rules) == 5
    for by in BREAKDOWNS:
        expected = [
            {"key": row["key"], "label": row["label"], "count": row["count"]}
            for row in breakdown(rules, by=by)
        ]
        assert figures["breakdowns"][by] == expected, by


def test_a_requested_refresh_shows_until_the_members_are_refreshed(client_as, marketer):
    # Without a worker (and inside the test's transaction) the task never runs: the page
    # keeps saying a refresh was asked for.
    segment = SegmentFactory(name="待ち")
    client = client_as(marketer)
    detail = f"/segments/{segment.pk}/"
    client.post(
        f"/segments/{segment.pk}/refresh/", {"csrfmiddlewaretoken": page_token(client, detail)}
    )
    segment.refresh_from_db()
    assert segment.refresh_requested_at is not None
    assert "Refresh requested" in client.get(detail, **EN).content.decode()
