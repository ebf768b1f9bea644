"""state/explain.py against the scorers and the rules it explains, for every score triple.

The explanation must say what the scoring actually did: the bands are checked by scoring
their ends (and the values just outside them) with the real scorers, the rule by walking
the rule list, the next change by the threshold scorer's own due time.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from state.explain import Axis, band, explain, matched_rule, quintile_band, threshold_band
from state.model import MS_PER_DAY, CustomerState, iso_utc
from state.scoring import QuintileBoundaries, QuintileScorer, Thresholds, ThresholdScorer
from state.segments import PRESETS, load_segment_rules

COMBOS = list(itertools.product(range(1, 6), repeat=3))
AXES: tuple[Axis, ...] = ("r", "f", "m")
AS_OF = 1_780_000_000_000

strict_cuts = st.lists(st.integers(1, 400), min_size=4, max_size=4, unique=True).map(
    lambda xs: tuple(sorted(xs))
)
loose_cuts = st.lists(st.integers(0, 400), min_size=4, max_size=4).map(lambda xs: tuple(sorted(xs)))
thresholds = st.builds(lambda r, f, m: Thresholds(r, f, m), strict_cuts, strict_cuts, strict_cuts)  # type: ignore[arg-type]
boundaries = st.builds(
    lambda r, f, m: QuintileBoundaries(tuple(sorted(-x for x in r)), f, m),  # type: ignore[arg-type]
    loose_cuts,
    loose_cuts,
    loose_cuts,
)


def _score(scorer: ThresholdScorer | QuintileScorer, axis: Axis, value: int) -> int:
    """One axis scored by the real scorer (the other two arguments held harmless)."""
    if axis == "r":
        return scorer.score(AS_OF - value * MS_PER_DAY, 1, 0, AS_OF).r
    if axis == "f":
        return scorer.score(AS_OF, value, 0, AS_OF).f
    return scorer.score(AS_OF, 1, value, AS_OF).m


def _check_band(
    scorer: ThresholdScorer | QuintileScorer, axis: Axis, score: int, lo: int | None, hi: int | None
) -> None:
    floor = 0  # days, orders and spend are never negative
    if lo is not None and hi is not None and lo > hi:
        return  # an empty band (quintile ties): nothing scores there
    ends = [v for v in (lo, hi) if v is not None and v >= floor]
    for v in ends:
        assert _score(scorer, axis, v) == score, (axis, v)
    if lo is not None and lo - 1 >= floor:
        assert _score(scorer, axis, lo - 1) != score
    if hi is not None:
        assert _score(scorer, axis, hi + 1) != score
    if lo is None:
        assert _score(scorer, axis, floor) == score or (hi is not None and hi < floor)
    if hi is None:
        assert _score(scorer, axis, 10**9) == score


@pytest.mark.parametrize("preset", PRESETS)
def test_matched_rule_is_the_first_match_for_every_combination(preset: str) -> None:
    rules = load_segment_rules(preset)
    for r, f, m in COMBOS:
        position, name = matched_rule(rules, r, f, m)
        assert name == rules.segment_for(r, f, m)
        assert rules.rules[position - 1].matches(r, f, m)
        assert not any(rule.matches(r, f, m) for rule in rules.rules[: position - 1])


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("score", range(1, 6))
@given(scale=thresholds)
def test_threshold_bands_are_what_the_scorer_does(
    axis: Axis, score: int, scale: Thresholds
) -> None:
    b = band(scale, axis, score)
    assert b == threshold_band(
        axis,
        {"r": scale.recency_days, "f": scale.frequency, "m": scale.monetary_minor}[axis],
        score,
    )
    _check_band(ThresholdScorer(scale), axis, score, b.low, b.high)


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("score", range(1, 6))
@given(scale=boundaries)
def test_quintile_bands_are_what_the_scorer_does(
    axis: Axis, score: int, scale: QuintileBoundaries
) -> None:
    b = band(scale, axis, score)
    assert b == quintile_band(
        axis, {"r": scale.recency, "f": scale.frequency, "m": scale.monetary}[axis], score
    )
    _check_band(QuintileScorer(scale), axis, score, b.low, b.high)


def _inside(lo: int | None, hi: int | None, pick: int) -> int:
    lo = 0 if lo is None else lo
    hi = lo + 1000 if hi is None else hi
    return lo + pick % (hi - lo + 1)


def _state(
    days: int, orders: int, spend: int, scores: tuple[int, int, int], due: int | None
) -> CustomerState:
    r, f, m = scores
    last = AS_OF - days * MS_PER_DAY
    return CustomerState("c1", last, last, orders, spend, 1, 0, None, 0, r, f, m, days, AS_OF, due)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("r", "f", "m"), COMBOS)
@settings(max_examples=10, deadline=None)
@given(scale=st.one_of(thresholds, boundaries), picks=st.tuples(*[st.integers(0, 10**6)] * 3))
def test_explanation_of_every_combination(
    preset: str,
    r: int,
    f: int,
    m: int,
    scale: Thresholds | QuintileBoundaries,
    picks: tuple[int, int, int],
) -> None:
    rules = load_segment_rules(preset)
    bands = [band(scale, axis, s) for axis, s in zip(AXES, (r, f, m), strict=True)]
    assume(all(b.low is None or b.high is None or b.low <= b.high for b in bands))
    assume(bands[0].high is None or bands[0].high >= 0)
    days, orders, spend = (
        _inside(max(b.low or 0, 0), b.high, p) for b, p in zip(bands, picks, strict=True)
    )
    threshold = isinstance(scale, Thresholds)
    scorer = ThresholdScorer(scale) if isinstance(scale, Thresholds) else QuintileScorer(scale)
    last = AS_OF - days * MS_PER_DAY
    scored = scorer.score(last, orders, spend, AS_OF)
    assert (scored.r, scored.f, scored.m) == (r, f, m)  # the values are the customer's
    due = scorer.next_recency_change_ms(last, AS_OF)

    got = explain(_state(days, orders, spend, (r, f, m), due), rules, scale, exponent=2)

    assert got["scoring"] == ("thresholds" if threshold else "quintiles")
    assert got["rule"]["name"] == rules.segment_for(r, f, m)
    assert rules.rules[got["rule"]["position"] - 1].name == got["rule"]["name"]
    assert got["rule"]["of"] == len(rules.rules)
    for axis, value in (("r", days), ("f", orders)):
        entry = got[axis]
        assert entry["min"] is None or entry["min"] <= value
        assert entry["max"] is None or value <= entry["max"]
    money = got["m"]
    assert money["value"] == f"{spend // 100}.{spend % 100:02d}"
    assert all(isinstance(c, str) for c in money["cuts"])  # rendered, never floats
    if due is None:
        assert got["next_change"] is None
        assert not threshold or r == 1
    else:
        then = scorer.score(last, orders, spend, due)
        before = scorer.score(last, orders, spend, due - 1)
        assert (before.r, then.r) == (r, r - 1)
        change = got["next_change"]
        assert change["cause"] == "recency"
        assert change["r"] == then.r
        assert change["segment"] == rules.segment_for(then.r, then.f, then.m)
    # A due time that is not R's is an order leaving the window: no segment foretold.
    other = explain(_state(days, orders, spend, (r, f, m), AS_OF + 1), rules, scale, 2)
    if due != AS_OF + 1:
        assert other["next_change"] == {
            "due_at": iso_utc(AS_OF + 1),
            "cause": "window",
            "r": None,
            "segment": None,
        }


def test_a_customer_without_scores_has_no_rule() -> None:
    state = CustomerState("c1", None, None, 0, 0, 3, 0, None, 1)
    got = explain(state, load_segment_rules("default"), Thresholds(), exponent=2)
    assert got == {
        "scoring": "thresholds",
        "rule": None,
        "r": None,
        "f": None,
        "m": None,
        "next_change": None,
    }


def test_a_readable_example() -> None:
    """Default thresholds and rules: 45 days, 5 orders, 500.00 spent."""
    state = _state(45, 5, 50_000, (4, 3, 3), AS_OF + 16 * MS_PER_DAY)
    got = explain(state, load_segment_rules("default"), Thresholds(), exponent=2)
    assert got["rule"] == {
        "name": "general",
        "position": 6,
        "of": 6,
        "r": [1, 5],
        "f": [1, 5],
        "m": [1, 5],
    }
    assert got["r"] == {"score": 4, "value": 45, "min": 31, "max": 60, "cuts": [30, 60, 90, 120]}
    assert got["f"] == {"score": 3, "value": 5, "min": 4, "max": 6, "cuts": [2, 4, 7, 10]}
    assert got["m"] == {
        "score": 3,
        "value": "500.00",
        "min": "400.00",
        "max": "699.99",
        "cuts": ["100.00", "400.00", "700.00", "1000.00"],
    }
    assert got["next_change"] == {
        "due_at": "2026-06-13T20:26:40.000Z",
        "cause": "recency",
        "r": 3,
        "segment": "general",
    }


def test_f_and_m_are_read_from_the_window() -> None:
    """Scored on 2 orders and 150.00 in the window, of 9 orders and 2,000.00 in all (the
    first purchase 400 days before: outside the window, so the stored window counts)."""
    state = replace(
        _state(10, 9, 200_000, (5, 2, 2), None),
        first_ms=AS_OF - 400 * MS_PER_DAY,
        window_days=365,
        window_orders=2,
        window_spend=15_000,
    )
    rules = load_segment_rules("default")
    got = explain(state, rules, Thresholds(), exponent=2, window_days=365)
    assert (got["f"]["value"], got["m"]["value"]) == (2, "150.00")
    # While the first purchase is inside the window every order is: the lifetime values.
    recent = replace(state, first_ms=AS_OF - 100 * MS_PER_DAY)
    got = explain(recent, rules, Thresholds(), exponent=2, window_days=365)
    assert (got["f"]["value"], got["m"]["value"]) == (9, "2000.00")


@pytest.mark.parametrize("score", [0, 6])
def test_scores_out_of_range_are_refused(score: int) -> None:
    with pytest.raises(ValueError):
        threshold_band("r", (1, 2, 3, 4), score)
    with pytest.raises(ValueError):
        quintile_band("f", (1, 2, 3, 4), score)
