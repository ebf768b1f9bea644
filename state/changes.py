"""From a customer's state to what gets written: scores, segment, due time, change record.

Pure: the hot path, the periodic job, the CLI and the tests' batch oracle all score through
here, so there is exactly one definition of a customer's scores and segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import orjson

from state.change_events import change_record
from state.model import CustomerState, History, Scores, ScoreWrite
from state.scoring import QuintileScorer, Scorer, ThresholdScorer
from state.segments import SegmentRules

Cause = Literal["order", "recency", "rescore"]


@dataclass(frozen=True, slots=True)
class ScoringContext:
    scorer: Scorer
    rules: SegmentRules
    currency: str
    exponent: int  # minor-unit digits of ``currency``
    history: History = field(default_factory=History)


def score_state(state: CustomerState, ctx: ScoringContext, as_of_ms: int) -> Scores | None:
    if state.last_ms is None or state.orders <= 0:
        return None
    return ctx.scorer.score(state.last_ms, state.orders, state.spend_minor, as_of_ms)


def plan_write(
    state: CustomerState,
    ctx: ScoringContext,
    as_of_ms: int,
    cause: Cause,
    announce: bool = False,
) -> ScoreWrite:
    """``announce`` emits a change event even when the segment stays: after Redis lost
    writes, consumers may hold a segment published from the lost state, and the latest
    event of each customer must tell the truth."""
    scores = score_state(state, ctx, as_of_ms)
    if scores is None:
        segment, encoded, due = "", "", -1
    else:
        segment = ctx.rules.segment_for(scores.r, scores.f, scores.m)
        encoded = f"{scores.r},{scores.f},{scores.m},{scores.recency_days},{as_of_ms}"
        assert state.last_ms is not None
        next_drop = ctx.scorer.next_recency_change_ms(state.last_ms, as_of_ms)
        due = -1 if next_drop is None else next_drop
    change = b""
    if announce or segment != (state.segment or ""):
        change = change_record_of(state, scores, segment or None, as_of_ms, cause, ctx)
    return ScoreWrite(
        customer_id=state.customer_id,
        expected_version=state.version,
        partition=state.partition,
        scores=encoded,
        segment=segment,
        due_ms=due,
        change=change,
        as_of_ms=as_of_ms,
    )


def change_record_of(
    state: CustomerState,
    scores: Scores | None,
    segment: str | None,
    as_of_ms: int,
    cause: Cause,
    ctx: ScoringContext,
) -> bytes:
    """The outbox record of this change (state/change_events.py): the relay renders it.
    An announcement of the segment the customer is in carries when it was entered."""
    since: int | str | None = None
    profile_previous = None
    if (segment or None) == (state.segment or None):
        since = state.segment_since_ms if state.segment_since_ms is not None else "?"
        profile_previous = state.previous_segment
    return change_record(
        state.seq + 1,
        state.segment,
        segment,
        scores,
        state.orders,
        state.spend_minor,
        ctx.exponent,
        ctx.currency,
        as_of_ms,
        cause,
        state.orders,
        state.spend_minor,
        0,
        since,
        state.first_ms,
        state.last_ms,
        profile_previous,
    )


def scoring_spec(ctx: ScoringContext) -> bytes | None:
    """What rescore_in_redis.lua needs to score and announce as ``plan_write`` does; None
    for a scorer it does not know (then every customer takes the Python route)."""
    scorer = ctx.scorer
    if isinstance(scorer, ThresholdScorer):
        t = scorer.thresholds
        kind, cuts = "thresholds", (t.recency_days, t.frequency, t.monetary_minor)
    elif isinstance(scorer, QuintileScorer):
        b = scorer.boundaries
        kind, cuts = "quintiles", (b.recency, b.frequency, b.monetary)
    else:
        return None
    r, f, m = cuts
    return orjson.dumps(
        {
            "kind": kind,
            "r": list(r),
            "f": list(f),
            "m": list(m),
            "segments": ctx.rules.table,
            "currency": ctx.currency,
            "exponent": ctx.exponent,
            "window_days": ctx.history.window_days,
            "retention_ms": ctx.history.retention_ms,
        }
    )
