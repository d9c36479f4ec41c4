"""Is a difference between two rates real or chance? The two-proportion z-test, Bonferroni's
correction when the best of several variants is compared with each of the others, the sample
size that would detect a difference, and the verdict in plain words.

The normal approximation is what e-mail tools use and is sound at campaign sizes (it needs a
handful of successes and failures on each side; below that the verdict says "no clear winner"
anyway). Computed with the standard library only (math.erfc, statistics.NormalDist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from django.utils.translation import gettext as _

from crm import number_formats

ALPHA = 0.05
POWER = 0.8
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Proportion:
    """``successes`` out of ``trials``, under a name people read (a variant's label)."""

    label: str
    successes: int
    trials: int

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0


def two_proportion_p_value(a: Proportion, b: Proportion) -> float:
    """Two-sided p-value of the pooled two-proportion z-test; 1.0 when it cannot be computed
    (an empty side, or no variation at all)."""
    if not a.trials or not b.trials:
        return 1.0
    pooled = (a.successes + b.successes) / (a.trials + b.trials)
    variance = pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials)
    if variance <= 0:
        return 1.0
    z = (a.rate - b.rate) / math.sqrt(variance)
    return min(1.0, math.erfc(abs(z) / math.sqrt(2)))


def bonferroni(p_value: float, comparisons: int) -> float:
    """The p-value corrected for ``comparisons`` tests made at once."""
    return min(1.0, p_value * max(1, comparisons))


def sample_size_per_group(
    rate_a: float, rate_b: float, *, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Recipients needed in each group to detect the difference between two rates with a
    two-sided test (the standard formula for two proportions); None for no difference."""
    if rate_a == rate_b:
        return None
    z_alpha = _NORMAL.inv_cdf(1 - alpha / 2)
    z_beta = _NORMAL.inv_cdf(power)
    mean = (rate_a + rate_b) / 2
    numerator = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(
        rate_a * (1 - rate_a) + rate_b * (1 - rate_b)
    )
    return math.ceil(numerator**2 / (rate_a - rate_b) ** 2)


@dataclass(frozen=True)
class Test:
    """The best group against one other."""

    best: Proportion
    other: Proportion
    p_value: float  # corrected for the number of comparisons
    more_needed: int | None  # recipients per group still needed to detect the difference

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


@dataclass(frozen=True)
class Comparison:
    """The best group compared with each of the others on one metric (``metric_name``: a
    translatable noun such as "click rate", kept untranslated until shown)."""

    metric: str
    tests: tuple[Test, ...]

    @property
    def winner(self) -> Proportion | None:
        """The best group if it beats every other one significantly."""
        if self.tests and all(test.significant for test in self.tests):
            return self.tests[0].best
        return None

    def verdicts(self, metric_name: str) -> list[str]:
        return [verdict(test, metric_name) for test in self.tests]


def compare(groups: list[Proportion], *, metric: str) -> Comparison:
    """The group with the highest rate against each of the others (Bonferroni-corrected when
    there are more than two groups). Fewer than two groups: no test."""
    groups = [group for group in groups if group.trials]
    if len(groups) < 2:
        return Comparison(metric, ())
    best = max(groups, key=lambda group: (group.rate, group.trials))
    others = [group for group in groups if group is not best]
    alpha = ALPHA / len(others)
    tests = []
    for other in others:
        p_value = bonferroni(two_proportion_p_value(best, other), len(others))
        needed = sample_size_per_group(best.rate, other.rate, alpha=alpha)
        more = None if needed is None else max(0, needed - min(best.trials, other.trials))
        tests.append(Test(best, other, p_value, more))
    return Comparison(metric, tuple(tests))


def _percent(rate: float) -> str:
    return f"{number_formats.number(rate * 100, 1)}%"


def _p(p_value: float) -> str:
    return "< 0.001" if p_value < 0.001 else f"= {number_formats.number(p_value, 3)}"


def verdict(test: Test, metric_name: str) -> str:
    """One sentence a marketer reads, in the active language."""
    words = {
        "best": test.best.label,
        "other": test.other.label,
        "metric": metric_name,
        "best_rate": _percent(test.best.rate),
        "other_rate": _percent(test.other.rate),
        "p": _p(test.p_value),
    }
    if test.significant:
        return (
            _(
                "%(best)s's %(metric)s (%(best_rate)s) is higher than %(other)s's "
                "(%(other_rate)s); the difference is statistically significant (p %(p)s)."
            )
            % words
        )
    if test.more_needed is None:
        return (
            _("No clear winner: %(best)s and %(other)s have the same %(metric)s (%(best_rate)s).")
            % words
        )
    words["more"] = number_formats.number(test.more_needed, 0, force_grouping=True)
    return (
        _(
            "No clear winner yet between %(best)s (%(best_rate)s) and %(other)s "
            "(%(other_rate)s): the difference could be chance (p %(p)s). About %(more)s more "
            "recipients per variant would be needed to detect it."
        )
        % words
    )
