"""Assertions shared by the end-to-end tests: state equals the oracle, changes are complete."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import redis
from aiokafka.structs import ConsumerRecord

from state.changes import ScoringContext
from state.model import MS_PER_DAY, iso_utc
from state.scoring import ThresholdScorer
from state.segments import load_segment_rules
from stream.runtime import Runtime
from tests.support.harness import read_topic, run_cli, settings_of
from tests.support.oracle import BatchResult, fold
from tests.support.state_reads import read_profiles

IDENTITY = ("customer_id", "sequence", "previous_segment", "segment")


def redis_profiles(redis_url: str, customer_ids: Sequence[str]) -> dict[str, Any]:
    return read_profiles(redis.Redis.from_url(redis_url), customer_ids)


def assert_state_matches(
    redis_url: str, oracle: BatchResult, ctx: ScoringContext, as_of_ms: int
) -> None:
    expected = oracle.expected(ctx, as_of_ms)
    got = redis_profiles(redis_url, sorted(expected))
    wrong = []
    for cid, exp in expected.items():
        s = got[cid]
        actual = (
            None
            if s is None
            else (
                s.first_ms,
                s.last_ms,
                s.orders,
                s.spend_minor,
                s.r,
                s.f,
                s.m,
                s.recency_days,
                s.segment,
            )
        )
        if actual != exp:
            wrong.append((cid, exp, actual))
    assert not wrong, f"{len(wrong)} of {len(expected)} customers differ, e.g. {wrong[:5]}"


def assert_changes_complete(
    redis_url: str,
    records: Sequence[ConsumerRecord[bytes, bytes]],
    final_segments: dict[str, str | None],
    *,
    superseded_allowed: bool = False,
) -> int:
    """Every change Redis counted is on the topic once after dedupe, in an unbroken chain
    ending in the final segment. Returns how many duplicates the topic held.

    ``superseded_allowed``: after Redis lost writes, changes already published can be
    recomputed differently (another batch split gives other intermediate segments), so the
    chain on the topic can fork; what must hold is that the latest record of every customer
    carries its final segment."""
    by_id: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for record in records:
        change = orjson.loads(record.value)
        if change["event_id"] in by_id:
            # A relay repeat is identical; a change recomputed after Redis lost writes may
            # differ in as_of and scores, never in what it identifies.
            first = by_id[change["event_id"]]
            assert all(first[k] == change[k] for k in IDENTITY), ("same event_id", first, change)
            duplicates += 1
        by_id[change["event_id"]] = change
    if superseded_allowed:
        latest = {c["customer_id"]: c for c in map(_load, records)}  # topic order
        for cid, segment in final_segments.items():
            if segment is not None:
                assert latest[cid]["segment"] == segment, (cid, latest[cid], segment)
        return duplicates
    chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for change in by_id.values():
        chains[change["customer_id"]].append(change)
    counted = redis_profiles(redis_url, sorted(final_segments))
    for cid, segment in final_segments.items():
        chain = sorted(chains.get(cid, []), key=lambda c: c["sequence"])
        state = counted[cid]
        assert state is not None
        assert [c["sequence"] for c in chain] == list(range(1, state.seq + 1)), cid
        previous = None
        for change in chain:
            assert change["previous_segment"] == previous, (cid, chain)
            previous = change["segment"]
        assert previous == segment, (cid, chain[-1:], segment)
    return duplicates


def _load(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    change: dict[str, Any] = orjson.loads(record.value)
    return change


def assert_matches_oracle(
    env: dict[str, str],
    redis_url: str,
    bootstrap: str,
    values: Sequence[bytes],
    now_ms: int,
    *,
    superseded_allowed: bool = False,
) -> BatchResult:
    """The end of every end-to-end scenario: fold the published values in a batch, rescore
    the stream's state as of one time, and compare state and segment changes."""
    settings = settings_of(env)
    oracle = fold(values, Runtime.build(settings).pipeline.rules, now_ms)
    as_of = oracle.clock_ms + MS_PER_DAY
    done = run_cli(env, "rescore", "--as-of", iso_utc(as_of))
    assert done.returncode == 0, done.stderr
    rules = load_segment_rules(settings.scoring.segments)
    ctx = ScoringContext(
        ThresholdScorer(settings.scoring.thresholds),
        rules,
        settings.scoring.currency,
        settings.scoring.exponent,
    )
    assert_state_matches(redis_url, oracle, ctx, as_of)
    finals = {c: e[-1] for c, e in oracle.expected(ctx, as_of).items()}
    changes = read_topic(bootstrap, settings.kafka.changes_topic)
    assert_changes_complete(redis_url, changes, finals, superseded_allowed=superseded_allowed)
    return oracle
