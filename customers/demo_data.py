"""Realistic demo and benchmark data for a Japanese e-commerce / subscription business.

``seed_demo_data`` generates customers (names with their readings, addresses, phones, consent
with its legal record, owners, gaps in the profiles, a few probable duplicates), a product
catalogue, purchases with their items, support tickets with replies, and interactions.

The shape follows what the CRM is meant to reveal: most customers buy once, a long tail buys
again and again, spend per order is lognormal per customer, so about a fifth of the customers
bring three quarters of the revenue; December and July (お歳暮 / お中元) are busy, February is
quiet; orders come at lunch and in the evening, hardly at night (Asia/Tokyo).

Generation is vectorised with numpy, one chunk of customers at a time (bounded memory), from a
random generator seeded by (seed, first id, chunk number): the same seed on the same database
state gives the same data. Rows are written with PostgreSQL COPY (the named fast path,
``_PostgresCopyWriter``) or with ``bulk_create`` on other databases (``_OrmWriter``).
"""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone

from crm.roles import Role
from customers import demo_names as names
from customers.models import (
    TICKET_RESPONSE_TIME,
    ConsentRecord,
    Customer,
    Interaction,
    Product,
    Purchase,
    PurchaseItem,
    SupportTicket,
    Tag,
    TicketPriority,
    TicketReply,
)
from customers.normalize import search_key
from customers.prefectures import POPULATION_THOUSANDS

ExistingData = Literal["refuse", "append", "flush"]

# Bump when the same options start generating different data: stored benchmark datasets
# (tests/bench/dataset.py) record it and are regenerated.
GENERATOR_VERSION = 1

# Customers per generated chunk: bounds memory (about 10 purchases and 20 items each at the
# default mean) and is part of the seed, so it must not change with the database.
CHUNK_CUSTOMERS = 20_000
SKU_PREFIX = "DEMO-"
EXTERNAL_ID_PREFIX = "DM"
ORDER_ID_PREFIX = "DO"
JST_OFFSET = np.timedelta64(9, "h")

# Months: gift seasons (お中元 in July, お歳暮 and Christmas in December) are busy, February
# is the quietest month; weekends sell a little more than weekdays (Monday first).
MONTH_FACTOR = np.array([1.05, 0.72, 0.95, 0.92, 0.96, 1.0, 1.3, 1.0, 0.9, 0.95, 1.1, 1.5])
WEEKDAY_FACTOR = np.array([1.0, 0.97, 0.96, 0.97, 1.0, 1.12, 1.18])
# Hour of day (JST) of online orders: a lunch peak and an evening peak from 20:00 to 23:00 on
# weekdays; on weekends a broad daytime plateau. Few orders between 02:00 and 06:00.
HOUR_WEIGHTS_WEEKDAY = np.array(
    [3.0, 1.6, 0.8, 0.4, 0.3, 0.5, 1.2, 2.4, 3.0, 3.4, 3.8, 4.4,
     6.8, 5.6, 3.9, 3.8, 3.8, 3.9, 4.4, 5.4, 7.4, 8.4, 7.9, 5.6]
)  # fmt: skip
HOUR_WEIGHTS_WEEKEND = np.array(
    [3.4, 2.0, 1.0, 0.5, 0.3, 0.4, 0.8, 1.6, 2.8, 4.2, 5.2, 5.8,
     6.2, 6.0, 5.6, 5.4, 5.2, 5.0, 5.0, 5.6, 6.8, 7.6, 7.0, 5.2]
)  # fmt: skip
# Buyers who never order again, and the spread (sigma of the log) of spend per order between
# customers, by mean purchases per customer: the counts spread out as the mean grows, so the
# spend spread narrows to keep the top 20% of customers at about 75-80% of the revenue.
MEAN_POINTS = [2, 3, 6, 10, 15]
ONE_TIME_SHARE = [0.55, 0.55, 0.45, 0.35, 0.3]
SPEND_SIGMA = [1.6, 1.35, 0.95, 0.8, 0.6]
NEW_CUSTOMER_GROWTH = 2.5  # the shop wins 2.5 times as many new customers now as at the start

GENDERS = np.array(["female", "male", "other", "unknown", ""], dtype=object)
GENDER_P = [0.53, 0.41, 0.01, 0.02, 0.03]
# Source channel, and the share of its customers who never bought (leads).
SOURCE_CHANNELS = np.array(
    ["ecommerce", "membership", "store", "line", "newsletter", "event", "web_survey",
     "business_card", "whitepaper", "other", ""], dtype=object,
)  # fmt: skip
SOURCE_P = [0.40, 0.10, 0.11, 0.11, 0.08, 0.05, 0.04, 0.03, 0.02, 0.03, 0.03]
LEAD_SHARE = np.array([0.02, 0.05, 0.03, 0.15, 0.35, 0.45, 0.4, 0.55, 0.6, 0.2, 0.1])
# Which consent source each source channel uses (index as SOURCE_CHANNELS).
CONSENT_SOURCE = np.array(
    ["checkout", "web_form", "paper", "api", "web_form", "event", "web_form",
     "event", "web_form", "import", "import"], dtype=object,
)  # fmt: skip
PURCHASE_CHANNELS = np.array(["ecommerce", "store", "phone", "other", "subscription"], dtype=object)
STATUSES = np.array(["completed", "cancelled", "refunded"], dtype=object)
INTERACTION_KINDS = np.array(["call", "email", "note", "visit", "meeting"], dtype=object)
INTERACTION_P = [0.4, 0.2, 0.2, 0.1, 0.1]


class DemoDataError(Exception):
    """The demo data cannot be written as asked (e.g. the database already has customers)."""


@dataclass(frozen=True)
class DemoSummary:
    customers: int
    purchases: int
    items: int
    tickets: int
    replies: int
    interactions: int
    consent_records: int
    seconds: float


@transaction.atomic
def seed_demo_data(
    *,
    customers: int,
    seed: int = 42,
    purchases_per_customer: float = 10.0,
    years: int = 3,
    end: date | None = None,
    existing: ExistingData = "refuse",
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Generate ``customers`` demo customers with their purchases, tickets and interactions.

    ``end`` is the last day with purchases (default: yesterday in the configured time zone);
    history starts ``years`` before it. If the database already holds customers, ``existing``
    decides: "refuse" (raise DemoDataError), "append" (add new customers after them) or "flush"
    (delete the customers app's data first, see ``flush_customer_data``). All or nothing: one
    transaction.
    """
    if customers < 1:
        raise DemoDataError("The number of customers must be at least 1.")
    if purchases_per_customer <= 0:
        raise DemoDataError("The mean number of purchases per customer must be positive.")
    if years < 1:
        raise DemoDataError("The history must span at least one year.")
    started = time.perf_counter()
    if Customer.objects.exists():
        if existing == "refuse":
            raise DemoDataError(
                "The database already has customers: append to them or flush them first."
            )
        if existing == "flush":
            flush_customer_data()
    end = end or timezone.localdate() - timedelta(days=1)
    plan = _make_plan(
        seed=seed,
        mean=purchases_per_customer,
        years=years,
        end=end,
        catalogue=_ensure_catalogue(),
        tag_ids=_ensure_tags(),
        sales_user_ids=list(
            get_user_model()
            .objects.filter(groups__name=Role.SALES.value, is_active=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        ),
    )
    next_ids = {model: _max_id(model) + 1 for model in (Customer, Purchase, SupportTicket)}
    first_customer_id = next_ids[Customer]
    totals = dict.fromkeys(
        ("customers", "purchases", "items", "tickets", "replies", "interactions", "consents"), 0
    )
    writer = _PostgresCopyWriter() if connection.vendor == "postgresql" else _OrmWriter()
    writer.begin()
    try:
        for number, offset in enumerate(range(0, customers, CHUNK_CUSTOMERS)):
            rng = np.random.default_rng([seed, first_customer_id, number])
            chunk = _generate_chunk(
                plan,
                rng,
                n=min(CHUNK_CUSTOMERS, customers - offset),
                customer_id=next_ids[Customer],
                purchase_id=next_ids[Purchase],
                ticket_id=next_ids[SupportTicket],
            )
            for table in chunk.tables:
                writer.write(table)
            for key, count in chunk.counts.items():
                totals[key] += count
            next_ids[Customer] += chunk.counts["customers"]
            next_ids[Purchase] += chunk.counts["purchases"]
            next_ids[SupportTicket] += chunk.counts["tickets"]
            if progress:
                progress(
                    f"{totals['customers']:,}/{customers:,} customers, "
                    f"{totals['purchases']:,} purchases, {time.perf_counter() - started:.1f} s"
                )
        writer.finish(progress)
    finally:
        writer.close()
    return DemoSummary(
        customers=totals["customers"],
        purchases=totals["purchases"],
        items=totals["items"],
        tickets=totals["tickets"],
        replies=totals["replies"],
        interactions=totals["interactions"],
        consent_records=totals["consents"],
        seconds=time.perf_counter() - started,
    )


def flushed_models() -> list[type[models.Model]]:
    """The models ``flush_customer_data`` empties, in a safe order (referencing ones first):
    every model of the customers app and any model elsewhere that refers to one of them
    (rows pointing at deleted customers cannot stay)."""
    chosen = set(apps.get_app_config("customers").get_models(include_auto_created=True))
    everything = apps.get_models(include_auto_created=True)
    grew = True
    while grew:
        grew = False
        for model in everything:
            if model not in chosen and _references(model) & chosen:
                chosen.add(model)
                grew = True
    ordered: list[type[models.Model]] = []
    remaining = set(chosen)
    while remaining:
        free = sorted(
            (m for m in remaining if not any(m in _references(o) for o in remaining if o != m)),
            key=lambda m: m._meta.db_table,
        )
        if not free:  # a cycle: break it deterministically (PostgreSQL truncates together)
            free = [min(remaining, key=lambda m: m._meta.db_table)]
        ordered.extend(free)
        remaining.difference_update(free)
    return ordered


@transaction.atomic
def flush_customer_data() -> list[str]:
    """Delete every row of the customers app (customers, purchases, tickets, products, tags,
    consent records, imports, history) and of any table referring to them; other apps' data
    and the users stay. Returns the emptied tables."""
    tables = [m._meta.db_table for m in flushed_models()]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One TRUNCATE: instant at any size, and ids start from 1 again. Foreign-key
            # checks still pending from earlier writes in this transaction would block it:
            # run them first, then return to Django's deferred checks.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {', '.join(map(quote, tables))} RESTART IDENTITY")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608 (table names)
    return tables


def _references(model: type[models.Model]) -> set[type[models.Model]]:
    return {
        f.related_model
        for f in model._meta.concrete_fields
        if f.is_relation and f.related_model is not None and f.related_model is not model
    }


def _max_id(model: type[models.Model]) -> int:
    return model.objects.aggregate(top=models.Max("pk"))["top"] or 0


# --- reference data --------------------------------------------------------------------------


def _ensure_catalogue() -> list[tuple[int, int, str, str]]:
    """The demo products (created when missing) as (id, price, category, name)."""
    skus = [f"{SKU_PREFIX}{n:04d}" for n in range(1, len(names.PRODUCTS) + 1)]
    have = set(Product.objects.filter(sku__in=skus).values_list("sku", flat=True))
    Product.objects.bulk_create(
        Product(sku=sku, name=name, category=category, price=price)
        for sku, (name, category, price) in zip(skus, names.PRODUCTS, strict=True)
        if sku not in have
    )
    rows = Product.objects.filter(sku__in=skus).order_by("sku")
    return [(p.pk, int(p.price), p.category, p.name) for p in rows]


def _ensure_tags() -> dict[str, int]:
    return {name: Tag.objects.get_or_create(name=name)[0].pk for name in names.TAGS}


@dataclass
class _Plan:
    """What every chunk needs: calendar weights, the catalogue, users and tags."""

    seed: int
    mean: float
    start: np.datetime64  # first day (JST calendar date)
    days: int
    horizon: np.datetime64  # the last second of the end day, UTC
    season_cdf: np.ndarray  # cumulative day weights for repeat purchases
    growth_cdf: np.ndarray  # the same with more new customers later (first purchases)
    weekend: np.ndarray  # per day
    gift_season: np.ndarray  # per day: June-July and November-December
    hour_cdf_weekday: np.ndarray
    hour_cdf_weekend: np.ndarray
    product_ids: np.ndarray
    product_prices: np.ndarray
    regular: np.ndarray  # indexes of ordinary products, by price
    gifts: np.ndarray  # indexes of gift products, by price
    subscriptions: np.ndarray  # indexes of subscription products
    sales_user_ids: np.ndarray
    tag_ids: dict[str, int]
    family: dict[str, np.ndarray] = field(default_factory=dict)
    given: dict[str, np.ndarray] = field(default_factory=dict)
    cities: dict[str, np.ndarray] = field(default_factory=dict)
    name_keys: dict[tuple[int, int], str] = field(default_factory=dict)
    kana_keys: dict[tuple[int, int], str] = field(default_factory=dict)
    now: datetime = field(default_factory=timezone.now)


def _make_plan(
    *,
    seed: int,
    mean: float,
    years: int,
    end: date,
    catalogue: list[tuple[int, int, str, str]],
    tag_ids: dict[str, int],
    sales_user_ids: list[int],
) -> _Plan:
    days = round(365.25 * years)
    start = np.datetime64(end - timedelta(days=days - 1), "D")
    calendar = start + np.arange(days)
    months = calendar.astype("datetime64[M]").astype(int) % 12  # 0 = January
    weekdays = (calendar.astype(int) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    season = MONTH_FACTOR[months] * WEEKDAY_FACTOR[weekdays]
    growth = season * NEW_CUSTOMER_GROWTH ** (np.arange(days) / days)
    ids = np.array([c[0] for c in catalogue], dtype=np.int64)
    prices = np.array([c[1] for c in catalogue], dtype=np.int64)
    category = np.array([c[2] for c in catalogue], dtype=object)
    is_subscription = np.array([names.SUBSCRIPTION_MARK in c[3] for c in catalogue])
    by_price = np.argsort(prices, kind="stable")
    plan = _Plan(
        seed=seed,
        mean=mean,
        start=start,
        days=days,
        horizon=(start + days).astype("datetime64[s]") - JST_OFFSET - np.timedelta64(1, "s"),
        season_cdf=np.concatenate([[0.0], np.cumsum(season)]),
        growth_cdf=np.concatenate([[0.0], np.cumsum(growth)]),
        weekend=weekdays >= 5,
        gift_season=np.isin(months, [5, 6, 10, 11]),
        hour_cdf_weekday=np.cumsum(HOUR_WEIGHTS_WEEKDAY) / HOUR_WEIGHTS_WEEKDAY.sum(),
        hour_cdf_weekend=np.cumsum(HOUR_WEIGHTS_WEEKEND) / HOUR_WEIGHTS_WEEKEND.sum(),
        product_ids=ids,
        product_prices=prices,
        regular=by_price[~is_subscription[by_price]],
        gifts=by_price[(category[by_price] == names.GIFT_CATEGORY)],
        subscriptions=np.flatnonzero(is_subscription),
        sales_user_ids=np.array(sales_user_ids, dtype=np.int64),
        tag_ids=tag_ids,
    )
    weights = np.array([w for _k, _r, w in names.FAMILY_NAMES], dtype=float)
    plan.family = {
        "kanji": np.array([k for k, _r, _w in names.FAMILY_NAMES], dtype=object),
        "kana": np.array([r for _k, r, _w in names.FAMILY_NAMES], dtype=object),
        "romaji": np.array([names.romaji(r) for _k, r, _w in names.FAMILY_NAMES], dtype=object),
        "p": weights / weights.sum(),
    }
    given = names.FEMALE_GIVEN_NAMES + names.MALE_GIVEN_NAMES
    plan.given = {
        "kanji": np.array([k for k, _r, _e in given], dtype=object),
        "kana": np.array([r for _k, r, _e in given], dtype=object),
        "romaji": np.array([names.romaji(r) for _k, r, _e in given], dtype=object),
        "era": np.array([e for _k, _r, e in given]),
        "female": np.arange(len(given)) < len(names.FEMALE_GIVEN_NAMES),
    }
    codes = sorted(names.CITIES)
    population = np.array([POPULATION_THOUSANDS[c] for c in codes], dtype=float)
    flat = [(code, city, prefix) for code in codes for city, prefix in names.CITIES[code]]
    plan.cities = {
        "codes": np.array(codes, dtype=object),
        "p": population / population.sum(),
        "first": np.array([next(i for i, f in enumerate(flat) if f[0] == c) for c in codes]),
        "count": np.array([len(names.CITIES[c]) for c in codes]),
        "name": np.array([f[1] for f in flat], dtype=object),
        "postal": np.array([f[2] for f in flat], dtype=object),
        "area_code": np.array(
            [names.AREA_CODES.get(c, f"0{'1245789'[int(c) % 7]}{1 + int(c) % 9}") for c in codes],
            dtype=object,
        ),
    }
    return plan


# --- generation ------------------------------------------------------------------------------


@dataclass
class _Table:
    model: type[models.Model]
    columns: dict[str, Any]  # attname -> numpy array or list (None = NULL)


@dataclass
class _Chunk:
    tables: list[_Table]
    counts: dict[str, int]


def _pick(rng: np.random.Generator, p, size: int) -> np.ndarray:
    """Indexes drawn with probabilities ``p`` (inverse CDF: fast for large ``size``)."""
    cdf = np.cumsum(p)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(size), side="right"), len(p) - 1)


def _starts(counts: np.ndarray) -> np.ndarray:
    """Where each group starts in the flat array of ``counts`` groups laid end to end."""
    return np.cumsum(counts) - counts


def _day_in(rng, cdf: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A day in [first, last] (inclusive) per row, drawn with the day weights behind ``cdf``."""
    x = cdf[first] + rng.random(len(first)) * (cdf[last + 1] - cdf[first])
    return np.clip(np.searchsorted(cdf, x, side="right") - 1, first, last)


def _timestamps(plan: _Plan, rng, days: np.ndarray, channel: np.ndarray | None) -> np.ndarray:
    """UTC datetimes on the given JST days at realistic hours (shops and phone lines keep
    office hours)."""
    n = len(days)
    u = rng.random(n)
    hours = np.where(
        plan.weekend[days],
        np.searchsorted(plan.hour_cdf_weekend, u, side="right"),
        np.searchsorted(plan.hour_cdf_weekday, u, side="right"),
    )
    if channel is not None:
        hours = np.where(channel == 1, 10 + (u * 10).astype(int), hours)  # store: 10-19
        hours = np.where(channel == 2, 9 + (u * 9).astype(int), hours)  # phone: 9-17
    seconds = hours * 3600 + rng.integers(0, 3600, n)
    local = (plan.start + days).astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    return local - JST_OFFSET


def _purchase_counts(plan: _Plan, rng, source: np.ndarray) -> np.ndarray:
    """Purchases per customer: leads never buy; buyers buy 1 + a negative binomial number of
    times: most of them once, fewer and fewer twice, three times..., and a long tail of loyal
    customers, with the overall mean ``plan.mean``."""
    n = len(source)
    lead = rng.random(n) < LEAD_SHARE[source]
    buyer_share = 1 - float(np.dot(SOURCE_P, LEAD_SHARE))
    extra = max(plan.mean / buyer_share - 1, 0.01)  # mean repeat purchases of a buyer
    # A shop whose customers buy often keeps more of them after the first order.
    one_time = float(np.interp(plan.mean, MEAN_POINTS, ONE_TIME_SHARE))
    shape = _one_time_shape(extra, one_time)
    counts = 1 + rng.negative_binomial(shape, shape / (shape + extra), n)
    return np.where(lead, 0, counts)


def _one_time_shape(mean: float, one_time: float) -> float:
    """The negative binomial shape giving ``one_time`` buyers no repeat purchase at ``mean``
    repeats: P(0) = (r / (r + mean)) ** r falls as r grows (bisection on log r)."""
    low, high = np.log(0.05), np.log(50.0)
    for _step in range(60):
        middle = (low + high) / 2
        r = np.exp(middle)
        if (r / (r + mean)) ** r > one_time:
            low = middle
        else:
            high = middle
    return float(np.exp((low + high) / 2))


def _generate_chunk(
    plan: _Plan,
    rng: np.random.Generator,
    *,
    n: int,
    customer_id: int,
    purchase_id: int,
    ticket_id: int,
) -> _Chunk:
    ids = customer_id + np.arange(n, dtype=np.int64)
    people = _people(plan, rng, n)
    source = _pick(rng, SOURCE_P, n)

    # Purchase counts, first purchase day and the span over which each customer keeps buying.
    # Subscribers receive a delivery every month or two; others leave at least 5 days
    # between orders. Whoever buys often must have started early enough.
    counts = _purchase_counts(plan, rng, source)
    monthly_fits = counts <= 1 + (plan.days - 1) // 30
    subscriber = (counts >= 3) & monthly_fits & (rng.random(n) < 0.35)
    bimonthly = (counts <= 1 + (plan.days - 1) // 60) & (rng.random(n) < 0.25)
    gap = np.where(subscriber, np.where(bimonthly, 60, 30), 5)
    counts = np.minimum(counts, 1 + (plan.days - 1) // gap)
    latest_first = plan.days - 1 - np.maximum(counts - 1, 0) * gap
    first_day = _day_in(rng, plan.growth_cdf, np.zeros(n, dtype=np.int64), latest_first)
    tenure = plan.days - 1 - first_day
    active = rng.random(n) < 0.55
    span = np.where(
        active, tenure - rng.exponential(45, n), tenure * rng.uniform(0.05, 0.7, n)
    ).astype(np.int64)
    span = np.clip(span, (counts - 1) * gap, tenure)
    # Spend per order: lognormal per customer.
    sigma = float(np.interp(plan.mean, MEAN_POINTS, SPEND_SIGMA))
    level = np.exp(rng.normal(np.log(3800), sigma, n))

    purchases = _purchases(
        plan,
        rng,
        counts=counts,
        first_day=first_day,
        span=span,
        level=level,
        subscriber=subscriber,
        gap=gap,
        source=source,
        purchase_id=purchase_id,
        ids=ids,
    )
    buyer = counts > 0
    first_purchase = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    starts = _starts(counts)
    if buyer.any():
        first_purchase[buyer] = np.minimum.reduceat(purchases["ts"], starts[buyer])

    # Sign-up: at checkout for most buyers, weeks earlier for some; leads any time.
    lag = np.where(
        rng.random(n) < 0.6, rng.integers(120, 1800, n), rng.exponential(40 * 86400, n)
    ).astype(np.int64)
    lead_day = _day_in(rng, plan.growth_cdf, np.zeros(n, dtype=np.int64), np.full(n, plan.days - 1))
    created = np.where(
        buyer, first_purchase - lag.astype("timedelta64[s]"), _timestamps(plan, rng, lead_day, None)
    ).astype("datetime64[s]")

    consent = _consent(
        plan,
        rng,
        ids=ids,
        people=people,
        source=source,
        created=created,
        first_purchase=first_purchase,
        buyer=buyer,
    )
    revenue = np.bincount(
        purchases["customer_index"], weights=purchases["completed_total"], minlength=n
    )
    tickets = _tickets(
        plan,
        rng,
        ids=ids,
        counts=counts,
        created=created,
        purchases=purchases,
        subscriber=subscriber,
        ticket_id=ticket_id,
    )
    owner = _owners(plan, rng, n, revenue=revenue, source=source)
    interactions = _interactions(plan, rng, ids=ids, created=created, owner=owner)
    tags = _tags(
        plan,
        rng,
        ids=ids,
        created=created,
        revenue=revenue,
        subscriber=subscriber,
        source=source,
        consent=consent,
        purchases=purchases,
        tickets=tickets,
    )

    customer_columns = _customer_columns(
        plan,
        rng,
        ids=ids,
        people=people,
        source=source,
        created=created,
        consent=consent,
        owner=owner,
    )
    tables = [
        _Table(Customer, customer_columns),
        _Table(Customer.tags.through, tags),
        _Table(ConsentRecord, consent["records"]),
        _Table(Purchase, purchases["rows"]),
        _Table(PurchaseItem, purchases["items"]),
        _Table(SupportTicket, tickets["rows"]),
        _Table(TicketReply, tickets["replies"]),
        _Table(Interaction, interactions),
    ]
    return _Chunk(
        tables=tables,
        counts={
            "customers": n,
            "purchases": len(purchases["ts"]),
            "items": len(purchases["items"]["purchase_id"]),
            "tickets": len(tickets["rows"]["id"]),
            "replies": len(tickets["replies"]["ticket_id"]),
            "interactions": len(interactions["customer_id"]),
            "consents": len(consent["records"]["customer_id"]),
        },
    )


def _people(plan: _Plan, rng, n: int) -> dict[str, np.ndarray]:
    """Gender, birthday, name and reading, prefecture and city, and which fields are missing."""
    gender = _pick(rng, GENDER_P, n)
    age = np.clip(rng.normal(45, 14, n), 18.01, 85)  # adults only
    end = plan.start + plan.days - 1
    birthday = end - (age * 365.25).astype(np.int64)
    birth_year = birthday.astype("datetime64[Y]").astype(int) + 1970
    era = np.where(birth_year < 1965, 0, np.where(birth_year < 1990, 1, 2))
    # Names follow the generation mostly; a quarter are timeless choices.
    era = np.where(rng.random(n) < 0.75, era, rng.integers(0, 3, n))
    female_table = (gender == 0) | ((gender >= 2) & (rng.random(n) < 0.5))
    given = np.empty(n, dtype=np.int64)
    for is_female in (True, False):
        for generation in range(3):
            where = (female_table == is_female) & (era == generation)
            pool = np.flatnonzero(
                (plan.given["female"] == is_female) & (plan.given["era"] == generation)
            )
            given[where] = pool[rng.integers(0, len(pool), int(where.sum()))]
    family = _pick(rng, plan.family["p"], n)
    prefecture = _pick(rng, plan.cities["p"], n)
    # Bigger cities first in each prefecture's list: draw the first ones more often.
    city = plan.cities["first"][prefecture] + (
        rng.random(n) ** 1.6 * plan.cities["count"][prefecture]
    ).astype(np.int64)
    has_prefecture = rng.random(n) >= 0.03
    return {
        "gender": gender,
        "birthday": birthday,
        "has_birthday": rng.random(n) >= 0.15,
        "family": family,
        "given": given,
        "has_kana": rng.random(n) >= 0.07,
        "has_email": rng.random(n) >= 0.10,
        "has_phone": rng.random(n) >= 0.10,
        "mobile": rng.random(n) < 0.82,
        "prefecture": prefecture,
        "has_prefecture": has_prefecture,
        "city": city,
        "has_address": has_prefecture & (rng.random(n) >= 0.05),
    }


def _purchases(
    plan: _Plan,
    rng,
    *,
    counts,
    first_day,
    span,
    level,
    subscriber,
    gap,
    source,
    purchase_id: int,
    ids,
) -> dict[str, Any]:
    n = len(counts)
    total_count = int(counts.sum())
    customer_index = np.repeat(np.arange(n), counts)
    starts = _starts(counts)
    k = np.arange(total_count) - np.repeat(starts, counts)  # 0 = the customer's first order
    c_first = first_day[customer_index]
    day = _day_in(rng, plan.season_cdf, c_first, c_first + span[customer_index])
    day = np.where(k == 0, c_first, day)
    sub = subscriber[customer_index]
    sub_day = c_first + k * gap[customer_index] + rng.integers(-2, 3, total_count)
    day = np.where(sub, np.clip(sub_day, c_first, plan.days - 1), day)

    # Channel: store customers mostly buy in the shop, the rest online; subscribers'
    # deliveries are subscription orders.
    store_customer = SOURCE_CHANNELS[source] == "store"
    preferred = np.where(store_customer, 1, 0)[customer_index]
    channel = np.where(
        rng.random(total_count) < 0.85, preferred, _pick(rng, [0.75, 0.12, 0.08, 0.05], total_count)
    )
    channel = np.where(sub & (k > 0), 4, channel)
    ts = _timestamps(plan, rng, day, channel)
    status = _pick(rng, [0.95, 0.03, 0.02], total_count)

    # Items: 1-3 lines chosen near the customer's usual order value; in the gift seasons
    # some orders start with a gift; a subscriber's order starts with the subscribed product.
    lines = np.where(
        sub, 1 + (rng.random(total_count) < 0.2), 1 + _pick(rng, [0.55, 0.3, 0.15], total_count)
    )
    value = level[customer_index] * rng.lognormal(0, 0.3, total_count)
    value = value * np.where(plan.gift_season[day], 1.15, 1.0)
    shares = rng.gamma(2.0, size=(total_count, 3)) * (np.arange(3) < lines[:, None])
    target = value[:, None] * shares / shares.sum(axis=1, keepdims=True)
    quantity = (
        1
        + (rng.random((total_count, 3)) < np.where(target < 2500, 0.3, 0.08))
        + (rng.random((total_count, 3)) < 0.04)
    )
    regular_prices = plan.product_prices[plan.regular]
    position = np.searchsorted(regular_prices, target / quantity) + rng.integers(
        -3, 4, (total_count, 3)
    )
    position = np.clip(position, 0, len(plan.regular) - 1)
    product = plan.regular[position]
    # Orders beyond the catalogue's prices (a business, a big family) buy more of a product.
    quantity = np.maximum(
        quantity, np.minimum(np.round(target / plan.product_prices[product]), 20).astype(np.int64)
    )
    gift = plan.gift_season[day] & ~sub & (rng.random(total_count) < 0.3)
    gift_prices = plan.product_prices[plan.gifts]
    gift_position = np.clip(
        np.searchsorted(gift_prices, target[:, 0]) + rng.integers(-2, 3, total_count),
        0,
        len(plan.gifts) - 1,
    )
    product[:, 0] = np.where(gift, plan.gifts[gift_position], product[:, 0])
    subscribed = plan.subscriptions[ids % len(plan.subscriptions)]  # one product per customer
    product[:, 0] = np.where(sub, subscribed[customer_index], product[:, 0])
    quantity[:, 0] = np.where(sub, 1, quantity[:, 0])
    # An order lists each product once: move a repeated line to the next product by price.
    for j in (1, 2):
        for _attempt in range(3):
            clash = np.zeros(total_count, dtype=bool)
            for i in range(j):
                clash |= product[:, j] == product[:, i]
            if not clash.any():
                break
            position[:, j] = np.where(
                clash, (position[:, j] + 1) % len(plan.regular), position[:, j]
            )
            product[:, j] = plan.regular[position[:, j]]

    used = np.arange(3) < lines[:, None]
    line_purchase, line_slot = np.nonzero(used)  # row-major: grouped by purchase, in order
    line_product = product[line_purchase, line_slot]
    line_quantity = quantity[line_purchase, line_slot]
    unit_price = plan.product_prices[line_product]
    line_starts = _starts(lines)
    amounts = line_quantity * unit_price
    total = np.add.reduceat(amounts, line_starts) if total_count else amounts

    purchase_ids = purchase_id + np.arange(total_count, dtype=np.int64)
    return {
        "ts": ts,
        "customer_index": customer_index,
        "completed_total": np.where(status == 0, total, 0),
        "gift_customers": np.unique(customer_index[gift]),
        "rows": {
            "id": purchase_ids,
            "order_id": [f"{ORDER_ID_PREFIX}{i:09d}" for i in purchase_ids.tolist()],
            "customer_id": ids[customer_index],
            "purchased_at": ts,
            "channel": PURCHASE_CHANNELS[channel],
            "status": STATUSES[status],
            "total": total,
        },
        "items": {
            "purchase_id": purchase_ids[line_purchase],
            "product_id": plan.product_ids[line_product],
            "quantity": line_quantity,
            "unit_price": unit_price,
        },
    }


def _consent(plan: _Plan, rng, *, ids, people, source, created, first_purchase, buyer) -> dict:
    """About 60% opted in to e-mail (only customers with an address), each with the record of
    how and when: at sign-up, or at checkout of the first order. A few unsubscribed later."""
    n = len(ids)
    opted = people["has_email"] & (rng.random(n) < 0.7)
    how = CONSENT_SOURCE[source].copy()
    how = np.where((how == "checkout") & ~buyer, "web_form", how)
    at = np.where(how == "checkout", first_purchase, created).astype("datetime64[s]")
    unsubscribed = opted & (rng.random(n) < 0.06) & (at < plan.horizon)
    room = np.where(unsubscribed, (plan.horizon - at).astype(np.int64), 0)
    unsubscribe_at = at + (room * rng.random(n)).astype(np.int64).astype("timedelta64[s]")
    form_choice = rng.integers(0, 2, n)
    first_rows = np.flatnonzero(opted)
    forms = [names.CONSENT_FORMS[h] for h in how[first_rows]]
    second_rows = np.flatnonzero(unsubscribed)
    records = {
        "customer_id": np.concatenate([ids[first_rows], ids[second_rows]]),
        "opted_in": np.concatenate(
            [np.ones(len(first_rows), dtype=bool), np.zeros(len(second_rows), dtype=bool)]
        ),
        "recorded_at": np.concatenate([at[first_rows], unsubscribe_at[second_rows]]),
        "source": how[first_rows].tolist() + ["unsubscribe"] * len(second_rows),
        "form": [f[form_choice[i] % len(f)] for f, i in zip(forms, first_rows, strict=True)]
        + [names.UNSUBSCRIBE_FORM] * len(second_rows),
        "recorded_by_id": np.ma.masked_all(len(first_rows) + len(second_rows), dtype=np.int64),
    }
    opt_in_at = np.where(unsubscribed, unsubscribe_at, np.where(opted, at, np.datetime64("NaT")))
    return {
        "opted_in": opted & ~unsubscribed,
        "at": opt_in_at.astype("datetime64[s]"),
        "records": records,
    }


def _owners(plan: _Plan, rng, n: int, *, revenue, source) -> np.ma.MaskedArray:
    """Some customers have an owner among the sales staff: most business and top customers,
    a few others. Masked = no owner."""
    top = revenue >= np.quantile(revenue, 0.98) if n >= 50 else np.zeros(n, dtype=bool)
    business = np.isin(SOURCE_CHANNELS[source], ["business_card", "event"])
    owned = rng.random(n) < np.where(top | business, 0.7, 0.06)
    return _staff(plan, rng, n, missing=~owned)


def _staff(plan: _Plan, rng, size: int, *, missing: np.ndarray) -> np.ma.MaskedArray:
    """Random sales users (nobody where ``missing``, or when there is no sales user)."""
    staff = plan.sales_user_ids
    if not len(staff):
        return np.ma.masked_array(np.zeros(size, dtype=np.int64), mask=True)
    return np.ma.masked_array(staff[rng.integers(0, len(staff), size)], mask=missing)


def _tickets(plan: _Plan, rng, *, ids, counts, created, purchases, subscriber, ticket_id) -> dict:
    """Support tickets for about 5% of the customers, after one of their orders: old ones
    closed, recent ones in every state, some open past their due time."""
    n = len(ids)
    has_ticket = rng.random(n) < np.where(counts > 0, 0.055, 0.01)
    owners = np.flatnonzero(has_ticket)
    per_customer = 1 + (rng.random(len(owners)) < 0.2) + (rng.random(len(owners)) < 0.05)
    customer_index = np.repeat(owners, per_customer)
    m = len(customer_index)
    starts = _starts(counts)
    # After a random order of the customer (or after sign-up for leads), 1 hour to 10 days.
    base = created[customer_index]
    bought = counts[customer_index] > 0
    if bought.any():
        which = starts[customer_index] + (rng.random(m) * counts[customer_index]).astype(np.int64)
        base = np.where(bought, purchases["ts"][np.where(bought, which, 0)], base)
    opened = base + rng.integers(3600, 10 * 86400, m).astype("timedelta64[s]")
    opened = np.minimum(opened, plan.horizon - np.timedelta64(3600, "s"))
    topics = names.TICKET_TOPICS
    for_subscribers = np.array(["定期便" in t[0] for t in topics])
    topic = rng.integers(0, len(topics), m)
    # Subscription questions come from subscribers; others get another topic.
    ordinary = np.flatnonzero(~for_subscribers)
    wrong = for_subscribers[topic] & ~subscriber[customer_index]
    topic = np.where(wrong, ordinary[rng.integers(0, len(ordinary), m)], topic)
    priorities = np.array([p.value for p in TicketPriority], dtype=object)  # low..urgent
    usual = np.array([t[2] for t in topics], dtype=object)[topic]
    priority = np.where(
        rng.random(m) < 0.7, usual, priorities[_pick(rng, [0.2, 0.55, 0.2, 0.05], m)]
    )
    age_days = (plan.horizon - opened).astype(np.int64) / 86400
    status = np.where(
        age_days > 14,
        np.array(["closed", "resolved", "pending", "open"], dtype=object)[
            _pick(rng, [0.6, 0.33, 0.03, 0.04], m)
        ],
        np.array(["open", "pending", "resolved", "closed"], dtype=object)[
            _pick(rng, [0.4, 0.25, 0.25, 0.1], m)
        ],
    )
    done = np.isin(status, ["resolved", "closed"])
    resolved = opened + np.maximum(rng.exponential(30 * 3600, m), 600).astype("timedelta64[s]")
    resolved = np.where(done, np.minimum(resolved, plan.horizon), np.datetime64("NaT"))
    response = {p.value: int(TICKET_RESPONSE_TIME[p].total_seconds()) for p in TicketPriority}
    due = opened + np.array([response[p] for p in priority], dtype=np.int64).astype(
        "timedelta64[s]"
    )
    assignee = _staff(plan, rng, m, missing=(status == "open") & (rng.random(m) < 0.3))
    ticket_ids = ticket_id + np.arange(m, dtype=np.int64)

    # Replies: staff answer within hours; finished tickets have a closing reply; some
    # internal notes.
    reply_count = np.where(
        done, 1 + rng.integers(0, 3, m), np.where(status == "pending", 1, rng.integers(0, 2, m))
    )
    reply_ticket = np.repeat(np.arange(m), reply_count)
    r = len(reply_ticket)
    steps = rng.integers(1800, 20 * 3600, r).astype("timedelta64[s]")
    reply_starts = _starts(reply_count)
    order = np.arange(r) - np.repeat(reply_starts, reply_count)
    reply_at = opened[reply_ticket] + steps * (order + 1)
    reply_at = np.minimum(reply_at, plan.horizon)
    internal = rng.random(r) < 0.2
    reply_text = rng.integers(0, len(names.TICKET_REPLIES), r)
    note_text = rng.integers(0, len(names.TICKET_INTERNAL_NOTES), r)
    return {
        "active_customers": np.unique(customer_index[np.isin(status, ["open", "pending"])]),
        "rows": {
            "id": ticket_ids,
            "customer_id": ids[customer_index],
            "opened_at": opened,
            "channel": [topics[t][3] for t in topic.tolist()],
            "subject": [topics[t][0] for t in topic.tolist()],
            "body": [topics[t][1] for t in topic.tolist()],
            "status": status,
            "priority": priority,
            "assignee_id": assignee,
            "due_at": due,
            "resolved_at": resolved.astype("datetime64[s]"),
        },
        "replies": {
            "ticket_id": ticket_ids[reply_ticket],
            "author_id": assignee[reply_ticket],
            "body": [
                names.TICKET_INTERNAL_NOTES[nt] if i else names.TICKET_REPLIES[rt]
                for i, nt, rt in zip(
                    internal.tolist(), note_text.tolist(), reply_text.tolist(), strict=True
                )
            ],
            "internal": internal,
            "created_at": reply_at,
        },
    }


def _interactions(plan: _Plan, rng, *, ids, created, owner) -> dict:
    """Calls, visits, meetings, e-mails and notes: mostly for owned customers."""
    n = len(ids)
    owned = ~np.ma.getmaskarray(owner)
    chosen = np.flatnonzero(rng.random(n) < np.where(owned, 0.6, 0.02))
    per_customer = rng.integers(1, 5, len(chosen))
    customer_index = np.repeat(chosen, per_customer)
    m = len(customer_index)
    start = np.minimum(created[customer_index], plan.horizon)
    room = (plan.horizon - start).astype(np.int64)
    when = start + (room * rng.random(m)).astype(np.int64).astype("timedelta64[s]")
    kind = INTERACTION_KINDS[_pick(rng, INTERACTION_P, m)]
    text = rng.integers(0, 4, m)
    fallback = _staff(plan, rng, m, missing=np.zeros(m, dtype=bool))
    user = np.ma.where(owned[customer_index], owner[customer_index], fallback)
    return {
        "customer_id": ids[customer_index],
        "kind": kind,
        "occurred_at": when,
        "user_id": user,
        "summary": [
            names.INTERACTION_SUMMARIES[k][t % len(names.INTERACTION_SUMMARIES[k])]
            for k, t in zip(kind.tolist(), text.tolist(), strict=True)
        ],
    }


def _tags(
    plan: _Plan, rng, *, ids, created, revenue, subscriber, source, consent, purchases, tickets
):
    n = len(ids)
    top = revenue >= np.quantile(revenue, 0.98) if n >= 50 else np.zeros(n, dtype=bool)
    gift = np.zeros(n, dtype=bool)
    gift[purchases["gift_customers"]] = rng.random(len(purchases["gift_customers"])) < 0.5
    follow_up = np.zeros(n, dtype=bool)
    follow_up[tickets["active_customers"]] = True
    business = np.isin(SOURCE_CHANNELS[source], ["business_card", "event"]) & (rng.random(n) < 0.4)
    groups = [
        (names.TAG_VIP, top & (revenue > 0)),
        (names.TAG_SUBSCRIPTION, subscriber),
        (names.TAG_NEWSLETTER, consent["opted_in"] & (rng.random(n) < 0.35)),
        (names.TAG_BUSINESS, business),
        (names.TAG_FOLLOW_UP, follow_up),
        (names.TAG_GIFT, gift),
    ]
    customer_ids = np.concatenate([ids[mask] for _name, mask in groups])
    tag_ids = np.concatenate(
        [np.full(int(mask.sum()), plan.tag_ids[name], dtype=np.int64) for name, mask in groups]
    )
    # The customer's created_at, copied for the tag list's index (written here, the database
    # trigger that would fill it costs a lookup per row).
    created_at = np.concatenate([created[mask] for _name, mask in groups])
    return {"customer_id": customer_ids, "tag_id": tag_ids, "created_at": created_at}


def _customer_columns(plan: _Plan, rng, *, ids, people, source, created, consent, owner) -> dict:
    n = len(ids)
    family, given = people["family"], people["given"]
    has_kana = people["has_kana"]
    family_kanji = plan.family["kanji"][family]
    given_kanji = plan.given["kanji"][given]
    family_kana = np.where(has_kana, plan.family["kana"][family], "")
    given_kana = np.where(has_kana, plan.given["kana"][given], "")
    external = [f"{EXTERNAL_ID_PREFIX}{i:08d}" for i in ids.tolist()]

    # E-mail: romanised name and the customer's id (unique), at a reserved example domain.
    f_romaji = plan.family["romaji"][family].tolist()
    g_romaji = plan.given["romaji"][given].tolist()
    domain_names = np.array([d for d, _w in names.EMAIL_DOMAINS], dtype=object)
    domains = domain_names[_pick(rng, [w for _d, w in names.EMAIL_DOMAINS], n)].tolist()
    patterns = rng.integers(0, 4, n).tolist()
    emails = []
    for i, f, g, pattern, d, present in zip(
        ids.tolist(),
        f_romaji,
        g_romaji,
        patterns,
        domains,
        people["has_email"].tolist(),
        strict=True,
    ):
        if not present:
            emails.append("")
        elif pattern == 0:
            emails.append(f"{g}.{f}{i}@{d}")
        elif pattern == 1:
            emails.append(f"{f}_{g}{i}@{d}")
        elif pattern == 2:
            emails.append(f"{g}{i}@{d}")
        else:
            emails.append(f"{f}.{i}@{d}")

    # Phones: mostly mobile (090/080/070); landlines with the area code of the prefecture.
    # The subscriber number is a permutation of the id, so no two customers share one by chance.
    scrambled = (ids * 73_939_133 + 4_852_001) % 100_000_000
    mobile_prefix = np.array(["090", "080", "070"], dtype=object)[_pick(rng, [0.45, 0.38, 0.17], n)]
    area = plan.cities["area_code"][people["prefecture"]]
    phones = []
    for number, mobile, prefix, code, present in zip(
        scrambled.tolist(),
        people["mobile"].tolist(),
        mobile_prefix.tolist(),
        area.tolist(),
        people["has_phone"].tolist(),
        strict=True,
    ):
        if not present:
            phones.append("")
        elif mobile:
            phones.append(f"{prefix}{number:08d}")
        else:
            phones.append(f"{code}{number % 10 ** (10 - len(code)):0{10 - len(code)}d}")

    # Deliberate probable duplicates: the same person registered again under another id,
    # with the same e-mail (typed with a capital), the same phone, or only the same name and
    # birthday.
    duplicate = np.flatnonzero(rng.random(n) < 0.003)
    duplicate = duplicate[duplicate > 0]
    original = (rng.random(len(duplicate)) * duplicate).astype(np.int64)
    rule = rng.integers(0, 3, len(duplicate))
    birthday = people["birthday"].copy()
    has_birthday = people["has_birthday"].copy()
    gender = people["gender"].copy()
    prefecture_index = people["prefecture"].copy()
    for d, o, how in zip(duplicate.tolist(), original.tolist(), rule.tolist(), strict=True):
        family_kanji[d], given_kanji[d] = family_kanji[o], given_kanji[o]
        family_kana[d], given_kana[d] = family_kana[o], given_kana[o]
        birthday[d], has_birthday[d], gender[d] = birthday[o], has_birthday[o], gender[o]
        prefecture_index[d] = prefecture_index[o]
        if how == 0 and emails[o]:
            emails[d] = emails[o][:1].upper() + emails[o][1:]
        elif how == 1 and phones[o]:
            phones[d] = phones[o]
        else:
            family_kana[d], given_kana[d] = (
                plan.family["kana"][family[o]],
                plan.given["kana"][given[o]],
            )
            family_kana[o], given_kana[o] = family_kana[d], given_kana[d]
            has_birthday[d] = has_birthday[o] = True

    # Address: postal code and street address in a city of the prefecture.
    prefecture_code = plan.cities["codes"][prefecture_index]
    city = people["city"]
    towns = rng.integers(0, len(names.TOWNS), n).tolist()
    numbers = rng.integers(1, 30, (n, 3)).tolist()
    building = rng.integers(0, len(names.BUILDINGS) * 3, n).tolist()  # a third live in one
    room = rng.integers(1, 12, n) * 100 + rng.integers(1, 10, n)
    postal_tail = rng.integers(0, 10_000, n).tolist()
    addresses = []
    for c, t, (a, b, c2), bld, rm, present in zip(
        plan.cities["name"][city].tolist(),
        towns,
        numbers,
        building,
        room.tolist(),
        people["has_address"].tolist(),
        strict=True,
    ):
        if not present:
            addresses.append("")
            continue
        street = f"{c}{names.TOWNS[t]}{a % 9 + 1}-{b}-{c2}"
        if bld < len(names.BUILDINGS):
            street += f" {names.BUILDINGS[bld]}{rm}"
        addresses.append(street)
    postal_prefix = plan.cities["postal"][city].tolist()
    postals = [
        f"{p}{t:04d}" if present else ""
        for p, t, present in zip(
            postal_prefix, postal_tail, people["has_address"].tolist(), strict=True
        )
    ]

    # Search text exactly as Customer.build_search_text computes it (save() is bypassed).
    search = []
    for fk, gk, fa, ga, e, p, x in zip(
        family_kanji.tolist(),
        given_kanji.tolist(),
        family_kana.tolist(),
        given_kana.tolist(),
        emails,
        phones,
        external,
        strict=True,
    ):
        parts = [_cached_key(plan.name_keys, fk + gk)]
        if fa or ga:
            parts.append(_cached_key(plan.kana_keys, fa + ga))
        if e:
            parts.append(_ascii_search_key(e))
        if p:
            parts.append(p)  # digits only: search_key leaves them unchanged
        parts.append(_ascii_search_key(x))
        search.append(" ".join(parts))

    sns_roll = rng.random(n)
    sns = [
        {"instagram": f"@{g}_{i % 10000}"}
        if roll < 0.05
        else {"line": f"{g}{i % 1000}"}
        if roll < 0.08
        else {}
        for g, i, roll in zip(g_romaji, ids.tolist(), sns_roll.tolist(), strict=True)
    ]
    note_roll = rng.random(n)
    note_pick = rng.integers(0, len(names.PREFERENCE_NOTES), n)
    notes = np.where(
        note_roll < 0.05, np.array(names.PREFERENCE_NOTES, dtype=object)[note_pick], ""
    )

    now = np.datetime64(plan.now.replace(tzinfo=None), "s")
    return {
        "id": ids,
        "external_id": external,
        "family_name": family_kanji,
        "given_name": given_kanji,
        "family_name_kana": family_kana,
        "given_name_kana": given_kana,
        "email": emails,
        "phone": phones,
        "birthday": np.where(has_birthday, birthday, np.datetime64("NaT")).astype("datetime64[D]"),
        "gender": GENDERS[gender],
        "prefecture": np.where(people["has_prefecture"], prefecture_code, ""),
        "postal_code": postals,
        "address": addresses,
        "channel": SOURCE_CHANNELS[source],
        "sns_accounts": sns,
        "notes": notes,
        "owner_id": owner,
        "email_opt_in": consent["opted_in"],
        "email_opt_in_at": consent["at"],
        "search_text": search,
        "erased_at": np.full(n, np.datetime64("NaT"), dtype="datetime64[s]"),
        "created_at": created,
        "updated_at": np.full(n, now),  # written now, like auto_now
    }


def _cached_key(cache: dict, text: str) -> str:
    # Few distinct names: normalise each once.
    key = cache.get(text)
    if key is None:
        key = cache[text] = search_key(text)
    return key


def _ascii_search_key(text: str) -> str:
    """search_key of the ASCII e-mails and ids generated here (letters, digits, "_", "@" and
    "."): NFKC and the kana fold leave them as they are, so the key is the text in lower case
    without dots. search_key itself costs ~10 µs a call, too slow for a million rows; a test
    checks the result equals build_search_text()."""
    return text.lower().replace(".", "")


# --- writers ---------------------------------------------------------------------------------


class _OrmWriter:
    """The portable path: bulk_create in batches."""

    batch_size = 1000

    def begin(self) -> None:
        pass

    def write(self, table: _Table) -> None:
        model = table.model
        names_ = list(table.columns)
        values = [_python_values(table.columns[name]) for name in names_]
        model.objects.bulk_create(
            (model(**dict(zip(names_, row, strict=True))) for row in zip(*values, strict=True)),
            batch_size=self.batch_size,
        )

    def finish(self, progress) -> None:
        pass

    def close(self) -> None:
        pass


def _python_values(values) -> list:
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "M":
            if np.datetime_data(values.dtype)[0] == "D":
                return values.tolist()  # dates (None for NaT)
            return [
                None if v is None else v.replace(tzinfo=UTC)
                for v in values.astype("datetime64[us]").tolist()
            ]
        return values.tolist()
    return list(values)


# The tables the demo writes in bulk. On PostgreSQL, when they are empty at the start, their
# secondary indexes and their unique and foreign-key constraints are dropped for the load and
# recreated after it: building an index once is far faster than maintaining it row by row,
# and deferred foreign-key checks would queue one trigger event per row until commit.
_BULK_MODELS = [
    Customer,
    Customer.tags.through,
    ConsentRecord,
    Purchase,
    PurchaseItem,
    SupportTicket,
    TicketReply,
    Interaction,
]
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class _PostgresCopyWriter:
    """PostgreSQL fast path: COPY FROM STDIN of tab-separated text built per chunk.

    A second thread runs the COPY of one chunk while this one generates the next: the server
    parses and stores rows on one core while Python builds text on the other (psycopg2
    releases the GIL while it waits for the server). Both use the one connection, in turn.
    """

    def __init__(self) -> None:
        self.cursor = connection.cursor()
        self.dropped: list[tuple[str, str, str]] = []  # (kind, table, SQL to recreate)
        self.queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.immediate = False

    def begin(self) -> None:
        tables = [m._meta.db_table for m in _BULK_MODELS]
        quoted = ", ".join(connection.ops.quote_name(t) for t in tables)
        # Ids are assigned here (max + 1): nobody else may insert until the commit.
        self.cursor.execute(f"LOCK TABLE {quoted} IN SHARE ROW EXCLUSIVE MODE")
        self.cursor.execute("SET LOCAL synchronous_commit = off")
        if any(m.objects.exists() for m in _BULK_MODELS):
            # Appending: check foreign keys per statement rather than queueing one deferred
            # trigger event per row until the commit.
            self.cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            self.immediate = True
        else:
            for table in tables:
                self._drop_secondary(table)
            for table in tables:
                self._drop_unreferenced_primary_key(table)
        self.thread = threading.Thread(target=self._copy_loop, args=(connection.connection,))
        self.thread.start()

    def _drop_secondary(self, table: str) -> None:
        self.cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY conname",
            [table],
        )
        for name, kind, definition in self.cursor.fetchall():
            self._drop_constraint(table, name, kind, definition)
        self.cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
            "AND NOT i.indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
            "WHERE k.conindid = i.indexrelid) ORDER BY c.relname",
            [table],
        )
        for name, definition in self.cursor.fetchall():
            self.cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
            self.dropped.append(("i", table, definition))

    def _drop_unreferenced_primary_key(self, table: str) -> None:
        """Rows get ids from the sequence either way; the primary key index can be built at
        the end unless a foreign key (of another app) depends on it."""
        self.cursor.execute(
            "SELECT p.conname, pg_get_constraintdef(p.oid) FROM pg_constraint p "
            "WHERE p.conrelid = %s::regclass AND p.contype = 'p' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = p.conrelid)",
            [table],
        )
        for name, definition in self.cursor.fetchall():
            self._drop_constraint(table, name, "p", definition)

    def _drop_constraint(self, table: str, name: str, kind: str, definition: str) -> None:
        quote = connection.ops.quote_name
        self.cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        self.dropped.append(
            (kind, table, f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
        )

    def _copy_loop(self, raw_connection) -> None:
        with raw_connection.cursor() as cursor:
            while (item := self.queue.get()) is not None:
                if self.error is not None:
                    continue  # keep taking chunks so that the producer never blocks
                statement, data = item
                try:
                    cursor.copy_expert(statement, io.BytesIO(data), 1 << 20)
                except BaseException as error:  # re-raised by the producer
                    self.error = error

    def write(self, table: _Table) -> None:
        if self.error is not None:
            raise self.error
        if not len(next(iter(table.columns.values()))):
            return
        fields = {f.attname: f.column for f in table.model._meta.concrete_fields}
        quote = connection.ops.quote_name
        columns = ", ".join(quote(fields[name]) for name in table.columns)
        text = "\n".join(
            map("\t".join, zip(*(_copy_values(v) for v in table.columns.values()), strict=True))
        )
        self.queue.put(
            (
                f"COPY {quote(table.model._meta.db_table)} ({columns}) FROM STDIN",
                (text + "\n").encode(),
            )
        )

    def close(self) -> None:
        """Wait for the copying thread: the connection is this thread's again afterwards."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def finish(self, progress) -> None:
        self.close()
        if self.error is not None:
            raise self.error
        if self.dropped:
            self.cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            # Primary and unique keys first (foreign keys need them), then indexes, then
            # foreign keys (checked here, once, for all the rows).
            for kind in ("p", "u", "i", "f"):
                for table in dict.fromkeys(t for k, t, _s in self.dropped if k == kind):
                    started = time.perf_counter()
                    statements = [s for k, t, s in self.dropped if k == kind and t == table]
                    for statement in statements:
                        self.cursor.execute(statement)
                    if progress:
                        label = {"p": "primary key", "u": "unique keys", "i": "indexes"}
                        progress(
                            f"{table}: {len(statements)} {label.get(kind, 'foreign keys')} "
                            f"rebuilt in {time.perf_counter() - started:.1f} s"
                        )
        if self.immediate:
            self.cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default again
        for statement in connection.ops.sequence_reset_sql(no_style(), _BULK_MODELS):
            self.cursor.execute(statement)
        quote = connection.ops.quote_name
        for model in _BULK_MODELS:
            self.cursor.execute(f"ANALYZE {quote(model._meta.db_table)}")
        self.cursor.close()


def _copy_values(values) -> list[str]:
    """One column as COPY text fields (\\N is NULL)."""
    if isinstance(values, np.ma.MaskedArray):
        text = np.array(_int_strings(values.data), dtype=object)
        text[np.ma.getmaskarray(values)] = r"\N"
        return text.tolist()
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind in "iu":
            return _int_strings(values)
        if kind == "b":
            return np.where(values, "t", "f").tolist()
        if kind == "M":
            if np.datetime_data(values.dtype)[0] == "D":
                text = np.datetime_as_string(values)
            else:
                text = np.datetime_as_string(values, unit="s", timezone="UTC")
            missing = np.isnat(values)
            return np.where(missing, r"\N", text).tolist() if missing.any() else text.tolist()
        values = values.tolist()
    if values and isinstance(values[0], dict):
        values = [json.dumps(v, ensure_ascii=False) for v in values]
    # Generated text rarely needs escaping: check the whole column in one pass.
    joined = "\x00".join(values)
    if any(char in joined for char in "\\\t\n\r"):
        values = [v.translate(_COPY_ESCAPES) for v in values]
    return values


def _int_strings(values: np.ndarray) -> list[str]:
    """Integers as text; columns with few distinct values (foreign keys, prices, quantities)
    format each value once."""
    if not len(values):
        return []
    low, high = int(values.min()), int(values.max())
    if high - low < len(values) // 2:
        table = np.array([str(v) for v in range(low, high + 1)], dtype=object)
        return table[values - low].tolist()
    return list(map(str, values.tolist()))
