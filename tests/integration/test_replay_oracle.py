"""A realistic history through Kafka equals a batch computation over the same events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from state.changes import ScoringContext
from state.model import MS_PER_DAY, iso_utc
from state.scoring import ThresholdScorer
from state.segments import load_segment_rules
from stream.runtime import Runtime
from stream.shop import ShopProfile, generate_history
from tests.support.checks import assert_changes_complete, assert_state_matches
from tests.support.harness import (
    Worker,
    accounted,
    outbox_empty,
    produce,
    read_topic,
    rfm_env,
    run_cli,
    settings_of,
    wait_until,
)
from tests.support.oracle import fold

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
PROFILE = ShopProfile(
    customers=10_000, orders=50_000, start_ms=START, end_ms=START + 400 * MS_PER_DAY, seed=2026
)


def test_replay_of_50k_orders_equals_batch_computation(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event")
    settings = settings_of(env)
    events = list(generate_history(PROFILE))
    assert sum(1 for _ in events) >= 50_000
    produce(kafka_bootstrap, settings.orders_topic, events)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: accounted(redis_url) == len(events), 240, "all events accounted", worker)
        wait_until(lambda: outbox_empty(redis_url), 60, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    rules = Runtime.build(settings).pipeline.rules
    oracle = fold((v for _, v in events), rules, START + 500 * MS_PER_DAY)
    assert oracle.outcomes["applied"] >= 50_000
    as_of = oracle.clock_ms + 7 * MS_PER_DAY
    done = run_cli(env, "rescore", "--as-of", iso_utc(as_of))
    assert done.returncode == 0, done.stderr

    ctx = ScoringContext(
        ThresholdScorer(settings.thresholds), load_segment_rules("default"), "USD", 2
    )
    assert_state_matches(redis_url, oracle, ctx, as_of)
    expected = oracle.expected(ctx, as_of)
    changes = read_topic(kafka_bootstrap, settings.changes_topic)
    assert_changes_complete(redis_url, changes, {c: e[-1] for c, e in expected.items()})
