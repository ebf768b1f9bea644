"""From a customer's state to what gets written: scores, segment, due time, change event.

Pure: the hot path, the periodic job, the CLI and the tests' batch oracle all score through
here, so there is exactly one definition of a customer's scores and segment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import orjson

from state.model import CustomerState, Scores, ScoreWrite, iso_utc
from state.money import format_minor
from state.scoring import QuintileScorer, Scorer, ThresholdScorer
from state.segments import SegmentRules

Cause = Literal["order", "recency", "rescore"]
SCHEMA_VERSION = 1
# Namespace for segment-change event ids: uuid5(namespace, customer id + change number).
EVENT_NAMESPACE = uuid.UUID("5b0c4f57-3d3e-4f8e-9a3e-2f6f1f0d7a11")


@dataclass(frozen=True, slots=True)
class ScoringContext:
    scorer: Scorer
    rules: SegmentRules
    currency: str
    exponent: int  # minor-unit digits of ``currency``


def event_id(customer_id: str, seq: int, previous: str | None, segment: str | None) -> str:
    """Deterministic: the n-th change of a customer, from and to the same segments, always
    has the same id, so a repeat is recognised. The segments are part of it because after a
    Redis restart that lost its last second (AOF everysec) the n-th change can be recomputed
    differently; it must then not be mistaken for the one already published."""
    key = f"{customer_id}\x1f{seq}\x1f{previous or ''}\x1f{segment or ''}"
    return str(uuid.uuid5(EVENT_NAMESPACE, key))


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
        change = change_event(state, scores, segment or None, as_of_ms, cause, ctx)
    return ScoreWrite(
        customer_id=state.customer_id,
        expected_version=state.version,
        partition=state.partition,
        scores=encoded,
        segment=segment,
        due_ms=due,
        change=change,
    )


def change_event(
    state: CustomerState,
    scores: Scores | None,
    segment: str | None,
    as_of_ms: int,
    cause: Cause,
    ctx: ScoringContext,
) -> bytes:
    seq = state.seq + 1
    return orjson.dumps(
        {
            "event_id": event_id(state.customer_id, seq, state.segment, segment),
            "customer_id": state.customer_id,
            "previous_segment": state.segment,
            "segment": segment,
            "r": scores.r if scores else None,
            "f": scores.f if scores else None,
            "m": scores.m if scores else None,
            "recency_days": scores.recency_days if scores else None,
            "orders": state.orders,
            "spend": format_minor(state.spend_minor, ctx.exponent),
            "currency": ctx.currency,
            "as_of": iso_utc(as_of_ms),
            "cause": cause,
            "sequence": seq,
            "schema_version": SCHEMA_VERSION,
        }
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
            "namespace": EVENT_NAMESPACE.hex,
            "schema": SCHEMA_VERSION,
        }
    )
