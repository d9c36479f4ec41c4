"""Segment rules: a JSON tree of conditions, validated with every error at once and compiled
into one ``Q`` on ``Customer``.

The tree::

    group:     {"op": "and" | "or", "conditions": [group-or-condition, ...]}
    condition: {"field": "<key>", "op": "<operator>", "value": <json>}

Groups nest up to ``MAX_DEPTH`` levels (the root group is level 1) and a tree holds at most
``MAX_CONDITIONS`` conditions. An empty AND group matches every customer and an empty OR group
none (the identities of AND and OR), so ``{"op": "and", "conditions": []}`` is "all
customers"; an empty dict (the model's default) means the same.

Field keys and operators are a stable API (stored in ``Segment.rules`` and sent by the API):

- profile: ``gender``, ``prefecture`` (JIS codes "01".."47"), ``channel`` (source channels)
  with ``in`` / ``not_in`` (``not_in`` also matches customers without a value); ``age``
  ``between`` [min, max] whole years today (customers without a birthday never match);
  ``birthday_month`` ``in`` [1..12]; ``tags`` ``any`` / ``all`` / ``none`` of tag *names*
  (names, not ids: a stored rule stays readable, and tag names are unique); ``owner``
  ``in`` / ``not_in`` user ids, ``"none"`` standing for unowned customers; ``email_opt_in``
  ``is`` true/false; ``signup_date`` (the local date of ``Customer.created_at``) ``between``
  two ISO dates (inclusive) or ``within_last_days`` N.
- scores, from the latest succeeded scoring run (customers without a score row in it never
  match a score condition, ``not_in`` included): ``r`` / ``f`` / ``m`` ``in`` [1..5] or
  ``between`` [a, b]; ``rfm_label`` ``in`` / ``not_in``; ``decile`` ``in`` or ``between``;
  ``pareto_class`` ``in``; ``top20`` ``is``.
- behaviour, live from purchases and tickets (completed purchases only; days are calendar
  dates in settings.TIME_ZONE; "in the last N days" means on or after today - N, the same
  measure as days since the last purchase): ``days_since_last_purchase`` ``between`` [a, b],
  ``at_least`` N or ``at_most`` N (customers without purchases never match);
  ``purchases_last_days`` / ``spend_last_days`` ``between`` {"days": N, "min": a, "max": b}
  (either bound may be null; a minimum of 0 or none also matches customers without
  purchases); ``bought_product`` ``any`` / ``none`` {"products": [product ids or SKUs],
  "days": N or null}; ``bought_category`` ``any`` / ``none`` {"categories": [names], "days":
  N or null}; ``ticket_count`` ``between`` {"min": a, "max": b, "open_only": bool}.

- campaigns, from the messages' human events (machine opens and scanner clicks never count):
  ``opened_campaign`` / ``clicked_campaign`` ``is`` {"campaign": campaign id, "days": N or
  null}: a delivered message (status sent) of that campaign with a first human open (click),
  if ``days`` is set on or after today - N; ``not_opened_campaign`` ``is`` the same value: a
  delivered message without a human open (sent on or after today - N if ``days`` is set).
  The column snapshot holds no campaign data: these are asked of SQL (segments.columnar).

The SQL is shaped for a million customers and ten million purchases: every condition is a
column test on the customer or an EXISTS on another table, which PostgreSQL plans as a
semi-join (negated: an anti-join) under AND and as an indexed per-customer probe under OR;
never ``NOT IN (subquery)``, which degrades to rescanning the whole set for every customer
once the set outgrows work_mem. All score conditions of one group become ONE subquery on the
run's score rows (a customer has one row per run, so AND/OR inside that subquery equals
AND/OR of the separate conditions). "At most N days since the last purchase" is "has a
completed purchase on or after the cutoff"; "at least N days" is "has purchases and none on
or after the cutoff". Counts and sums over a window are one GROUP BY ... HAVING joined back
(see ``_counted``). Measured figures: tests/bench/bench_segments.py.

Other apps add fields with ``register_field(RuleField(...))``, with their own value check and
compiler; they then appear in ``field_catalogue()`` and the builder like ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from customers.models import (
    ACTIVE_TICKET_STATUSES,
    Customer,
    Gender,
    Product,
    Purchase,
    PurchaseItem,
    PurchaseStatus,
    SourceChannel,
    SupportTicket,
    Tag,
)
from customers.prefectures import Prefecture
from segments.models import CustomerScore, ParetoClass, RfmLabel, ScoringRun

MAX_DEPTH = 4
MAX_CONDITIONS = 50
MAX_VALUES = 500  # items in one list value: more is a mistake, not a segment
MAX_DAYS = 36500
UNOWNED = "none"

GROUP_OPS = ("and", "or")

OPERATOR_LABELS: dict[str, Promise] = {
    "in": _("is one of"),
    "not_in": _("is not one of"),
    "between": _("between"),
    "at_least": _("at least"),
    "at_most": _("at most"),
    "is": _("is"),
    "within_last_days": _("within the last days"),
    "any": _("any of"),
    "all": _("all of"),
    "none": _("none of"),
}

GROUP_LABELS: dict[str, Promise] = {
    "profile": _("Profile"),
    "scores": _("Scores"),
    "behaviour": _("Behaviour"),
}


class RuleError(Exception):
    """The rules are not valid; ``errors`` lists every problem as {"path", "message"}."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))


class _Report:
    """Collects errors under a path prefix, so nested checks need not know where they are."""

    def __init__(self, errors: list[dict[str, str]], path: str):
        self.errors = errors
        self.path = path

    def __call__(self, message: str, sub: str | int = "") -> None:
        self.errors.append({"path": self._join(sub), "message": str(message)})

    def at(self, sub: str | int) -> _Report:
        return _Report(self.errors, self._join(sub))

    def _join(self, sub: str | int) -> str:
        if sub == "":
            return self.path
        return f"{self.path}.{sub}" if self.path else str(sub)


@dataclass(frozen=True)
class Context:
    """What compiling needs besides the tree: today's local date and the scoring run whose
    scores score conditions read (None: no succeeded run yet, they match nobody)."""

    today: date
    run_id: int | None
    # False below an OR group: conditions there cannot become joins (see ``_counted``).
    joinable: bool = True

    def midnight(self, day: date) -> datetime:
        """The instant a local calendar day starts (purchases are compared as instants so
        the ``purchased_at`` index serves the range)."""
        return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())

    def days_ago(self, days: int) -> datetime:
        return self.midnight(self.today - timedelta(days=days))


Checker = Callable[[str, Any, _Report], Any]
Builder = Callable[[str, Any, Context], Q]


@dataclass(frozen=True)
class RuleField:
    """One field the builder offers. ``check(op, value, report)`` returns the normalised value
    (reporting problems through ``report``); ``build(op, value, context)`` returns a Q on
    ``Customer`` or, for ``on="score"``, on ``CustomerScore`` (combined per group into one
    subquery). ``value_type`` tells the builder which input to show."""

    key: str
    label: Promise
    group: str
    value_type: str
    operators: tuple[str, ...]
    check: Checker
    build: Builder
    on: str = "customer"
    choices: Callable[[], list[tuple[str, str]]] | None = None
    minimum: int | None = None
    maximum: int | None = None
    help_text: Promise | str = ""


FIELDS: dict[str, RuleField] = {}


def register_field(field: RuleField) -> RuleField:
    """Make a field available to rules and to the builder (keys are unique)."""
    if field.key in FIELDS:
        raise ValueError(f"rule field {field.key!r} is already registered")
    FIELDS[field.key] = field
    return field


# --- value checks --------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, report: _Report, sub: str | int, low: int | None, high: int | None):
    if not _is_int(value):
        report(_("Enter a whole number."), sub)
        return None
    if low is not None and value < low:
        report(_("Enter a number of at least %(min)s.") % {"min": low}, sub)
        return None
    if high is not None and value > high:
        report(_("Enter a number of at most %(max)s.") % {"max": high}, sub)
        return None
    return value


def _amount(value: Any, report: _Report, sub: str | int) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        report(_("Enter an amount."), sub)
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        report(_("Enter an amount."), sub)
        return None
    if not amount.is_finite() or amount < 0:
        report(_("Enter an amount of 0 or more."), sub)
        return None
    return amount


def _list(value: Any, report: _Report) -> list | None:
    if not isinstance(value, list) or not value:
        report(_("Choose at least one value."))
        return None
    if len(value) > MAX_VALUES:
        report(_("Choose at most %(max)s values.") % {"max": MAX_VALUES})
        return None
    return value


def _dict(value: Any, report: _Report, allowed: set[str]) -> dict | None:
    if not isinstance(value, dict):
        report(
            _("Expected an object with the keys %(keys)s.") % {"keys": ", ".join(sorted(allowed))}
        )
        return None
    for key in value:
        if key not in allowed:
            report(_("Unknown key."), key)
    return value


def _choice_list(choices: Callable[[], list[tuple[str, str]]]) -> Checker:
    def check(op: str, value: Any, report: _Report) -> list[str] | None:
        items = _list(value, report)
        if items is None:
            return None
        known = {code for code, _label in choices()}
        result = []
        for n, item in enumerate(items):
            if not isinstance(item, str) or item not in known:
                report(_("%(value)s is not one of the choices.") % {"value": _shown(item)}, n)
            elif item not in result:
                result.append(item)
        return result

    return check


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _int_range_check(low: int, high: int) -> Checker:
    """``in`` [ints] or ``between`` [a, b] (``between`` bounds may be null: open-ended)."""

    def check(op: str, value: Any, report: _Report):
        if op == "in":
            items = _list(value, report)
            if items is None:
                return None
            result = [_int(item, report, n, low, high) for n, item in enumerate(items)]
            return sorted({v for v in result if v is not None})
        return _between(value, report, low, high)

    return check


def _between(value: Any, report: _Report, low: int | None, high: int | None):
    if not isinstance(value, list) or len(value) != 2:
        report(_("Expected [minimum, maximum]."))
        return None
    if value[0] is None and value[1] is None:
        report(_("Enter a minimum or a maximum."))
        return None
    bounds = [None if v is None else _int(v, report, n, low, high) for n, v in enumerate(value)]
    if (value[0] is not None and bounds[0] is None) or (value[1] is not None and bounds[1] is None):
        return None
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        report(_("The minimum is larger than the maximum."))
        return None
    return bounds


def _days_check(op: str, value: Any, report: _Report):
    if op == "between":
        return _between(value, report, 0, MAX_DAYS)
    return _int(value, report, "", 0, MAX_DAYS)


def _bool_check(op: str, value: Any, report: _Report):
    if not isinstance(value, bool):
        report(_("Expected true or false."))
        return None
    return value


def _parse_date(value: Any, report: _Report, sub: int) -> date | None:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    report(_("Enter a date as YYYY-MM-DD."), sub)
    return None


def _signup_check(op: str, value: Any, report: _Report):
    if op == "within_last_days":
        return _int(value, report, "", 0, MAX_DAYS)
    if not isinstance(value, list) or len(value) != 2:
        report(_("Expected [first date, last date]."))
        return None
    if value[0] is None and value[1] is None:
        report(_("Enter a first or a last date."))
        return None
    days = [None if v is None else _parse_date(v, report, n) for n, v in enumerate(value)]
    if any(v is not None and d is None for v, d in zip(value, days, strict=True)):
        return None
    if days[0] and days[1] and days[0] > days[1]:
        report(_("The first date is after the last date."))
        return None
    return [d.isoformat() if d else None for d in days]


def _tags_check(op: str, value: Any, report: _Report):
    items = _list(value, report)
    if items is None:
        return None
    names = [item for item in items if isinstance(item, str)]
    known = set(Tag.objects.filter(name__in=names).values_list("name", flat=True))
    result = []
    for n, item in enumerate(items):
        if not isinstance(item, str):
            report(_("Enter a tag name."), n)
        elif item not in known:
            report(_("There is no tag named %(name)s.") % {"name": _shown(item)}, n)
        elif item not in result:
            result.append(item)
    return result


def _owner_check(op: str, value: Any, report: _Report):
    items = _list(value, report)
    if items is None:
        return None
    ids = [item for item in items if _is_int(item)]
    known = set(get_user_model().objects.filter(id__in=ids).values_list("id", flat=True))
    result = []
    for n, item in enumerate(items):
        if item == UNOWNED or (_is_int(item) and item in known):
            if item not in result:
                result.append(item)
        elif _is_int(item):
            report(_("There is no user with the ID %(id)s.") % {"id": item}, n)
        else:
            report(_('Enter a user ID or "none" for customers without an owner.'), n)
    return result


def _window_check(*, amount: bool) -> Checker:
    def check(op: str, value: Any, report: _Report):
        value = _dict(value, report, {"days", "min", "max"})
        if value is None:
            return None
        days = _int(value.get("days"), report, "days", 0, MAX_DAYS)
        read = _amount if amount else (lambda v, r, s: _int(v, r, s, 0, None))
        low = None if value.get("min") is None else read(value["min"], report, "min")
        high = None if value.get("max") is None else read(value["max"], report, "max")
        if value.get("min") is None and value.get("max") is None:
            report(_("Enter a minimum or a maximum."))
            return None
        if low is not None and high is not None and low > high:
            report(_("The minimum is larger than the maximum."))
            return None
        if days is None or (value.get("min") is not None and low is None):
            return None
        if value.get("max") is not None and high is None:
            return None
        if amount:
            return {"days": days, "min": _plain(low), "max": _plain(high)}
        return {"days": days, "min": low, "max": high}

    return check


def _plain(amount: Decimal | None) -> str | None:
    """Amounts are kept as strings in the stored tree: exact, and JSON has no decimals."""
    return None if amount is None else format(amount.normalize(), "f")


def _optional_days(value: dict, report: _Report) -> int | None:
    if value.get("days") is None:
        return None
    return _int(value["days"], report, "days", 0, MAX_DAYS)


def _bought_product_check(op: str, value: Any, report: _Report):
    value = _dict(value, report, {"products", "days"})
    if value is None:
        return None
    items = _list(value.get("products"), report.at("products"))
    days = _optional_days(value, report)
    if items is None:
        return None
    ids = [item for item in items if _is_int(item)]
    skus = [item for item in items if isinstance(item, str)]
    found_ids = set(Product.objects.filter(id__in=ids).values_list("id", flat=True))
    found_skus = set(Product.objects.filter(sku__in=skus).values_list("sku", flat=True))
    products = []
    for n, item in enumerate(items):
        if (_is_int(item) and item in found_ids) or (isinstance(item, str) and item in found_skus):
            if item not in products:
                products.append(item)
        else:
            report(
                _("There is no product with the ID or SKU %(value)s.") % {"value": _shown(item)},
                f"products.{n}",
            )
    return {"products": products, "days": days}


def _bought_category_check(op: str, value: Any, report: _Report):
    value = _dict(value, report, {"categories", "days"})
    if value is None:
        return None
    items = _list(value.get("categories"), report.at("categories"))
    days = _optional_days(value, report)
    if items is None:
        return None
    categories = []
    for n, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            report(_("Enter a category name."), f"categories.{n}")
        elif item not in categories:
            categories.append(item)
    return {"categories": categories, "days": days}


def _ticket_check(op: str, value: Any, report: _Report):
    value = _dict(value, report, {"min", "max", "open_only"})
    if value is None:
        return None
    low = None if value.get("min") is None else _int(value["min"], report, "min", 0, None)
    high = None if value.get("max") is None else _int(value["max"], report, "max", 0, None)
    open_only = value.get("open_only", False)
    if not isinstance(open_only, bool):
        report(_("Expected true or false."), "open_only")
        return None
    if value.get("min") is None and value.get("max") is None:
        report(_("Enter a minimum or a maximum."))
        return None
    if (value.get("min") is not None and low is None) or (
        value.get("max") is not None and high is None
    ):
        return None
    if low is not None and high is not None and low > high:
        report(_("The minimum is larger than the maximum."))
        return None
    return {"min": low, "max": high, "open_only": open_only}


# --- compilers -----------------------------------------------------------------------------

NOBODY = Q(pk__in=[])
# Q() means "no condition", which an OR would drop ("a OR everyone" would become "a").
EVERYONE = Q(pk__isnull=False)


def _campaign_check(op: str, value: Any, report: _Report):
    value = _dict(value, report, {"campaign", "days"})
    if value is None:
        return None
    days = _optional_days(value, report)
    campaign = value.get("campaign")
    if not _is_int(campaign):
        report(_("Choose a campaign."), "campaign")
        return None
    # Everyone who may edit segments may see every campaign (crm/roles.py), so existing is
    # the whole check.
    if not Campaign.objects.filter(pk=campaign).exists():
        report(_("There is no campaign with the ID %(value)s.") % {"value": campaign}, "campaign")
        return None
    return {"campaign": campaign, "days": days}


def _in(column: str) -> Builder:
    def build(op: str, value: Any, ctx: Context) -> Q:
        q = Q(**{f"{column}__in": value})
        return ~q if op == "not_in" else q

    return build


def _equals(column: str) -> Builder:
    return lambda op, value, ctx: Q(**{column: value})


def _range(column: str) -> Builder:
    def build(op: str, value: Any, ctx: Context) -> Q:
        if op == "in":
            return Q(**{f"{column}__in": value})
        q = Q()
        if value[0] is not None:
            q &= Q(**{f"{column}__gte": value[0]})
        if value[1] is not None:
            q &= Q(**{f"{column}__lte": value[1]})
        return q

    return build


def _years_before(day: date, years: int) -> date:
    """The same day ``years`` earlier; 29 February becomes 28 February in common years."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _age(op: str, value: Any, ctx: Context) -> Q:
    # Age >= a  <=>  born on or before the same day a years ago; age <= b  <=>  born after
    # the same day b + 1 years ago. Customers without a birthday fail both tests.
    q = Q(birthday__isnull=False)
    if value[0] is not None:
        q &= Q(birthday__lte=_years_before(ctx.today, value[0]))
    if value[1] is not None:
        q &= Q(birthday__gt=_years_before(ctx.today, value[1] + 1))
    return q


def has(rows: QuerySet, customer_field: str = "customer") -> Q:
    """Customers with at least one of ``rows``: a correlated EXISTS, which PostgreSQL turns
    into a semi-join (or, negated, an anti-join) under AND, and probes by index per customer
    under OR. ``NOT IN (subquery)`` is avoided: once its set outgrows work_mem PostgreSQL
    rescans the whole set for every customer (minutes at a million customers)."""
    return Q(Exists(rows.filter(**{customer_field: OuterRef("pk")})))


def _tags(op: str, value: Any, ctx: Context) -> Q:
    def tagged(names: list[str]) -> Q:
        return has(Customer.tags.through.objects.filter(tag__name__in=names))

    if op == "all":
        q = Q()
        for name in value:
            q &= tagged([name])
        return q
    return ~tagged(value) if op == "none" else tagged(value)


def _owner(op: str, value: Any, ctx: Context) -> Q:
    ids = [v for v in value if v != UNOWNED]
    q = Q(owner_id__in=ids) if ids else NOBODY
    if UNOWNED in value:
        q |= Q(owner__isnull=True)
    return ~q if op == "not_in" else q


def _signup(op: str, value: Any, ctx: Context) -> Q:
    if op == "within_last_days":
        return Q(created_at__gte=ctx.days_ago(value))
    q = Q()
    if value[0] is not None:
        q &= Q(created_at__gte=ctx.midnight(date.fromisoformat(value[0])))
    if value[1] is not None:
        q &= Q(created_at__lt=ctx.midnight(date.fromisoformat(value[1]) + timedelta(days=1)))
    return q


def _completed() -> QuerySet:
    return Purchase.objects.filter(status=PurchaseStatus.COMPLETED).order_by()


def _days_since_last_purchase(op: str, value: Any, ctx: Context) -> Q:
    low, high = (value, None) if op == "at_least" else (None, value)
    if op == "between":
        low, high = value
    # At most `high` days: a purchase on or after today - high. At least `low` days: a
    # purchase at all, and none on or after today - low + 1.
    q = Q()
    if high is not None:
        q &= has(_completed().filter(purchased_at__gte=ctx.days_ago(high)))
    if low is not None:
        if high is None:
            q &= has(_completed())
        if low > 0:
            q &= ~has(_completed().filter(purchased_at__gte=ctx.days_ago(low - 1)))
    return q


def _counted(rows: QuerySet, aggregate, low, high, ctx: Context) -> Q:
    """Customers whose ``aggregate`` (count or sum) over their ``rows`` lies in [low, high];
    a missing or zero minimum also lets in customers without rows (count or sum 0).

    Under AND the positive test is ``id IN (GROUP BY ... HAVING)`` (one hash aggregate, then
    a semi-join) and the negative one an anti-join against it; under OR, where PostgreSQL
    cannot turn them into joins, a per-customer aggregate through the customer index."""
    if not low and high is None:
        return EVERYONE
    if low:
        having = Q(value__gte=low) & (Q(value__lte=high) if high is not None else Q())
    else:
        having = Q(value__gt=high)
    if ctx.joinable:
        grouped = rows.values("customer_id").annotate(value=aggregate).filter(having)
        if low:
            return Q(id__in=grouped.values("customer_id"))
        # NOT EXISTS over a customer semi-joined to the groups: an anti-join PostgreSQL can
        # plan (NOT EXISTS cannot be planned as a join over a GROUP BY directly).
        return ~has(Customer.objects.filter(id__in=grouped.values("customer_id")), "pk")
    per_customer = (
        rows.filter(customer_id=OuterRef("pk"))
        .values("customer_id")
        .annotate(value=aggregate)
        .filter(having)
    )
    return Q(Exists(per_customer)) if low else ~Q(Exists(per_customer))


def _purchases_window(op: str, value: Any, ctx: Context) -> Q:
    rows = _completed().filter(purchased_at__gte=ctx.days_ago(value["days"]))
    return _counted(rows, Count("id"), value["min"], value["max"], ctx)


def _spend_window(op: str, value: Any, ctx: Context) -> Q:
    rows = _completed().filter(purchased_at__gte=ctx.days_ago(value["days"]))
    low = None if value["min"] is None else Decimal(value["min"])
    high = None if value["max"] is None else Decimal(value["max"])
    return _counted(rows, Sum("total"), low, high, ctx)


def _items(value: dict, ctx: Context) -> QuerySet:
    items = PurchaseItem.objects.filter(purchase__status=PurchaseStatus.COMPLETED)
    if value["days"] is not None:
        items = items.filter(purchase__purchased_at__gte=ctx.days_ago(value["days"]))
    return items


def _bought_product(op: str, value: Any, ctx: Context) -> Q:
    ids = [v for v in value["products"] if _is_int(v)]
    skus = [v for v in value["products"] if isinstance(v, str)]
    items = _items(value, ctx).filter(Q(product_id__in=ids) | Q(product__sku__in=skus))
    q = has(items, "purchase__customer")
    return ~q if op == "none" else q


def _bought_category(op: str, value: Any, ctx: Context) -> Q:
    items = _items(value, ctx).filter(product__category__in=value["categories"])
    q = has(items, "purchase__customer")
    return ~q if op == "none" else q


def _ticket_count(op: str, value: Any, ctx: Context) -> Q:
    tickets = SupportTicket.objects.order_by()
    if value["open_only"]:
        tickets = tickets.filter(status__in=ACTIVE_TICKET_STATUSES)
    return _counted(tickets, Count("id"), value["min"], value["max"], ctx)


def _delivered(value: dict) -> QuerySet:
    return Message.objects.filter(campaign_id=value["campaign"], status=MessageStatus.SENT)


def _campaign_event(field: str) -> Builder:
    """Customers with a delivered message of the campaign that has a first human event (the
    drain sets ``first_opened_at`` / ``first_clicked_at`` from human events only)."""

    def build(op: str, value: Any, ctx: Context) -> Q:
        messages = _delivered(value).filter(**{f"{field}__isnull": False})
        if value["days"] is not None:
            messages = messages.filter(**{f"{field}__gte": ctx.days_ago(value["days"])})
        return has(messages)

    return build


def _not_opened_campaign(op: str, value: Any, ctx: Context) -> Q:
    # Received it and did not open it: a positive EXISTS on the unopened delivered messages,
    # not the negation of "opened" (customers the campaign never reached do not match).
    messages = _delivered(value).filter(first_opened_at__isnull=True)
    if value["days"] is not None:
        messages = messages.filter(sent_at__gte=ctx.days_ago(value["days"]))
    return has(messages)


# --- the fields ----------------------------------------------------------------------------


def _month_choices() -> list[tuple[str, str]]:
    return [(str(n), str(n)) for n in range(1, 13)]


def _tag_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in Tag.objects.values_list("name", flat=True)]


def _owner_choices() -> list[tuple[str, str]]:
    users = get_user_model().objects.filter(is_active=True).order_by("username")
    return [(UNOWNED, gettext("No owner"))] + [(str(u.pk), u.get_username()) for u in users]


def _category_choices() -> list[tuple[str, str]]:
    names = (
        Product.objects.exclude(category="")
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()
    )
    return [(name, name) for name in names]


def _campaign_choices() -> list[tuple[str, str]]:
    # Drafts and scheduled campaigns have reached nobody yet: nothing to target.
    campaigns = (
        Campaign.objects.exclude(status__in=(CampaignStatus.DRAFT, CampaignStatus.SCHEDULED))
        .order_by("-created_at", "-id")
        .values_list("pk", "name")[:MAX_VALUES]
    )
    return [(str(pk), name) for pk, name in campaigns]


def _choices(enum) -> Callable[[], list[tuple[str, str]]]:
    return lambda: [(value, str(label)) for value, label in enum.choices]


def _register_builtin_fields() -> None:
    profile, scores, behaviour = "profile", "scores", "behaviour"
    in_ops = ("in", "not_in")
    for key, label, enum in (
        ("gender", _("Gender"), Gender),
        ("prefecture", _("Prefecture"), Prefecture),
        ("channel", _("Source channel"), SourceChannel),
    ):
        register_field(
            RuleField(
                key=key,
                label=label,
                group=profile,
                value_type="choices",
                operators=in_ops,
                check=_choice_list(_choices(enum)),
                build=_in(key),
                choices=_choices(enum),
            )
        )
    register_field(
        RuleField(
            key="age",
            label=_("Age"),
            group=profile,
            value_type="int_range",
            operators=("between",),
            check=lambda op, v, r: _between(v, r, 0, 150),
            build=_age,
            minimum=0,
            maximum=150,
            help_text=_("Whole years today; customers without a birthday never match."),
        )
    )
    register_field(
        RuleField(
            key="birthday_month",
            label=_("Birthday month"),
            group=profile,
            value_type="int_list",
            operators=("in",),
            check=_int_range_check(1, 12),
            build=lambda op, v, ctx: Q(birthday__month__in=v),
            choices=_month_choices,
            minimum=1,
            maximum=12,
        )
    )
    register_field(
        RuleField(
            key="tags",
            label=_("Tags"),
            group=profile,
            value_type="choices",
            operators=("any", "all", "none"),
            check=_tags_check,
            build=_tags,
            choices=_tag_choices,
        )
    )
    register_field(
        RuleField(
            key="owner",
            label=_("Owner"),
            group=profile,
            value_type="choices",
            operators=in_ops,
            check=_owner_check,
            build=_owner,
            choices=_owner_choices,
        )
    )
    register_field(
        RuleField(
            key="email_opt_in",
            label=_("E-mail consent"),
            group=profile,
            value_type="boolean",
            operators=("is",),
            check=_bool_check,
            build=_equals("email_opt_in"),
        )
    )
    register_field(
        RuleField(
            key="signup_date",
            label=_("Registered on"),
            group=profile,
            value_type="date_range",
            operators=("between", "within_last_days"),
            check=_signup_check,
            build=_signup,
            help_text=_("The date the customer was added to the CRM."),
        )
    )
    for key, label in (
        ("r", _("Recency score (R)")),
        ("f", _("Frequency score (F)")),
        ("m", _("Monetary score (M)")),
    ):
        register_field(
            RuleField(
                key=key,
                label=label,
                group=scores,
                value_type="int_range",
                operators=("in", "between"),
                check=_int_range_check(1, 5),
                build=_range(key),
                on="score",
                minimum=1,
                maximum=5,
            )
        )
    register_field(
        RuleField(
            key="rfm_label",
            label=_("RFM label"),
            group=scores,
            value_type="choices",
            operators=in_ops,
            check=_choice_list(_choices(RfmLabel)),
            build=_in("rfm_label"),
            on="score",
            choices=_choices(RfmLabel),
        )
    )
    register_field(
        RuleField(
            key="decile",
            label=_("Decile"),
            group=scores,
            value_type="int_range",
            operators=("in", "between"),
            check=_int_range_check(1, 10),
            build=_range("decile"),
            on="score",
            minimum=1,
            maximum=10,
            help_text=_("1 is the top 10%, by revenue."),
        )
    )
    register_field(
        RuleField(
            key="pareto_class",
            label=_("Pareto class"),
            group=scores,
            value_type="choices",
            operators=("in",),
            check=_choice_list(_choices(ParetoClass)),
            build=_in("pareto_class"),
            on="score",
            choices=_choices(ParetoClass),
        )
    )
    register_field(
        RuleField(
            key="top20",
            label=_("Top 20% by revenue"),
            group=scores,
            value_type="boolean",
            operators=("is",),
            check=_bool_check,
            # Top 20% is deciles 1-2 by definition; testing the decile uses its index.
            build=lambda op, v, ctx: Q(decile__lte=2) if v else Q(decile__gt=2),
            on="score",
        )
    )
    register_field(
        RuleField(
            key="days_since_last_purchase",
            label=_("Days since the last purchase"),
            group=behaviour,
            value_type="days",
            operators=("between", "at_least", "at_most"),
            check=_days_check,
            build=_days_since_last_purchase,
            minimum=0,
            maximum=MAX_DAYS,
            help_text=_("Customers without a purchase never match."),
        )
    )
    register_field(
        RuleField(
            key="purchases_last_days",
            label=_("Purchases in the last days"),
            group=behaviour,
            value_type="window_count",
            operators=("between",),
            check=_window_check(amount=False),
            build=_purchases_window,
            minimum=0,
            maximum=MAX_DAYS,
        )
    )
    register_field(
        RuleField(
            key="spend_last_days",
            label=_("Spend in the last days"),
            group=behaviour,
            value_type="window_amount",
            operators=("between",),
            check=_window_check(amount=True),
            build=_spend_window,
            minimum=0,
            maximum=MAX_DAYS,
        )
    )
    register_field(
        RuleField(
            key="bought_product",
            label=_("Bought a product"),
            group=behaviour,
            value_type="products",
            operators=("any", "none"),
            check=_bought_product_check,
            build=_bought_product,
            help_text=_("Product IDs or SKUs; optionally only in the last days."),
        )
    )
    register_field(
        RuleField(
            key="bought_category",
            label=_("Bought from a category"),
            group=behaviour,
            value_type="categories",
            operators=("any", "none"),
            check=_bought_category_check,
            build=_bought_category,
            choices=_category_choices,
        )
    )
    register_field(
        RuleField(
            key="ticket_count",
            label=_("Support inquiries"),
            group=behaviour,
            value_type="ticket_count",
            operators=("between",),
            check=_ticket_check,
            build=_ticket_count,
            minimum=0,
        )
    )


_register_builtin_fields()


def _register_campaign_fields() -> None:
    for key, label, build, help_text in (
        (
            "opened_campaign",
            _("Opened the campaign"),
            _campaign_event("first_opened_at"),
            _("Opened by the person (machine opens do not count); optionally in the last days."),
        ),
        (
            "clicked_campaign",
            _("Clicked in the campaign"),
            _campaign_event("first_clicked_at"),
            _(
                "A link clicked by the person (link scanners do not count); optionally in the "
                "last days."
            ),
        ),
        (
            "not_opened_campaign",
            _("Did not open the campaign"),
            _not_opened_campaign,
            _("Received it and did not open it; optionally sent in the last days."),
        ),
    ):
        register_field(
            RuleField(
                key=key,
                label=label,
                group="behaviour",
                value_type="campaign",
                operators=("is",),
                check=_campaign_check,
                build=build,
                choices=_campaign_choices,
                help_text=help_text,
            )
        )


_register_campaign_fields()


# --- validation ----------------------------------------------------------------------------


def validate_rules(tree: Any) -> dict:
    """The normalised tree, or ``RuleError`` listing every problem with its path."""
    if tree == {} or tree is None:
        return {"op": "and", "conditions": []}
    errors: list[dict[str, str]] = []
    counter = [0]
    normalised = _validate_group(tree, _Report(errors, ""), 1, counter)
    if counter[0] > MAX_CONDITIONS:
        errors.append(
            {
                "path": "conditions",
                "message": str(
                    _("The rules have %(count)s conditions; at most %(max)s are allowed.")
                    % {"count": counter[0], "max": MAX_CONDITIONS}
                ),
            }
        )
    if errors:
        raise RuleError(errors)
    return normalised


def _validate_group(node: Any, report: _Report, depth: int, counter: list[int]) -> dict | None:
    if not isinstance(node, dict) or "conditions" not in node:
        report(_('Expected a group: {"op": "and" or "or", "conditions": [...]}.'))
        return None
    for key in node:
        if key not in ("op", "conditions"):
            report(_("Unknown key."), key)
    op = node.get("op")
    if op not in GROUP_OPS:
        report(_('Choose "and" or "or".'), "op")
    if depth > MAX_DEPTH:
        report(_("Groups nest at most %(max)s levels deep.") % {"max": MAX_DEPTH})
        return None
    children = node["conditions"]
    if not isinstance(children, list):
        report(_("Expected a list of conditions."), "conditions")
        return None
    result = []
    for n, child in enumerate(children):
        child_report = report.at(f"conditions.{n}")
        if isinstance(child, dict) and "conditions" in child:
            result.append(_validate_group(child, child_report, depth + 1, counter))
        else:
            counter[0] += 1
            result.append(_validate_condition(child, child_report))
    return {"op": op, "conditions": result}


def _validate_condition(node: Any, report: _Report) -> dict | None:
    if not isinstance(node, dict):
        report(_('Expected a condition: {"field": ..., "op": ..., "value": ...}.'))
        return None
    for key in node:
        if key not in ("field", "op", "value"):
            report(_("Unknown key."), key)
    field = FIELDS.get(node.get("field")) if isinstance(node.get("field"), str) else None
    if field is None:
        report(_("Unknown field %(field)s.") % {"field": _shown(node.get("field"))}, "field")
        return None
    op = node.get("op")
    if op not in field.operators:
        report(
            _("%(field)s does not take the operator %(op)s; use one of: %(ops)s.")
            % {"field": field.label, "op": _shown(op), "ops": ", ".join(field.operators)},
            "op",
        )
        return None
    if "value" not in node:
        report(_("Enter a value."), "value")
        return None
    before = len(report.errors)
    value = field.check(op, node["value"], report.at("value"))
    if len(report.errors) > before:
        return None
    return {"field": field.key, "op": op, "value": value}


# --- compiling -----------------------------------------------------------------------------


def compile_rules(tree: Any, *, today: date | None = None, run: ScoringRun | None = None) -> Q:
    """A Q on ``Customer`` for the rules (validated first: raises ``RuleError``). Score
    conditions read ``run`` (default: the latest succeeded run); day-based conditions count
    from ``today`` (default: today's local date)."""
    normalised = validate_rules(tree)
    if run is None:
        run = ScoringRun.objects.latest_succeeded()
    if today is None:
        today = timezone.localdate(timezone=timezone.get_default_timezone())
    ctx = Context(today=today, run_id=run.pk if run else None)
    return _compile_group(normalised, ctx)


def uses_scores(tree: Any) -> bool:
    """Whether any condition reads the scores (their results change with each scoring run)."""
    if not isinstance(tree, dict):
        return False
    if "conditions" in tree:
        return any(uses_scores(child) for child in tree.get("conditions") or [])
    field = FIELDS.get(tree.get("field"))
    return field is not None and field.on == "score"


def _compile_group(group: dict, ctx: Context) -> Q:
    is_and = group["op"] == "and"
    if not is_and and len(group["conditions"]) > 1:
        ctx = replace(ctx, joinable=False)
    parts: list[Q] = []
    score_parts: list[Q] = []
    for child in group["conditions"]:
        if "conditions" in child:
            parts.append(_compile_group(child, ctx))
            continue
        field = FIELDS[child["field"]]
        q = field.build(child["op"], child["value"], ctx)
        (score_parts if field.on == "score" else parts).append(q)
    if score_parts:
        parts.append(_scored(_combine(score_parts, is_and=is_and), ctx))
    if not parts:
        return EVERYONE if is_and else NOBODY
    return _combine(parts, is_and=is_and)


def _combine(parts: list[Q], *, is_and: bool) -> Q:
    combined = parts[0]
    for part in parts[1:]:
        combined = (combined & part) if is_and else (combined | part)
    return combined


def _scored(q: Q, ctx: Context) -> Q:
    """One EXISTS on the run's score rows for all score conditions of a group (a customer
    has one row per run, so AND/OR inside it equals AND/OR of separate tests)."""
    if ctx.run_id is None:
        return NOBODY
    return has(CustomerScore.objects.filter(q, run_id=ctx.run_id))


# --- the builder's catalogue ---------------------------------------------------------------


def field_catalogue() -> list[dict]:
    """What the rule builder shows, in the current language: one dict per field."""
    catalogue = []
    for field in FIELDS.values():
        catalogue.append(
            {
                "key": field.key,
                "label": str(field.label),
                "group": field.group,
                "group_label": str(GROUP_LABELS.get(field.group, field.group)),
                "type": field.value_type,
                "operators": [
                    {"key": op, "label": str(OPERATOR_LABELS.get(op, op))} for op in field.operators
                ],
                "choices": (
                    [{"value": v, "label": label} for v, label in field.choices()]
                    if field.choices
                    else None
                ),
                "min": field.minimum,
                "max": field.maximum,
                "help_text": str(field.help_text),
            }
        )
    return catalogue
