"""Every route checks access: anonymous visitors are turned away everywhere except the
explicit allowlist, and each role sees exactly what it may."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from crm.access import PUBLIC_URL_NAMES
from crm.navigation import MAIN_MENU
from tests.factories import OutboxEmailFactory


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _concrete_path(route: str) -> str:
    """A request path for a route pattern: path converters and regex groups get sample values."""
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
    path = re.sub(r"<(?:int:)?(\w+)>", "1", path)
    path = re.sub(r"<(?:str|slug|uuid|path):(\w+)>", "x", path)
    path = path.replace("^", "").replace("$", "").replace("\\", "").replace("/?", "/")
    return "/" + path.lstrip("/")


def _our_routes():
    """(path, name) of every route of ours; Django's admin checks its own staff access."""
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("admin/"):
            continue
        yield _concrete_path(route), pattern.name


ROUTES = sorted(set(_our_routes()))


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "name"), ROUTES, ids=[p for p, _ in ROUTES])
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_is_turned_away_except_allowlist(csrf_client, path, name, method):
    response = getattr(csrf_client, method)(path)
    if name == "healthz":
        return  # answers 200 or 503 (no worker here) by design; tested in test_health
    assert response.status_code < 500
    if name in PUBLIC_URL_NAMES:
        return
    if path.startswith("/api/"):
        assert response.status_code in (401, 403), response.content
        assert response.json()["type"] == "client_error"
    elif method == "post" and response.status_code == 403:
        pass  # CSRF refuses the anonymous POST before the view runs: also a refusal
    else:
        assert response.status_code in (302, 405), (path, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith("/accounts/login/")


def test_allowlist_names_exist():
    names = {name for _, name in ROUTES}
    assert names >= PUBLIC_URL_NAMES


@pytest.mark.django_db
def test_sales_cannot_open_the_outbox_page_or_api(client_as, sales):
    client = client_as(sales)
    assert client.get("/outbox/").status_code == 403
    response = client.get("/api/v1/outbox/")
    assert response.status_code == 403
    assert response.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "permission_denied",
                "detail": response.json()["errors"][0]["detail"],
                "attr": None,
            }
        ],
    }


@pytest.mark.django_db
def test_403_page_is_the_friendly_one(client_as, sales):
    response = client_as(sales).get("/outbox/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403
    assert b"Your role does not give you access" in response.content


@pytest.mark.django_db
def test_marketer_reads_the_outbox(client_as, marketer):
    email = OutboxEmailFactory(subject="ご案内")
    client = client_as(marketer)
    assert "ご案内" in client.get("/outbox/").content.decode()
    assert client.get(f"/outbox/{email.pk}/").status_code == 200
    assert client.get("/api/v1/outbox/").json()["results"][0]["subject"] == "ご案内"


@pytest.mark.django_db
def test_outbox_api_is_read_only_even_for_admins(client, admin_member):
    email = OutboxEmailFactory()
    token = Token.objects.create(user=admin_member)
    response = client.delete(f"/api/v1/outbox/{email.pk}/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_session_authenticated_api_writes_need_csrf(client_as, admin_member):
    response = client_as(admin_member).post("/api/v1/outbox/", {})
    assert response.status_code == 403
    assert "CSRF" in response.json()["errors"][0]["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role_fixture", "visible", "hidden"),
    [
        (
            "admin_member",
            {
                "Home",
                "Customers",
                "Tickets",
                "Imports",
                "Data quality",
                "Segments",
                "Scores",
                "Analytics",
                "Outbox",
                "Administration",
            },
            set(),
        ),
        (
            "marketer",
            {
                "Home",
                "Customers",
                "Tickets",
                "Data quality",
                "Segments",
                "Scores",
                "Analytics",
                "Outbox",
                "API",
            },
            {"Imports", "Administration"},
        ),
        (
            "sales",
            {
                "Home",
                "Customers",
                "Tickets",
                "Imports",
                "Data quality",
                "Segments",
                "Scores",
                "Analytics",
                "API",
            },
            {"Outbox", "Administration"},
        ),
    ],
)
def test_navigation_follows_the_role(request, client_as, role_fixture, visible, hidden):
    user = request.getfixturevalue(role_fixture)
    html = client_as(user).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    nav = html[html.index('id="main-nav"') : html.index("</nav>")]
    for label in visible:
        assert f">{label}</a>" in nav
    for label in hidden:
        assert f">{label}</a>" not in nav


def test_every_menu_entry_is_a_route():
    for item in MAIN_MENU:
        assert reverse(item.url_name)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role_fixture", "manages"), [("admin_member", True), ("marketer", True), ("sales", False)]
)
def test_goal_pages_and_api_follow_the_role(request, client_as, role_fixture, manages):
    client = client_as(request.getfixturevalue(role_fixture))
    assert client.get("/analytics/goals/").status_code == 200
    assert client.get("/api/v1/analytics/goals/").status_code == 200
    assert client.get("/analytics/goals/new/").status_code == (200 if manages else 403)
    assert client.get("/analytics/goals/1/edit/").status_code == (404 if manages else 403)
    assert client.get("/analytics/goals/1/delete/").status_code == (404 if manages else 403)


@pytest.mark.django_db
@pytest.mark.parametrize("role_fixture", ["admin_member", "marketer", "sales"])
def test_breakdowns_api_and_csv_follow_the_dashboard_permission(request, client_as, role_fixture):
    client = client_as(request.getfixturevalue(role_fixture))
    period = "start=2026-05-01&end=2026-05-31"
    for path in (
        f"/api/v1/analytics/timing/?{period}",
        f"/api/v1/analytics/revenue-by/?{period}&dimension=channel",
        f"/api/v1/analytics/top-customers/?{period}",
        "/analytics/csv/breakdowns/revenue_category/",
    ):
        assert client.get(path).status_code == 200, path


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role_fixture", "manages"), [("admin_member", True), ("marketer", True), ("sales", False)]
)
def test_campaign_plan_pages_follow_the_role(request, client_as, role_fixture, manages):
    from campaigns.models import CampaignKind
    from tests.campaigns.factories import CampaignFactory, VariantFactory

    campaign = VariantFactory().campaign
    automation = CampaignFactory(kind=CampaignKind.AUTOMATION, segment=None)
    client = client_as(request.getfixturevalue(role_fixture))
    client.get("/")
    token = client.cookies["csrftoken"].value  # so that a 403 is the role's, not CSRF's
    reads = [f"/campaigns/{campaign.pk}/", f"/campaigns/{campaign.pk}/progress/"]
    reads += [f"/campaigns/{automation.pk}/", "/campaigns/automations/"]
    for path in reads:
        assert client.get(path).status_code == 200, path
    pages = ["/campaigns/new/", f"/campaigns/{campaign.pk}/edit/"]
    pages += [f"/campaigns/{campaign.pk}/preview/", "/campaigns/automations/new/"]
    pages += [f"/campaigns/automations/{automation.pk}/edit/"]
    for path in pages:
        assert client.get(path).status_code == (200 if manages else 403), path
    actions = ["schedule", "send-now", "pause", "resume", "cancel", "test-send"]
    posts = [f"/campaigns/{campaign.pk}/{action}/" for action in actions]
    posts += [f"/campaigns/automations/{automation.pk}/{a}/" for a in ("activate", "pause")]
    for path in posts:
        status = client.post(path, {"csrfmiddlewaretoken": token}).status_code
        assert status in ((302, 400) if manages else (403,)), path


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role_fixture", "manages"), [("admin_member", True), ("marketer", True), ("sales", False)]
)
def test_campaign_review_pages_follow_the_role(request, client_as, role_fixture, manages):
    from campaigns.models import CampaignStatus
    from tests.campaigns.factories import CampaignFactory, VariantFactory

    campaign = CampaignFactory(status=CampaignStatus.SENT)
    VariantFactory(campaign=campaign)
    client = client_as(request.getfixturevalue(role_fixture))
    for path in ("/campaigns/", f"/campaigns/{campaign.pk}/review/"):
        assert client.get(path).status_code == 200, path
    assert client.get(f"/campaigns/{campaign.pk}/review/csv/").status_code == 200
    assert "Campaigns</a>" in client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    token = client.cookies["csrftoken"].value
    for action in ("notes", "send-winner", "resend-non-openers", "duplicate"):
        response = client.post(
            f"/campaigns/{campaign.pk}/{action}/", {"csrfmiddlewaretoken": token}
        )
        # Managers are redirected (or 404 for a variant that is not there); sales get 403.
        assert (response.status_code in (302, 404)) is manages, (action, response.status_code)
        assert (response.status_code == 403) is not manages, action


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role_fixture", "manages", "is_admin"),
    [("admin_member", True, True), ("marketer", True, False), ("sales", False, False)],
)
def test_campaigns_api_follows_the_role(request, client, role_fixture, manages, is_admin):
    token = Token.objects.create(user=request.getfixturevalue(role_fixture)).key
    auth = {"HTTP_AUTHORIZATION": f"Token {token}", "content_type": "application/json"}
    api = "/api/v1/"
    for path in ("campaigns/", "automations/", "messages/", "events/", "suppressions/"):
        assert client.get(api + path, **auth).status_code == 200, path
    for path in ("campaigns/1/", "campaigns/1/stats/", "automations/1/stats/", "messages/1/"):
        assert client.get(api + path, **auth).status_code == 404, path
    # Writes: marketers and admins (400: the empty body; 404: no campaign 1), not sales.
    for path in ("campaigns/", "automations/", "suppressions/"):
        assert client.post(api + path, {}, **auth).status_code == (400 if manages else 403), path
    writes = [
        f"campaigns/1/{act}/" for act in ("schedule", "send-now", "pause", "resume", "cancel")
    ]
    writes += ["automations/1/activate/", "automations/1/pause/"]
    for path in writes:
        assert client.post(api + path, {}, **auth).status_code == (404 if manages else 403), path
    for path in ("campaigns/1/", "automations/1/"):
        assert client.patch(api + path, {}, **auth).status_code == (404 if manages else 403), path
        assert client.delete(api + path, **auth).status_code == (404 if manages else 403), path
    # Taking an address off the suppression list is for admins only.
    removal = client.delete(api + "suppressions/1/", **auth)
    assert removal.status_code == (404 if is_admin else 403)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role_fixture", "manages"), [("admin_member", True), ("marketer", True), ("sales", False)]
)
def test_trigger_count_follows_the_role(request, client_as, role_fixture, manages):
    client = client_as(request.getfixturevalue(role_fixture))
    query = {"trigger-kind": "birthday", "trigger-days": "7", "trigger-send_hour": "10"}
    response = client.get("/campaigns/automations/trigger-count/", query)
    assert response.status_code == (200 if manages else 403)
    if manages:
        assert response.json()["count"] == 0
