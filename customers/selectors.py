"""The queries behind the sales pages: the customer list, the Customer 360 and the ticket queue.

The customer list must stay fast at a million customers, so it never counts the filtered
set: it pages by keyset on (created_at, id), which the ``customer_recent_idx`` index serves,
and fetches one row more than it shows to know whether there is a next page.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, F, Max, Min, Prefetch, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.roles import Role
from customers.models import (
    ConsentRecord,
    Customer,
    Interaction,
    Purchase,
    PurchaseItem,
    SourceChannel,
    SupportTicket,
    Tag,
    TicketStatus,
)
from customers.prefectures import Prefecture

CUSTOMER_PAGE_SIZE = 25
# The columns the list shows (and the search matches on), so rows stay narrow at 1M.
LIST_COLUMNS = (
    "id",
    "external_id",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "prefecture",
    "channel",
    "email_opt_in",
    "owner",
    "created_at",
    "erased_at",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def staff_users():
    """Users who can own customers and handle tickets: the Sales and Admin roles."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=[Role.SALES, Role.ADMIN])
        .distinct()
        .order_by("last_name", "first_name", "username")
    )


# --- Customer list ----------------------------------------------------------------------------


def customers_for_list(
    *,
    user,
    q: str = "",
    prefecture: str = "",
    channel: str = "",
    owner_id: int | None = None,
    unowned: bool = False,
    tag: str = "",
    consent: bool | None = None,
) -> QuerySet[Customer]:
    """The customers ``user`` may see that match the filters, newest first."""
    customers = Customer.objects.visible_to(user)
    if q:
        customers = customers.search(q)
    if prefecture:
        customers = customers.filter(prefecture=prefecture)
    if channel:
        customers = customers.filter(channel=channel)
    if unowned:
        customers = customers.filter(owner__isnull=True)
    elif owner_id is not None:
        customers = customers.filter(owner_id=owner_id)
    if tag:
        customers = with_tag(customers, tag)
    if consent is not None:
        customers = customers.filter(email_opt_in=consent)
    return customers.order_by(*newest_first(customers))


# The list's order, and the same order read from a tag's rows (see with_tag).
NEWEST_FIRST = ("-created_at", "-id")
_TAG_SIDE = {"created_at": "tag_created_at", "id": "tag_customer_id", "pk": "tag_customer_id"}


def is_tag_filtered(customers: QuerySet[Customer]) -> bool:
    return "tag_created_at" in customers.query.annotations


def newest_first(customers: QuerySet[Customer]) -> tuple[str, ...]:
    return tag_side_ordering(NEWEST_FIRST, customers)


def tag_side_ordering(ordering, customers: QuerySet[Customer]) -> tuple[str, ...]:
    """``ordering`` (on created_at and id) with its keys read from the tag's rows when
    ``customers`` went through with_tag; unchanged otherwise. Same rows, same order."""
    if not is_tag_filtered(customers):
        return tuple(ordering)
    return tuple(
        ("-" if key.startswith("-") else "") + _TAG_SIDE.get(key.lstrip("-"), key.lstrip("-"))
        for key in ordering
    )


def with_tag(customers: QuerySet[Customer], name: str) -> QuerySet[Customer]:
    """The customers of ``customers`` that carry the tag ``name``, with the tag row's copy of
    their created_at and id as ``tag_created_at`` and ``tag_customer_id``.

    Ordered newest first on the customer's own columns, PostgreSQL walks the customers'
    recency index and probes each one's tags, trusting the members to be spread evenly over
    time. They seldom are (VIPs and gift buyers are mostly old customers): at a million
    customers a page of a big tag took 150-330 ms. Ordered on the tag row's columns instead
    (tag_side_ordering: the same order, as the copy equals the customer's created_at), a page
    is a range scan of customer_tag_recent_idx (tag, created_at DESC, customer DESC) from the
    cursor on, each row joined by primary key and checked against the other filters: the
    planner's estimates stay right (the tag's member count, the filters' selectivity), so
    with a selective search it can still start from the search and sort. (Keeping the
    customer's columns in ORDER BY and joining on the copy too would also reach the index,
    but the planner counts that equality as a second join condition, expects one row and
    picks a hash join and a sort.) The tag is looked up first: a constant tag id lets the
    index give the order (a join on the name would not). The tag table has no parallel
    workers (migration 0009): split between workers, the walk overran the page tenfold.
    """
    tag_id = Tag.objects.filter(name=name).values_list("id", flat=True).first()
    if tag_id is None:
        return customers.none()
    # One filter() call and annotations (which reuse its join): the tag row of this tag.
    return customers.filter(customertag__tag_id=tag_id).annotate(
        tag_created_at=F("customertag__created_at"),
        tag_customer_id=F("customertag__customer_id"),
    )


def list_page_rows(customers: QuerySet[Customer]) -> QuerySet[Customer]:
    """Only what a list row shows, with the owner in the same query."""
    return customers.select_related("owner").only(
        *LIST_COLUMNS, "owner__username", "owner__first_name", "owner__last_name"
    )


def with_labels(customers: list[Customer]) -> list[Customer]:
    """Sets ``prefecture_label`` and ``channel_label`` on each row.

    Django's ``get_FOO_display()`` rebuilds the field's choices dict on every call, which
    hashes, and so translates, all 47 prefecture names per row: a third of the list's time.
    """
    prefectures = dict(Prefecture.choices)
    channels = dict(SourceChannel.choices)
    for customer in customers:
        customer.prefecture_label = prefectures.get(customer.prefecture, "")
        customer.channel_label = channels.get(customer.channel, "")
    return customers


EXPORT_CHUNK_SIZE = 2000


def export_rows(
    customers: QuerySet[Customer], *, chunk_size: int = EXPORT_CHUNK_SIZE
) -> Iterator[Customer]:
    """Every customer of ``customers``, newest (highest id) first, with the owner and a
    ``tag_names`` list, read ``chunk_size`` rows at a time: one query for the rows and one for
    their tags (into a plain list: a related manager per row costs more than the row).

    Chunks are keyset queries (``id < last``, LIMIT) rather than QuerySet.iterator()'s
    server-side cursor: PostgreSQL plans a cursor for its first rows (walking the newest-first
    index with the filter, JIT-compiled) and, outside a transaction, materialises the whole
    result before the first row; exporting 11,000 of a million customers took 8 s that way.
    Each keyset query is planned on its own and walks the primary key in the table's
    physical order. Rows added during the export (higher ids) are not included.
    """
    customers = (
        customers.select_related("owner")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("name"), to_attr="tag_list"))
        .order_by("-id")
    )
    last_id = None
    while True:
        chunk = customers if last_id is None else customers.filter(id__lt=last_id)
        rows = list(chunk[:chunk_size])
        for customer in rows:
            customer.tag_names = [tag.name for tag in customer.tag_list]
        yield from rows
        if len(rows) < chunk_size:
            return
        last_id = rows[-1].pk


@dataclass(frozen=True)
class Cursor:
    """A position in the (created_at, id) order, written in URLs as "<microseconds>.<id>"."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, customer: Customer) -> Cursor:
        return cls(customer.created_at, customer.pk)

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        micros, _dot, pk = (text or "").partition(".")
        try:
            return cls(_EPOCH + timedelta(microseconds=int(micros)), int(pk))
        except (ValueError, OverflowError):
            return None

    def __str__(self) -> str:
        return f"{(self.created_at - _EPOCH) // timedelta(microseconds=1)}.{self.id}"


@dataclass(frozen=True)
class KeysetPage:
    object_list: list
    next_cursor: Cursor | None
    previous_cursor: Cursor | None

    @property
    def has_other_pages(self) -> bool:
        return self.next_cursor is not None or self.previous_cursor is not None


def keyset_page(
    customers: QuerySet[Customer],
    *,
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = CUSTOMER_PAGE_SIZE,
) -> KeysetPage:
    """One page of ``customers`` (ordered newest first) after or before a cursor.

    The redundant ``created_at <=`` / ``>=`` bound lets the database start its index scan at
    the cursor instead of filtering its way there from the newest row. A tag-filtered list
    pages on the tag row's copies of the keys (see with_tag), which give the same order.
    """
    at, pk = (key.lstrip("-") for key in newest_first(customers))
    if before is not None:
        rows = list(
            customers.filter(
                Q(**{f"{at}__gt": before.created_at})
                | Q(**{at: before.created_at, f"{pk}__gt": before.id}),
                **{f"{at}__gte": before.created_at},
            ).order_by(at, pk)[: size + 1]
        )
        has_previous = len(rows) > size
        rows = rows[:size][::-1]
        return KeysetPage(
            rows,
            next_cursor=Cursor.of(rows[-1]) if rows else None,
            previous_cursor=Cursor.of(rows[0]) if rows and has_previous else None,
        )
    if after is not None:
        customers = customers.filter(
            Q(**{f"{at}__lt": after.created_at})
            | Q(**{at: after.created_at, f"{pk}__lt": after.id}),
            **{f"{at}__lte": after.created_at},
        )
    rows = list(customers[: size + 1])
    has_next = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        rows,
        next_cursor=Cursor.of(rows[-1]) if rows and has_next else None,
        # Coming from a later page, there is an earlier one (even if this page is empty).
        previous_cursor=(Cursor.of(rows[0]) if rows else after) if after is not None else None,
    )


# --- Customer 360 -----------------------------------------------------------------------------

TIMELINE_PAGE_SIZE = 20
RECENT_TICKETS = 10
RECENT_INTERACTIONS = 10


def customer_for_360(*, user) -> QuerySet[Customer]:
    """The customers ``user`` may open, with what the profile section shows."""
    return (
        Customer.objects.visible_to(user)
        .select_related("owner")
        .prefetch_related(
            "tags",
            Prefetch(
                "consent_records", queryset=ConsentRecord.objects.select_related("recorded_by")
            ),
        )
    )


@dataclass(frozen=True)
class PurchaseKpis:
    """What a customer has bought, counting completed purchases only."""

    lifetime_spend: Decimal
    purchase_count: int
    average_order_value: Decimal | None
    first_purchase_on: date | None
    last_purchase_on: date | None
    days_since_last_purchase: int | None


def _business_date(moment: datetime | None) -> date | None:
    # Calendar dates in the organisation's time zone (settings.TIME_ZONE), whatever the
    # viewer's own zone: a purchase at 00:30 JST on 3 May counts on 3 May for everyone.
    if moment is None:
        return None
    return moment.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()


def purchase_kpis(customer: Customer, *, now: datetime | None = None) -> PurchaseKpis:
    """Lifetime spend, number of purchases, AOV, first/last purchase date, in one query."""
    totals = (
        Purchase.objects.completed()
        .filter(customer=customer)
        .aggregate(
            spend=Sum("total"),
            count=Count("id"),
            first=Min("purchased_at"),
            last=Max("purchased_at"),
        )
    )
    spend = totals["spend"] or Decimal("0")
    count = totals["count"]
    last = _business_date(totals["last"])
    today = _business_date(now or timezone.now())
    return PurchaseKpis(
        lifetime_spend=spend,
        purchase_count=count,
        average_order_value=spend / count if count else None,
        first_purchase_on=_business_date(totals["first"]),
        last_purchase_on=last,
        days_since_last_purchase=(today - last).days if last else None,
    )


def purchase_timeline(customer: Customer) -> QuerySet[Purchase]:
    """Every purchase of ``customer`` (cancelled and refunded ones too, marked), newest
    first, with their items and products (two queries per page)."""
    return Purchase.objects.filter(customer=customer).prefetch_related(
        Prefetch(
            "items",
            queryset=PurchaseItem.objects.select_related("product").order_by("id"),
        )
    )


def first_rows(rows: QuerySet, count: int) -> tuple[list, bool]:
    """The first ``count`` rows and whether there are more (one query, no COUNT)."""
    fetched = list(rows[: count + 1])
    return fetched[:count], len(fetched) > count


def tickets_of(customer: Customer) -> QuerySet[SupportTicket]:
    return (
        SupportTicket.objects.filter(customer=customer)
        .select_related("assignee")
        .order_by("-opened_at", "-id")
    )


def interactions_of(customer: Customer) -> QuerySet[Interaction]:
    return Interaction.objects.filter(customer=customer).select_related("user")


# --- Ticket queue -----------------------------------------------------------------------------

TICKET_PAGE_SIZE = 25


@dataclass(frozen=True)
class TicketTab:
    key: str
    label: str
    help: str


TICKET_TABS = (
    TicketTab("mine", _("Mine"), _("Open and pending tickets assigned to you.")),
    TicketTab("unassigned", _("Unassigned"), _("Open and pending tickets nobody has taken.")),
    TicketTab("open", _("Open"), _("Every open or pending ticket.")),
    TicketTab("overdue", _("Overdue"), _("Open or pending tickets past their response time.")),
    TicketTab("all", _("All"), _("Every ticket, newest first.")),
)
TICKET_TAB_KEYS = tuple(tab.key for tab in TICKET_TABS)


def ticket_queue(*, user, tab: str, customer_id: int | None = None) -> QuerySet[SupportTicket]:
    """The tickets of one queue tab; the active queues soonest due first."""
    tickets = SupportTicket.objects.visible_to(user).select_related("customer", "assignee")
    if customer_id is not None:
        tickets = tickets.filter(customer_id=customer_id)
    if tab == "all":
        return tickets.order_by("-opened_at", "-id")
    if tab == "mine":
        tickets = tickets.active().filter(assignee=user)
    elif tab == "unassigned":
        tickets = tickets.active().filter(assignee__isnull=True)
    elif tab == "overdue":
        tickets = tickets.overdue()
    else:
        tickets = tickets.active()
    return tickets.order_by("due_at", "id")


def ticket_tab_counts(*, user, customer_id: int | None = None) -> dict[str, int]:
    """How many tickets each tab holds, in one query."""
    tickets = SupportTicket.objects.visible_to(user)
    if customer_id is not None:
        tickets = tickets.filter(customer_id=customer_id)
    active = Q(status__in=(TicketStatus.OPEN, TicketStatus.PENDING))
    return tickets.aggregate(
        mine=Count("id", filter=active & Q(assignee=user)),
        unassigned=Count("id", filter=active & Q(assignee__isnull=True)),
        open=Count("id", filter=active),
        overdue=Count("id", filter=active & Q(due_at__lt=timezone.now())),
        all=Count("id"),
    )


def ticket_for_detail(*, user) -> QuerySet[SupportTicket]:
    return SupportTicket.objects.visible_to(user).select_related("customer", "assignee")
