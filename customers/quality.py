"""Data quality: how complete the profiles are, how many customers each analysis can use,
and which records are probably the same person.

Incomplete data makes analysis useless (the articles' warning), so this shows what is
missing. Everything is set-based SQL: one aggregate query for every fill rate and
profile-based share, one semi-join for the purchase-based share, and per duplicate rule one
GROUP BY plus an indexed lookup of the few shared values; Python only sees the duplicates.
At a million customers that still takes seconds, so pages show cached figures (see
``latest_summary``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    Func,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Concat, Lower
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from customers.models import Customer, Gender, Purchase, PurchaseStatus

# Duplicate groups per page, on the page and in the API.
GROUPS_PER_PAGE = 20


def _label(name: str) -> Promise:
    return Customer._meta.get_field(name).verbose_name


@dataclass(frozen=True)
class ProfileField:
    key: str
    label: Promise
    filled: Q


# What counts as "filled" for each profile field shown on the data quality page.
PROFILE_FIELDS: list[ProfileField] = [
    *(
        ProfileField(name, _label(name), ~Q(**{name: ""}))
        for name in (
            "family_name",
            "given_name",
            "family_name_kana",
            "given_name_kana",
            "email",
            "phone",
        )
    ),
    ProfileField("birthday", _label("birthday"), Q(birthday__isnull=False)),
    # "Prefer not to say" is an answer, so the field is filled (see the gender share below).
    ProfileField("gender", _label("gender"), ~Q(gender="")),
    *(
        ProfileField(name, _label(name), ~Q(**{name: ""}))
        for name in ("prefecture", "postal_code", "address", "channel")
    ),
    ProfileField("sns_accounts", _label("sns_accounts"), ~Q(sns_accounts={})),
    # A consent decision either way (the legal record exists), not only opt-ins.
    ProfileField("email_consent", _("e-mail consent recorded"), Q(email_opt_in_at__isnull=False)),
    ProfileField("owner", _label("owner"), Q(owner__isnull=False)),
]


@dataclass(frozen=True)
class Use:
    key: str
    label: Promise
    why: Promise
    usable: Q | None  # None: decided from purchases, not from the profile


USES: list[Use] = [
    Use(
        "rfm",
        _("RFM, decile and LTV analysis"),
        _(
            "Scores are computed from completed purchases: customers without one cannot be "
            "scored, ranked or counted in LTV."
        ),
        None,
    ),
    Use(
        "birthday",
        _("Birthday campaigns and age segments"),
        _("Birthday campaigns can only reach customers with a birthday, and age needs it too."),
        Q(birthday__isnull=False),
    ),
    Use(
        "email_campaigns",
        _("E-mail campaigns"),
        _("Only customers who consented to e-mail and have an address can receive campaigns."),
        Q(email_opt_in=True) & ~Q(email=""),
    ),
    Use(
        "area",
        _("Area analysis"),
        _("Customers without a prefecture are missing from every regional figure."),
        ~Q(prefecture=""),
    ),
    Use(
        "gender",
        _("Gender analysis"),
        _(
            "Customers with no gender, or who preferred not to say, are left out of "
            "segments by gender."
        ),
        ~Q(gender="") & ~Q(gender=Gender.UNKNOWN),
    ),
]


@dataclass(frozen=True)
class Rate:
    key: str
    label: Promise
    count: int
    total: int
    why: Promise | str = ""

    @property
    def share(self) -> float:
        """0..1 (0 when there are no customers)."""
        return self.count / self.total if self.total else 0.0

    @property
    def percent(self) -> float:
        return 100 * self.share

    @property
    def missing(self) -> int:
        return self.total - self.count


@dataclass(frozen=True)
class QualitySummary:
    total: int
    fields: list[Rate]
    uses: list[Rate]


def _scope(customers: QuerySet | None) -> QuerySet:
    # Erased customers are blank on purpose: counting them would report a problem that is not.
    return (Customer.objects.all() if customers is None else customers).filter(
        erased_at__isnull=True
    )


def profile_counts(customers: QuerySet | None = None) -> dict[str, int]:
    """One aggregate query: ``total``, ``field_<key>`` per profile field, ``use_<key>`` per
    profile-based use."""
    return _scope(customers).aggregate(
        total=Count("pk"),
        **{f"field_{f.key}": Count("pk", filter=f.filled) for f in PROFILE_FIELDS},
        **{f"use_{u.key}": Count("pk", filter=u.usable) for u in USES if u.usable is not None},
    )


def count_with_completed_purchase(customers: QuerySet | None = None) -> int:
    """Customers RFM can score: one semi-join of customers and completed purchases."""
    completed = Purchase.objects.completed().filter(customer=OuterRef("pk"))
    return _scope(customers).filter(Exists(completed)).count()


def quality_counts(customers: QuerySet | None = None) -> dict[str, int]:
    """Every figure of the summary, as counts (two queries)."""
    counts = profile_counts(customers)
    counts["use_rfm"] = count_with_completed_purchase(customers)
    return counts


def quality_summary(customers: QuerySet | None = None) -> QualitySummary:
    """Fill rate of each profile field and the share of customers each analysis can use."""
    return _summary(quality_counts(customers))


def _summary(counts: dict[str, int]) -> QualitySummary:
    total = counts["total"]
    return QualitySummary(
        total=total,
        fields=[Rate(f.key, f.label, counts[f"field_{f.key}"], total) for f in PROFILE_FIELDS],
        uses=[Rate(u.key, u.label, counts[f"use_{u.key}"], total, u.why) for u in USES],
    )


# Duplicate rules: why two records are probably the same person.
RULE_EMAIL = "email"
RULE_PHONE = "phone"
RULE_KANA_BIRTHDAY = "kana_birthday"
RULE_LABELS = {
    RULE_EMAIL: _("Same e-mail"),
    RULE_PHONE: _("Same phone"),
    RULE_KANA_BIRTHDAY: _("Same kana name and birthday"),
}


@dataclass
class DuplicateGroup:
    """Customers that one or more rules say are probably the same person."""

    customer_ids: tuple[int, ...]
    rules: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    customers: list[Customer] = field(default_factory=list)  # see attach_customers

    @property
    def reasons(self) -> list[str]:
        return [str(RULE_LABELS[rule]) for rule in self.rules]

    @property
    def matches(self) -> list[tuple[str, str]]:
        """(reason, shared value) per rule, e.g. ("Same phone", "09012345678")."""
        return [(str(RULE_LABELS[rule]), self.keys[rule]) for rule in self.rules]


@dataclass(frozen=True)
class DuplicateRule:
    key: str
    value: Func | F  # the value two records share
    present: Q  # records that have one


DUPLICATE_RULES = [
    # Lower(email) is the indexed expression (customer_email_lower_idx), so matches are found
    # through the index.
    DuplicateRule(RULE_EMAIL, Lower("email"), ~Q(email="")),
    DuplicateRule(RULE_PHONE, F("phone"), ~Q(phone="")),
    DuplicateRule(
        RULE_KANA_BIRTHDAY,
        Concat(
            "family_name_kana",
            Value(" "),
            "given_name_kana",
            Value(" "),
            Cast("birthday", CharField()),  # YYYY-MM-DD (PostgreSQL's default DateStyle)
            output_field=CharField(),
        ),
        ~Q(family_name_kana="") & ~Q(given_name_kana="") & Q(birthday__isnull=False),
    ),
]


def rule_matches(rule: DuplicateRule, customers: QuerySet) -> dict[str, list[int]]:
    """Shared value -> ids of the customers sharing it, for one rule.

    Two steps, because the shared values are few: a GROUP BY finds them, then an IN on those
    values finds their customers (through the index for e-mail and phone), instead of joining
    the whole table to the aggregate. Erasure blanks every value the rules compare, so the
    GROUP BY needs no erased_at filter and phone is counted from its index alone.
    """
    present = customers.filter(rule.present).annotate(shared=rule.value)
    shared = list(
        present.values("shared")
        .annotate(n=Count("*"))
        .filter(n__gt=1)
        .order_by()
        .values_list("shared", flat=True)
    )
    members: dict[str, list[int]] = {}
    scope = _scope(present)
    # One query on PostgreSQL; batches where the backend limits query parameters (SQLite).
    batch = connections[customers.db].features.max_query_params or len(shared) or 1
    for start in range(0, len(shared), batch):
        chunk = shared[start : start + batch]
        for pk, value in scope.filter(shared__in=chunk).values_list("pk", "shared"):
            members.setdefault(value, []).append(pk)
    return {value: ids for value, ids in members.items() if len(ids) > 1}


def duplicate_groups(customers: QuerySet | None = None) -> list[DuplicateGroup]:
    """Groups of probable duplicates, oldest record first; a set of records that several
    rules match is one group listing every reason."""
    scope = Customer.objects.all() if customers is None else customers
    by_members: dict[tuple[int, ...], DuplicateGroup] = {}
    for rule in DUPLICATE_RULES:
        for value, ids in rule_matches(rule, scope).items():
            ids_key = tuple(sorted(ids))
            group = by_members.setdefault(ids_key, DuplicateGroup(customer_ids=ids_key))
            group.rules.append(rule.key)
            group.keys[rule.key] = value
    return sorted(by_members.values(), key=lambda group: group.customer_ids)


def with_purchase_stats(customers: QuerySet) -> QuerySet:
    """``customers`` with ``purchase_count``, ``spend`` and ``last_purchase_at`` (completed
    purchases only), to help choose which duplicate to keep."""
    completed = Q(purchases__status=PurchaseStatus.COMPLETED)
    return customers.annotate(
        purchase_count=Count("purchases", filter=completed),
        spend=Sum("purchases__total", filter=completed),
        last_purchase_at=Max("purchases__purchased_at", filter=completed),
    )


def attach_customers(groups: list[DuplicateGroup], customers: QuerySet) -> list[DuplicateGroup]:
    """Load the records of ``groups`` (one page of them) side by side, with purchase stats,
    in one query; ``customers`` scopes what the user may see.

    Returns the groups that still have two records or more: since the groups were found,
    some records may have been merged, erased or deleted.
    """
    ids = [pk for group in groups for pk in group.customer_ids]
    by_id = with_purchase_stats(_scope(customers).filter(pk__in=ids)).in_bulk()
    for group in groups:
        group.customers = [by_id[pk] for pk in group.customer_ids if pk in by_id]
    return [group for group in groups if len(group.customers) > 1]


# --- Cached figures -----------------------------------------------------------------------------
#
# At a million customers and ten million purchases the figures take seconds to compute
# (figures: tests/bench/bench_quality.py), and they change slowly, so the pages show the latest
# computation, made at most CACHE_SECONDS ago, with its time and a way to recompute it.

CACHE_SECONDS = 60 * 60


def _cached(name: str, customers: QuerySet | None, compute, refresh: bool):
    """(computed_at, compute(customers)), from the cache unless ``refresh``; the cache key is
    the scope's SQL, so differently scoped users never share figures."""
    scope = Customer.objects.all() if customers is None else customers
    try:
        sql = str(scope.query)
    except EmptyResultSet:  # a scope that can see nothing: nothing worth caching
        return timezone.now(), compute(scope)
    key = f"customers:quality:{name}:{hashlib.sha256(sql.encode()).hexdigest()}"
    hit = None if refresh else cache.get(key)
    if hit is None:
        hit = (timezone.now(), compute(scope))
        cache.set(key, hit, CACHE_SECONDS)
    return hit


def latest_summary(
    customers: QuerySet | None = None, *, refresh: bool = False
) -> tuple[QualitySummary, datetime]:
    """``quality_summary`` as of the returned time (see CACHE_SECONDS)."""
    computed_at, counts = _cached("summary", customers, quality_counts, refresh)
    return _summary(counts), computed_at


def latest_duplicate_groups(
    customers: QuerySet | None = None, *, refresh: bool = False
) -> tuple[list[DuplicateGroup], datetime]:
    """``duplicate_groups`` as of the returned time (see CACHE_SECONDS); use
    ``attach_customers`` to leave out records merged or erased since."""

    def compute(scope: QuerySet) -> list[tuple]:
        return [(g.customer_ids, g.rules, g.keys) for g in duplicate_groups(scope)]

    computed_at, rows = _cached("duplicates", customers, compute, refresh)
    groups = [DuplicateGroup(ids, list(rules), dict(keys)) for ids, rules, keys in rows]
    return groups, computed_at


def refresh_cached_figures(customers: QuerySet | None = None) -> None:
    """Recompute the cached figures (for a periodic task, so pages never wait for them)."""
    latest_summary(customers, refresh=True)
    latest_duplicate_groups(customers, refresh=True)
