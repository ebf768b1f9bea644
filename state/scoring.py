"""RFM scoring: turn (last purchase, order count, spend) into 1..5 scores.

Two modes share one ``Scorer`` protocol so the stream processor does not care which is active:

* ``ThresholdScorer`` uses fixed, configured bounds. A customer's F and M only move when an
  event arrives, and R only decays with time at known instants, so the periodic rescoring job
  can index customers by ``next_recency_change_ms`` and touch only those whose R can move.
* ``QuintileScorer`` ranks customers against the whole population. Any event can move the cut
  values, so it offers no decay instant and the periodic job rescans everyone each pass.

Scoring runs for thousands of customers per batch, so each score is three ``bisect`` calls on
small tuples that are built once per scorer.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Protocol

import orjson

from state.model import MS_PER_DAY, Scores, recency_days

Cuts = tuple[int, int, int, int]


class Scorer(Protocol):
    """What the stream processor and the periodic rescoring job need from a scoring mode."""

    def score(self, last_ms: int, orders: int, spend_minor: int, as_of_ms: int) -> Scores: ...

    def next_recency_change_ms(self, last_ms: int, as_of_ms: int) -> int | None: ...


def _check_cuts(field: str, value: object, *, strict: bool) -> Cuts:
    # Tuples only: the dataclasses are hashable and compared by value, and a list would make
    # two equal configurations compare unequal after a JSON round trip.
    if not isinstance(value, tuple) or len(value) != 4:
        raise ValueError(f"{field} must be a tuple of 4 integers, got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"{field} must contain only integers, got {item!r}")
    for lo, hi in pairwise(value):
        if hi < lo or (strict and hi == lo):
            order = "strictly increasing" if strict else "non-decreasing"
            raise ValueError(f"{field} must be {order}, got {value!r}")
    return (value[0], value[1], value[2], value[3])


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Fixed score bounds; the defaults are the project's documented scoring table.

    ``recency_days`` are inclusive upper bounds for R=5,4,3,2 (more days -> 1); ``frequency``
    and ``monetary_minor`` are inclusive lower bounds for F/M=2,3,4,5 (fewer -> 1). Bounds are
    strictly increasing so that every score level is reachable.
    """

    recency_days: Cuts = (30, 60, 90, 120)
    frequency: Cuts = (2, 4, 7, 10)
    monetary_minor: Cuts = (10_000, 40_000, 70_000, 100_000)

    def __post_init__(self) -> None:
        for field in ("recency_days", "frequency", "monetary_minor"):
            cuts = _check_cuts(field, getattr(self, field), strict=True)
            if cuts[0] < 0:
                raise ValueError(f"{field} must be non-negative, got {cuts!r}")

    @classmethod
    def from_major_units(
        cls,
        recency_days: Sequence[int],
        frequency: Sequence[int],
        monetary: Sequence[str | int | Decimal],
        exponent: int,
    ) -> Thresholds:
        """Build thresholds from human-written amounts such as ``"100.00"``.

        Configuration speaks in major units, but all stored money is integer minor units; the
        conversion is exact so a bound never lands a minor unit off because of binary floats.
        """
        if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 0:
            raise ValueError(f"currency exponent must be a non-negative integer, got {exponent!r}")
        minor = tuple(_to_minor(amount, exponent) for amount in monetary)
        return cls(
            recency_days=_check_cuts("recency_days", tuple(recency_days), strict=True),
            frequency=_check_cuts("frequency", tuple(frequency), strict=True),
            monetary_minor=_check_cuts("monetary", minor, strict=True),
        )


def _to_minor(amount: str | int | Decimal, exponent: int) -> int:
    """Scale a major-unit amount to minor units with integer arithmetic only.

    Trailing zeros beyond the exponent are accepted ("100.000" is 10000 cents); a non-zero
    digit beyond it is rejected because no minor-unit bound can represent it.
    """
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise ValueError(f"monetary amount must be a string, integer or Decimal, got {amount!r}")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"monetary amount {amount!r} is not a decimal number") from None
    sign, digits, exp = value.as_tuple()
    if not isinstance(exp, int):  # NaN and infinities carry a letter instead of an exponent
        raise ValueError(f"monetary amount {amount!r} is not a finite number")
    coefficient = int("".join(map(str, digits)))
    shift = exp + exponent
    scaled: int
    if shift >= 0:
        scaled = coefficient * 10**shift
    else:
        scaled, rest = divmod(coefficient, 10**-shift)
        if rest:
            raise ValueError(
                f"monetary amount {amount!r} has more decimals than the currency exponent "
                f"{exponent}"
            )
    return -scaled if sign else scaled


class ThresholdScorer:
    """Scores against fixed ``Thresholds``; R decays at instants known in advance."""

    __slots__ = ("_frequency", "_monetary", "_recency", "thresholds")

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds if thresholds is not None else Thresholds()
        self._recency = self.thresholds.recency_days
        self._frequency = self.thresholds.frequency
        self._monetary = self.thresholds.monetary_minor

    def score(self, last_ms: int, orders: int, spend_minor: int, as_of_ms: int) -> Scores:
        days = recency_days(last_ms, as_of_ms)
        return Scores(
            r=5 - bisect_left(self._recency, days),
            f=1 + bisect_right(self._frequency, orders),
            m=1 + bisect_right(self._monetary, spend_minor),
            recency_days=days,
        )

    def next_recency_change_ms(self, last_ms: int, as_of_ms: int) -> int | None:
        """The smallest ``as_of`` at which R is lower than it is at ``as_of_ms``.

        R only changes when whole days cross a bound: it holds while ``days <= bound`` and
        drops the instant ``days`` reaches ``bound + 1``, i.e. at ``last + (bound+1) days``.
        Returns None when R is already 1, as it can fall no further.
        """
        level = bisect_left(self._recency, recency_days(last_ms, as_of_ms))
        if level >= len(self._recency):
            return None
        return last_ms + (self._recency[level] + 1) * MS_PER_DAY


def quintile_cuts(counts: Mapping[int, int]) -> Cuts:
    """Cut k is the value at rank ceil(k*N/5) - 1 of the N values, so that ``#{cuts < x}``
    equals ``floor(5 * #{v < x} / N)``: a value scores by where its first occurrence falls.
    The population comes as value -> how many have it (what Redis counts,
    state/population.py), which walks the distinct values instead of sorting every one."""
    n = sum(counts.values())
    ranks = [-(-k * n // 5) - 1 for k in range(1, 5)]
    cuts: list[int] = []
    below = 0  # values smaller than the current one
    for value in sorted(counts):
        below += counts[value]
        while len(cuts) < 4 and ranks[len(cuts)] < below:
            cuts.append(value)
    return (cuts[0], cuts[1], cuts[2], cuts[3])


_QUINTILE_FIELDS = ("recency", "frequency", "monetary")


@dataclass(frozen=True, slots=True)
class QuintileBoundaries:
    """Population cut values: a value scores ``1 + #{cuts < value}``.

    That is ``1 + floor(5 * #{population values below it} / N)``: equal values always score
    equally, N distinct values split into five groups of N/5, and a large tie (say 70% of
    customers with one order) gets the score of where the tie starts (F=1), not where it
    ends; ties going up would put one-time buyers among the frequent ones.

    ``recency`` is stored NEGATED (cuts over ``-days``), because fewer days is better; that
    keeps one rule, "higher is better", for all three fields. ``recency == (-90, -60, ...)``
    means "fewer than 90 days scores at least 2".
    """

    recency: Cuts
    frequency: Cuts
    monetary: Cuts

    def __post_init__(self) -> None:
        for field in _QUINTILE_FIELDS:
            _check_cuts(field, getattr(self, field), strict=False)

    @classmethod
    def from_population(
        cls, recency_days: Sequence[int], orders: Sequence[int], spend_minor: Sequence[int]
    ) -> QuintileBoundaries:
        """Cut values for one population; the three sequences describe the same customers.

        An empty population has no quintiles; callers decide what that means for them.
        """
        n = len(recency_days)
        if n == 0:
            raise ValueError("cannot compute quintile boundaries of an empty population")
        if len(orders) != n or len(spend_minor) != n:
            raise ValueError(
                "recency_days, orders and spend_minor must have the same length, got "
                f"{n}, {len(orders)}, {len(spend_minor)}"
            )
        return cls.from_counts(Counter(recency_days), Counter(orders), Counter(spend_minor))

    @classmethod
    def from_counts(
        cls,
        recency_days: Mapping[int, int],
        orders: Mapping[int, int],
        spend_minor: Mapping[int, int],
    ) -> QuintileBoundaries:
        """As ``from_population``, the population given as value -> how many customers."""
        fields = (recency_days, orders, spend_minor)
        if any(n <= 0 for counts in fields for n in counts.values()):
            raise ValueError("a population's counts must be positive")
        sizes = {sum(counts.values()) for counts in fields}
        if sizes == {0}:
            raise ValueError("cannot compute quintile boundaries of an empty population")
        if len(sizes) != 1:
            raise ValueError(f"recency, orders and spend count {sorted(sizes)} customers")
        return cls(
            recency=quintile_cuts({-days: n for days, n in recency_days.items()}),
            frequency=quintile_cuts(orders),
            monetary=quintile_cuts(spend_minor),
        )

    def to_json(self) -> bytes:
        """Serialise so one pass can hand its boundaries to the next through Redis."""
        return orjson.dumps({field: list(getattr(self, field)) for field in _QUINTILE_FIELDS})

    @classmethod
    def from_json(cls, data: bytes) -> QuintileBoundaries:
        """Parse ``to_json`` output; anything else raises ValueError rather than misscoring."""
        decoded = orjson.loads(data)  # JSONDecodeError is a ValueError
        if not isinstance(decoded, dict) or set(decoded) != set(_QUINTILE_FIELDS):
            raise ValueError(
                f"quintile boundaries must be an object with keys {list(_QUINTILE_FIELDS)}, "
                f"got {decoded!r}"
            )
        cuts: dict[str, Cuts] = {}
        for key in _QUINTILE_FIELDS:
            value = decoded[key]
            if not isinstance(value, list):
                raise ValueError(f"{key} must be a list of 4 integers, got {value!r}")
            cuts[key] = _check_cuts(key, tuple(value), strict=False)
        return cls(recency=cuts["recency"], frequency=cuts["frequency"], monetary=cuts["monetary"])


class QuintileScorer:
    """Scores relative to a population snapshot taken by the previous rescoring pass."""

    __slots__ = ("_frequency", "_monetary", "_recency", "boundaries")

    def __init__(self, boundaries: QuintileBoundaries) -> None:
        self.boundaries = boundaries
        self._recency = boundaries.recency
        self._frequency = boundaries.frequency
        self._monetary = boundaries.monetary

    def score(self, last_ms: int, orders: int, spend_minor: int, as_of_ms: int) -> Scores:
        days = recency_days(last_ms, as_of_ms)
        return Scores(
            r=1 + bisect_left(self._recency, -days),
            f=1 + bisect_left(self._frequency, orders),
            m=1 + bisect_left(self._monetary, spend_minor),
            recency_days=days,
        )

    def next_recency_change_ms(self, last_ms: int, as_of_ms: int) -> int | None:
        """Always None: boundaries move with the population, so every pass rescans everyone."""
        return None
