"""Why a customer is in their segment: a pure function of the profile, the rules and the scale.

Marketing asks "why is this customer at_risk, and when will that change?" The answer is
already implied by the stored profile; this module only spells it out, without Redis or
clocks, so it can be checked for every score combination (tests/unit/test_explain.py):

* the rule that matched: the first rule of the ordered list whose ranges hold the scores
  (state/segments.py), with its 1-based position;
* for each of R, F, M: the score, the value it was read from, the cuts of the scale (fixed
  thresholds or the last pass's quintile boundaries) and the inclusive range of values that
  gives this score (``None`` = unbounded). Money is rendered as decimal text, as the CLI
  renders spend; never a float;
* the next time-driven change: the profile's due time and its cause: R drops by one level
  (threshold scoring; then the segment the customer would fall to if nothing else happens),
  or an order leaves the window (or an order record reaches the retention), after which F
  and M are counted again from the orders, which this function does not see: no segment is
  predicted then. Quintile boundaries move with every pass, so R drops are not foretold.
* F and M are read from the window's values (what they were scored on) where the profile
  has a window, else from the lifetime ones.

The scores are those of the last scoring (``as_of``); the scale is the one in force now. The
two agree unless the settings or the boundaries changed since, which the caller can see by
comparing the value with the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from state.model import CustomerState, iso_utc
from state.money import format_minor
from state.scoring import QuintileBoundaries, Thresholds, ThresholdScorer
from state.segments import SegmentRules

Bound = int | None
Axis = Literal["r", "f", "m"]


@dataclass(frozen=True, slots=True)
class Band:
    """Inclusive range of values that score ``score`` on one axis; None = unbounded."""

    score: int
    low: Bound
    high: Bound


def _check_score(score: int) -> None:
    if not 1 <= score <= 5:
        raise ValueError(f"score must be within 1..5, got {score}")


def threshold_band(axis: Axis, cuts: tuple[int, ...], score: int) -> Band:
    """Values giving ``score`` under fixed thresholds (state/scoring.py, ThresholdScorer).

    R: ``5 - #{cut < days}``, so the cuts are the most days for R=5,4,3,2. F and M:
    ``1 + #{cut <= value}``, so the cuts are the least value for F/M=2,3,4,5.
    """
    _check_score(score)
    if axis == "r":
        k = 5 - score
        return Band(score, cuts[k - 1] + 1 if k >= 1 else None, cuts[k] if k <= 3 else None)
    k = score - 1
    return Band(score, cuts[k - 1] if k >= 1 else None, cuts[k] - 1 if k <= 3 else None)


def quintile_band(axis: Axis, cuts: tuple[int, ...], score: int) -> Band:
    """Values giving ``score`` under quintile boundaries (QuintileScorer).

    A value scores ``1 + #{cut < value}``; recency's cuts are stored negated (over -days),
    so its band is mirrored back to days. A band may be empty (low > high) when ties make
    two cuts equal: no customer then has that score.
    """
    _check_score(score)
    k = score - 1
    if axis == "r":
        return Band(score, -cuts[k] if k <= 3 else None, -cuts[k - 1] - 1 if k >= 1 else None)
    return Band(score, cuts[k - 1] + 1 if k >= 1 else None, cuts[k] if k <= 3 else None)


Scale = Thresholds | QuintileBoundaries


def _cuts(scale: Scale, axis: Axis) -> tuple[int, ...]:
    if isinstance(scale, Thresholds):
        return {"r": scale.recency_days, "f": scale.frequency, "m": scale.monetary_minor}[axis]
    return {"r": scale.recency, "f": scale.frequency, "m": scale.monetary}[axis]


def band(scale: Scale, axis: Axis, score: int) -> Band:
    cuts = _cuts(scale, axis)
    if isinstance(scale, Thresholds):
        return threshold_band(axis, cuts, score)
    return quintile_band(axis, cuts, score)


def shown_cuts(scale: Scale, axis: Axis) -> list[int]:
    """Cuts as a reader reads them: quintile recency in days (un-negated)."""
    cuts = _cuts(scale, axis)
    if isinstance(scale, QuintileBoundaries) and axis == "r":
        return [-c for c in cuts]
    return list(cuts)


def matched_rule(rules: SegmentRules, r: int, f: int, m: int) -> tuple[int, str]:
    """(1-based position, name) of the first rule holding the scores: first match wins."""
    for position, rule in enumerate(rules.rules, start=1):
        if rule.matches(r, f, m):
            return position, rule.name
    raise ValueError(f"no rule matches r={r} f={f} m={m}")  # SegmentRules forbids this


def _axis(
    scale: Scale, axis: Axis, score: int, value: int | None, money: int | None
) -> dict[str, Any]:
    b = band(scale, axis, score)

    def shown(v: int | None) -> int | str | None:
        if v is None or money is None:
            return v
        return format_minor(v, money)

    return {
        "score": score,
        "value": shown(value),
        "min": shown(b.low),
        "max": shown(b.high),
        "cuts": [shown(c) for c in shown_cuts(scale, axis)],
    }


def explain(
    state: CustomerState, rules: SegmentRules, scale: Scale, exponent: int, window_days: int = 0
) -> dict[str, Any]:
    """The ``explanation`` object of the query API (README, "Query API"); ``window_days``:
    ``RFM_WINDOW_DAYS``, for the values F and M were scored on."""
    mode = "thresholds" if isinstance(scale, Thresholds) else "quintiles"
    r, f, m = state.r, state.f, state.m
    if r is None or f is None or m is None:
        # Every order cancelled: no scores, no segment, nothing due.
        return {"scoring": mode, "rule": None, "r": None, "f": None, "m": None, "next_change": None}
    _, orders, spend = state.scored_window(window_days)
    position, name = matched_rule(rules, r, f, m)
    rule = rules.rules[position - 1]
    return {
        "scoring": mode,
        "rule": {
            "name": name,
            "position": position,
            "of": len(rules.rules),
            "r": list(rule.r),
            "f": list(rule.f),
            "m": list(rule.m),
        },
        "r": _axis(scale, "r", r, state.recency_days, None),
        "f": _axis(scale, "f", f, orders, None),
        "m": _axis(scale, "m", m, spend, exponent),
        "next_change": next_change(state, r, f, m, rules, scale),
    }


def next_change(
    state: CustomerState, r: int, f: int, m: int, rules: SegmentRules, scale: Scale
) -> dict[str, Any] | None:
    """When the due time is the instant R drops (thresholds strictly increase, and R drops
    the instant the days pass the current level's bound), R is one level lower then and F
    and M are as they are; any other due time is the window's (``cause: window``)."""
    due_ms = state.due_ms
    if due_ms is None or due_ms < 0:
        return None
    if isinstance(scale, Thresholds) and state.last_ms is not None and state.as_of_ms is not None:
        drop = ThresholdScorer(scale).next_recency_change_ms(state.last_ms, state.as_of_ms)
        if drop == due_ms and r > 1:
            segment = rules.segment_for(r - 1, f, m)
            return {"due_at": iso_utc(due_ms), "cause": "recency", "r": r - 1, "segment": segment}
    return {"due_at": iso_utc(due_ms), "cause": "window", "r": None, "segment": None}
