"""The ticket queue and the ticket workflow as sales staff use them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.roles import Role
from customers.models import (
    TICKET_RESPONSE_TIME,
    SupportTicket,
    TicketPriority,
    TicketReply,
    TicketStatus,
)
from customers.ticketing import TransitionNotAllowed, change_ticket_status
from tests.crm.test_auth import csrf_token, post_form
from tests.customers.factories import CustomerFactory, SupportTicketFactory, TicketReplyFactory

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def subjects_in(html: str) -> list[str]:
    return re.findall(r'<a href="/tickets/\d+/">([^<]+)</a>', html)


def get_html(client, url: str) -> str:
    response = client.get(url, **EN)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def post_on_ticket(client, ticket, action: str, data: dict):
    """A button or form of the ticket page: the token comes from that page."""
    token = csrf_token(client.get(f"/tickets/{ticket.pk}/"))
    return client.post(
        f"/tickets/{ticket.pk}/{action}/", {**data, "csrfmiddlewaretoken": token}, **EN
    )


@pytest.fixture
def queue(sales, make_user):
    """One ticket per situation, opened at different times."""
    colleague = make_user(Role.SALES, username="colleague")
    now = timezone.now()

    def ticket(subject, hours_ago, **fields):
        return SupportTicketFactory(
            subject=subject, opened_at=now - timedelta(hours=hours_ago), **fields
        )

    return {
        "mine": ticket("自分の担当", 1, assignee=sales),
        "mine_pending": ticket("自分の保留", 2, assignee=sales, status=TicketStatus.PENDING),
        "mine_resolved": ticket("自分の解決済み", 3, assignee=sales, status=TicketStatus.RESOLVED),
        "colleague": ticket("同僚の担当", 4, assignee=colleague),
        "unassigned": ticket("未割り当て", 5),
        # An urgent ticket must be answered within 4 hours: this one is late.
        "overdue": ticket("至急・期限切れ", 10, priority=TicketPriority.URGENT),
        "closed": ticket("完了", 200, status=TicketStatus.CLOSED),
    }


@pytest.mark.parametrize(
    ("tab", "expected"),
    [
        ("mine", ["自分の保留", "自分の担当"]),
        ("unassigned", ["至急・期限切れ", "未割り当て"]),
        ("open", ["至急・期限切れ", "未割り当て", "同僚の担当", "自分の保留", "自分の担当"]),
        ("overdue", ["至急・期限切れ"]),
        (
            "all",
            [
                "自分の担当",
                "自分の保留",
                "自分の解決済み",
                "同僚の担当",
                "未割り当て",
                "至急・期限切れ",
                "完了",
            ],
        ),
    ],
)
def test_queue_tabs(client_as, sales, queue, tab, expected):
    html = get_html(client_as(sales), f"/tickets/?tab={tab}")
    # Active queues: soonest due first; "all": newest first.
    assert subjects_in(html) == expected
    counts = dict(
        re.findall(r'tab=(\w+)"[^>]*>[^<]+<span class="tab-count[^"]*">(\d+)</span>', html)
    )
    assert counts == {"mine": "2", "unassigned": "2", "open": "5", "overdue": "1", "all": "7"}


def test_the_default_tab_is_mine(client_as, sales, queue):
    assert subjects_in(get_html(client_as(sales), "/tickets/")) == ["自分の保留", "自分の担当"]


def test_overdue_tickets_carry_a_badge(client_as, sales, queue):
    html = get_html(client_as(sales), "/tickets/?tab=open")
    row = html[html.index("至急・期限切れ") :]
    row = row[: row.index("</tr>")]
    assert "Overdue" in row
    assert html.count("badge badge-overdue") == 1


def test_queue_of_one_customer(client_as, sales):
    customer = CustomerFactory()
    SupportTicketFactory(customer=customer, subject="この顧客の件")
    SupportTicketFactory(subject="別の顧客の件")
    html = get_html(client_as(sales), f"/tickets/?tab=all&customer={customer.pk}")
    assert subjects_in(html) == ["この顧客の件"]
    assert customer.display_name in html


def test_empty_queue_says_so(client_as, sales):
    html = get_html(client_as(sales), "/tickets/?tab=overdue")
    assert "Nothing is overdue" in html


def test_detail_shows_the_thread_with_internal_notes(client_as, sales):
    ticket = SupportTicketFactory(subject="届かない", body="まだ届きません")
    TicketReplyFactory(ticket=ticket, body="確認します", author=sales)
    TicketReplyFactory(ticket=ticket, body="倉庫に確認中", internal=True, author=sales)
    html = get_html(client_as(sales), f"/tickets/{ticket.pk}/")
    thread = html[html.index('id="thread"') :]
    assert "まだ届きません" in html
    assert thread.index("確認します") < thread.index("倉庫に確認中")
    assert thread.count("Internal note") >= 1
    assert "timeline-internal" in thread


@pytest.mark.parametrize("internal", [False, True])
def test_reply_and_internal_note(client_as, sales, internal):
    ticket = SupportTicketFactory()
    client = client_as(sales)
    data = {"body": "明日発送します"} | ({"internal": "on"} if internal else {})
    response = post_on_ticket(client, ticket, "reply", data)
    assert response.status_code == 302
    reply = TicketReply.objects.get()
    assert (reply.body, reply.internal, reply.author) == ("明日発送します", internal, sales)
    message = "The internal note was added." if internal else "The reply was added."
    assert message in get_html(client, f"/tickets/{ticket.pk}/")


def test_empty_reply_is_a_form_error(client_as, sales):
    ticket = SupportTicketFactory()
    response = post_on_ticket(client_as(sales), ticket, "reply", {"body": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not TicketReply.objects.exists()


def status_buttons(html: str) -> list[str]:
    return re.findall(r'name="status" value="(\w+)"', html)


def test_status_workflow_through_the_buttons(client_as, sales):
    ticket = SupportTicketFactory(priority=TicketPriority.HIGH)
    client = client_as(sales)
    assert status_buttons(get_html(client, f"/tickets/{ticket.pk}/")) == ["pending", "resolved"]

    post_on_ticket(client, ticket, "status", {"status": "pending"})
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.PENDING
    assert status_buttons(get_html(client, f"/tickets/{ticket.pk}/")) == ["open", "resolved"]

    post_on_ticket(client, ticket, "status", {"status": "resolved"})
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.RESOLVED
    resolved_at = ticket.resolved_at
    assert resolved_at is not None

    post_on_ticket(client, ticket, "status", {"status": "closed"})
    ticket.refresh_from_db()
    assert (ticket.status, ticket.resolved_at) == (TicketStatus.CLOSED, resolved_at)
    assert status_buttons(get_html(client, f"/tickets/{ticket.pk}/")) == ["open"]

    before = timezone.now()
    post_on_ticket(client, ticket, "status", {"status": "open"})
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN
    assert ticket.resolved_at is None
    # Reopened: a fresh deadline, not overdue since the first one.
    assert ticket.due_at >= before + TICKET_RESPONSE_TIME[TicketPriority.HIGH]
    assert not ticket.is_overdue
    assert "The ticket is now Open." in get_html(client, f"/tickets/{ticket.pk}/")
    users = {entry.history_user for entry in ticket.history.all() if entry.history_type == "~"}
    assert users == {sales}


def test_a_transition_the_workflow_forbids_is_refused(client_as, sales):
    ticket = SupportTicketFactory()
    client = client_as(sales)
    response = post_on_ticket(client, ticket, "status", {"status": "closed"})
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN
    assert "A ticket that is Open cannot become Closed." in get_html(
        client, f"/tickets/{ticket.pk}/"
    )


def test_an_unknown_status_is_refused(client_as, sales):
    ticket = SupportTicketFactory()
    client = client_as(sales)
    post_on_ticket(client, ticket, "status", {"status": "deleted"})
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN
    assert "Choose a status." in get_html(client, f"/tickets/{ticket.pk}/")


def test_service_checks_the_status_in_the_database(sales):
    ticket = SupportTicketFactory()
    stale = SupportTicket.objects.get(pk=ticket.pk)
    change_ticket_status(ticket=ticket, status=TicketStatus.RESOLVED, by=sales)
    change_ticket_status(ticket=ticket, status=TicketStatus.CLOSED, by=sales)
    # Someone still looking at the open ticket cannot mark it pending any more.
    with pytest.raises(TransitionNotAllowed):
        change_ticket_status(ticket=stale, status=TicketStatus.PENDING, by=sales)


def test_assign_to_me_and_to_a_colleague(client_as, sales, make_user):
    colleague = make_user(Role.SALES, username="colleague")
    ticket = SupportTicketFactory()
    client = client_as(sales)
    post_on_ticket(client, ticket, "assign", {"to_me": "1"})
    ticket.refresh_from_db()
    assert ticket.assignee == sales
    assert subjects_in(get_html(client, "/tickets/?tab=mine")) == [ticket.subject]

    post_on_ticket(client, ticket, "assign", {"assignee": str(colleague.pk)})
    ticket.refresh_from_db()
    assert ticket.assignee == colleague
    html = get_html(client, f"/tickets/{ticket.pk}/")
    assert f"The ticket is assigned to {colleague.last_name} {colleague.first_name}." in html

    post_on_ticket(client, ticket, "assign", {"assignee": ""})
    ticket.refresh_from_db()
    assert ticket.assignee is None
    assert subjects_in(get_html(client, "/tickets/?tab=unassigned")) == [ticket.subject]


def test_only_sales_and_admins_can_be_assigned(client_as, sales, marketer):
    ticket = SupportTicketFactory()
    response = post_on_ticket(client_as(sales), ticket, "assign", {"assignee": str(marketer.pk)})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.assignee is None


def test_open_a_ticket_from_the_customer_page(client_as, sales):
    customer = CustomerFactory(family_name="山田", given_name="太郎")
    client = client_as(sales)
    url = f"/tickets/new/?customer={customer.pk}"
    assert "New ticket for 山田 太郎" in get_html(client, url)
    before = timezone.now()
    response = post_form(
        client,
        url,
        {
            "customer": str(customer.pk),
            "subject": "ギフト包装の依頼",
            "body": "のし紙をお願いしたい",
            "channel": "phone",
            "priority": "high",
            "assignee": "",
            "due_at": "",
        },
        **EN,
    )
    ticket = SupportTicket.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/tickets/{ticket.pk}/"
    assert (ticket.customer, ticket.subject, ticket.channel) == (
        customer,
        "ギフト包装の依頼",
        "phone",
    )
    assert ticket.status == TicketStatus.OPEN
    assert ticket.due_at >= before + TICKET_RESPONSE_TIME[TicketPriority.HIGH]
    assert ticket.history.get().history_user == sales
    assert "ギフト包装の依頼" in get_html(client, f"/customers/{customer.pk}/")


def test_new_ticket_without_a_customer_points_to_the_list(client_as, sales):
    html = get_html(client_as(sales), "/tickets/new/")
    assert "Choose the customer first" in html
    assert 'href="/customers/"' in html


def test_new_ticket_for_an_unknown_customer_is_a_form_error(client_as, sales):
    client = client_as(sales)
    response = post_form(
        client,
        "/tickets/new/",
        {"customer": "999999", "subject": "x", "channel": "email", "priority": "normal"},
        **EN,
    )
    assert response.status_code == 200
    assert "This customer does not exist or you cannot see it." in response.content.decode()
    assert not SupportTicket.objects.exists()


def test_marketers_read_tickets_but_cannot_change_them(client_as, marketer):
    ticket = SupportTicketFactory()
    client = client_as(marketer)
    html = get_html(client, f"/tickets/{ticket.pk}/")
    assert status_buttons(html) == []
    assert "Add to the thread" not in html
    assert get_html(client, "/tickets/?tab=all")
    assert client.get(f"/tickets/new/?customer={ticket.customer_id}").status_code == 403
    for action, data in (
        ("status", {"status": "resolved"}),
        ("assign", {"to_me": "1"}),
        ("reply", {"body": "x"}),
    ):
        assert post_on_ticket(client, ticket, action, data).status_code == 403
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assignee) == (TicketStatus.OPEN, None)
    assert not TicketReply.objects.exists()


def test_workflow_actions_need_post(client_as, sales):
    ticket = SupportTicketFactory()
    assert client_as(sales).get(f"/tickets/{ticket.pk}/status/").status_code == 405
