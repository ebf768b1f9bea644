"""Scoring: the default table at every boundary, decay instants, quintile properties."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.model import MS_PER_DAY
from state.scoring import (
    QuintileBoundaries,
    QuintileScorer,
    Scorer,
    Thresholds,
    ThresholdScorer,
    quintile_cuts,
)

AS_OF = 1_700_000_000_000  # 2023-11-14T22:13:20Z
DEFAULT = ThresholdScorer()


def _days_ago(days: int) -> int:
    return AS_OF - days * MS_PER_DAY


@pytest.mark.parametrize(
    ("days", "r"),
    [(0, 5), (30, 5), (31, 4), (60, 4), (61, 3), (90, 3), (91, 2), (120, 2), (121, 1), (5000, 1)],
)
def test_default_recency_boundaries(days: int, r: int) -> None:
    scores = DEFAULT.score(_days_ago(days), 1, 0, AS_OF)
    assert (scores.r, scores.recency_days) == (r, days)


def test_recency_counts_whole_days_only() -> None:
    # 30 days and 23:59:59.999 is still 30 whole days.
    assert DEFAULT.score(AS_OF - 31 * MS_PER_DAY + 1, 1, 0, AS_OF).r == 5
    assert DEFAULT.score(AS_OF - 31 * MS_PER_DAY, 1, 0, AS_OF).r == 4


def test_purchase_after_as_of_counts_as_today() -> None:
    scores = DEFAULT.score(AS_OF + 5 * MS_PER_DAY, 1, 0, AS_OF)
    assert (scores.r, scores.recency_days) == (5, 0)


@pytest.mark.parametrize(
    ("orders", "f"),
    [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (6, 3), (7, 4), (9, 4), (10, 5), (1000, 5)],
)
def test_default_frequency_boundaries(orders: int, f: int) -> None:
    assert DEFAULT.score(AS_OF, orders, 0, AS_OF).f == f


@pytest.mark.parametrize(
    ("spend", "m"),
    [
        (-500, 1),
        (0, 1),
        (9_999, 1),
        (10_000, 2),
        (39_999, 2),
        (40_000, 3),
        (69_999, 3),
        (70_000, 4),
        (99_999, 4),
        (100_000, 5),
        (10**12, 5),
    ],
)
def test_default_monetary_boundaries(spend: int, m: int) -> None:
    assert DEFAULT.score(AS_OF, 1, spend, AS_OF).m == m


def test_default_next_recency_change() -> None:
    last = _days_ago(3)
    assert DEFAULT.next_recency_change_ms(last, AS_OF) == last + 31 * MS_PER_DAY
    assert DEFAULT.next_recency_change_ms(last, last + 31 * MS_PER_DAY) == last + 61 * MS_PER_DAY
    assert DEFAULT.next_recency_change_ms(last, last + 120 * MS_PER_DAY) == last + 121 * MS_PER_DAY
    assert DEFAULT.next_recency_change_ms(last, last + 121 * MS_PER_DAY) is None


recency_cuts = st.lists(
    st.integers(min_value=0, max_value=400), min_size=4, max_size=4, unique=True
).map(lambda xs: tuple(sorted(xs)))


@given(
    cuts=recency_cuts,
    last_ms=st.integers(min_value=0, max_value=4_000_000_000_000),
    offset_ms=st.integers(min_value=-5 * MS_PER_DAY, max_value=500 * MS_PER_DAY),
)
def test_next_recency_change_is_exact(
    cuts: tuple[int, int, int, int], last_ms: int, offset_ms: int
) -> None:
    scorer = ThresholdScorer(Thresholds(recency_days=cuts))
    as_of = last_ms + offset_ms
    r_now = scorer.score(last_ms, 1, 0, as_of).r
    change = scorer.next_recency_change_ms(last_ms, as_of)
    if change is None:
        assert r_now == 1
        assert scorer.score(last_ms, 1, 0, as_of + 10_000 * MS_PER_DAY).r == 1
        return
    assert change > as_of
    assert scorer.score(last_ms, 1, 0, change).r < r_now
    assert scorer.score(last_ms, 1, 0, change - 1).r == r_now


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"recency_days": (30, 30, 90, 120)}, "recency_days"),
        ({"recency_days": (-1, 60, 90, 120)}, "recency_days"),
        ({"frequency": (2, 4, 3, 10)}, "frequency"),
        ({"frequency": (2, 4, 7)}, "frequency"),
        ({"monetary_minor": (1, 2, 3, 2.5)}, "monetary_minor"),
        ({"monetary_minor": [1, 2, 3, 4]}, "monetary_minor"),
        ({"monetary_minor": (-10, 2, 3, 4)}, "monetary_minor"),
    ],
)
def test_threshold_validation_names_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Thresholds(**kwargs)  # type: ignore[arg-type]


def test_from_major_units_is_exact() -> None:
    t = Thresholds.from_major_units(
        [30, 60, 90, 120], [2, 4, 7, 10], ["100.00", 400, Decimal("700.01"), "1000.000"], 2
    )
    assert t.monetary_minor == (10_000, 40_000, 70_001, 100_000)
    assert t == Thresholds(monetary_minor=(10_000, 40_000, 70_001, 100_000))
    yen = Thresholds.from_major_units((30, 60, 90, 120), (2, 4, 7, 10), ["1", "2", "3", "4"], 0)
    assert yen.monetary_minor == (1, 2, 3, 4)
    dinar = Thresholds.from_major_units(
        (30, 60, 90, 120), (2, 4, 7, 10), ["0.001", "1", "2", "3"], 3
    )
    assert dinar.monetary_minor == (1, 1000, 2000, 3000)


@pytest.mark.parametrize(
    ("monetary", "exponent", "match"),
    [
        (["100.001", "400", "700", "1000"], 2, "more decimals"),
        (["1.5", "400", "700", "1000"], 0, "more decimals"),
        (["abc", "400", "700", "1000"], 2, "not a decimal"),
        (["NaN", "400", "700", "1000"], 2, "finite"),
        (["Infinity", "400", "700", "1000"], 2, "finite"),
        ([100.0, "400", "700", "1000"], 2, "string, integer or Decimal"),
        (["100", "400", "700"], 2, "monetary"),
        (["100", "100", "700", "1000"], 2, "increasing"),
        (["-1", "400", "700", "1000"], 2, "non-negative"),
        (["100", "400", "700", "1000"], -1, "exponent"),
    ],
)
def test_from_major_units_rejects(monetary: list[object], exponent: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Thresholds.from_major_units((30, 60, 90, 120), (2, 4, 7, 10), monetary, exponent)  # type: ignore[arg-type]


# --- quintiles -------------------------------------------------------------------------------

values = st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=200)


def _quintile_scores(population: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Score every member of a population on each axis, using it for all three axes."""
    scorer = QuintileScorer(QuintileBoundaries.from_population(population, population, population))
    scored = [scorer.score(_days_ago(v), v, v, AS_OF) for v in population]
    return [s.r for s in scored], [s.f for s in scored], [s.m for s in scored]


@given(values)
def test_quintile_scores_equal_for_equal_values_and_monotone(population: list[int]) -> None:
    r, f, m = _quintile_scores(population)
    for axis, higher_is_better in ((r, False), (f, True), (m, True)):
        assert all(1 <= s <= 5 for s in axis)
        by_value = dict(zip(population, axis, strict=True))
        assert all(by_value[v] == s for v, s in zip(population, axis, strict=True))
        ordered = [by_value[v] for v in sorted(by_value, reverse=not higher_is_better)]
        assert ordered == sorted(ordered)


@given(
    st.integers(min_value=1, max_value=40).flatmap(lambda k: st.permutations(list(range(5 * k))))
)
def test_quintile_distinct_values_split_evenly(population: list[int]) -> None:
    r, f, m = _quintile_scores(population)
    fifth = len(population) // 5
    for axis in (r, f, m):
        assert Counter(axis) == {score: fifth for score in range(1, 6)}


def test_quintile_small_populations() -> None:
    r, f, m = _quintile_scores([1, 2, 3, 4, 5])
    assert f == m == [1, 2, 3, 4, 5]
    assert r == [5, 4, 3, 2, 1]  # fewer days is better
    # a tie scores where it starts: nobody is below a lone customer or an all-equal population
    assert _quintile_scores([7])[1] == [1]
    assert _quintile_scores([3, 3, 3, 3])[1] == [1, 1, 1, 1]
    # 70% one-time buyers stay F=1; the few repeat buyers rank above them
    f = _quintile_scores([1] * 7 + [2, 3, 5])[1]
    assert f == [1] * 7 + [4, 5, 5]


def test_quintile_recency_cuts_are_negated() -> None:
    b = QuintileBoundaries.from_population([10, 20, 30, 40, 50], [1] * 5, [1] * 5)
    assert b.recency == (-50, -40, -30, -20)


def test_quintile_scorer_has_no_decay_instant() -> None:
    scorer = QuintileScorer(QuintileBoundaries.from_population([1], [1], [1]))
    assert scorer.next_recency_change_ms(_days_ago(10), AS_OF) is None


def test_quintile_json_round_trip() -> None:
    b = QuintileBoundaries.from_population([5, 80, 3, 200, 40, 7], [1, 2, 9, 3, 1, 4], [10**11] * 6)
    assert QuintileBoundaries.from_json(b.to_json()) == b


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"recency": [0, 0, 0, 0], "frequency": [0, 0, 0, 0]}',
        b'{"recency": [0,0,0,0], "frequency": [0,0,0,0], "monetary": [0,0,0,0], "x": 1}',
        b'{"recency": [0, 0, 0], "frequency": [0, 0, 0, 0], "monetary": [0, 0, 0, 0]}',
        b'{"recency": [1, 0, 0, 0], "frequency": [0, 0, 0, 0], "monetary": [0, 0, 0, 0]}',
        b'{"recency": "0000", "frequency": [0, 0, 0, 0], "monetary": [0, 0, 0, 0]}',
        b'{"recency": [0, 0, 0, 0.5], "frequency": [0, 0, 0, 0], "monetary": [0, 0, 0, 0]}',
        b'{"recency": [0, 0, 0, true], "frequency": [0, 0, 0, 0], "monetary": [0, 0, 0, 0]}',
    ],
)
def test_quintile_from_json_rejects(payload: bytes) -> None:
    with pytest.raises(ValueError):
        QuintileBoundaries.from_json(payload)


def test_quintile_population_errors() -> None:
    with pytest.raises(ValueError, match="empty population"):
        QuintileBoundaries.from_population([], [], [])
    with pytest.raises(ValueError, match="same length"):
        QuintileBoundaries.from_population([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="empty population"):
        QuintileBoundaries.from_counts({}, {}, {})
    with pytest.raises(ValueError, match=r"count \[1, 2\] customers"):
        QuintileBoundaries.from_counts({3: 2}, {1: 1}, {5: 2})
    with pytest.raises(ValueError, match="positive"):
        QuintileBoundaries.from_counts({3: 1, 4: 0}, {1: 1}, {5: 1})


@given(st.lists(st.integers(min_value=-(10**12), max_value=10**12), min_size=1, max_size=300))
def test_quintile_cuts_from_counts_are_the_ranked_values(population: list[int]) -> None:
    """The cuts walked from value counts (what Redis sends) are those of the sorted list."""

    def ranked(values: list[int]) -> tuple[int, ...]:
        ordered = sorted(values)
        return tuple(ordered[math.ceil(k * len(values) / 5) - 1] for k in range(1, 5))

    counts = Counter(population)
    assert quintile_cuts(counts) == ranked(population)
    b = QuintileBoundaries.from_counts(counts, counts, counts)
    assert b.frequency == b.monetary == ranked(population)
    assert b.recency == ranked([-v for v in population])


def test_both_scorers_satisfy_protocol() -> None:
    scorers: list[Scorer] = [
        ThresholdScorer(),
        QuintileScorer(QuintileBoundaries.from_population([1], [1], [1])),
    ]
    assert [type(s.score(AS_OF, 1, 1, AS_OF)).__name__ for s in scorers] == ["Scores", "Scores"]
