"""A realistic history through Kafka equals the independent oracle (tests/reference) over the
same events: as the order path left it, and again after a final rescore."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.support.checks import assert_matches_oracle
from tests.support.harness import (
    Worker,
    accounted,
    outbox_empty,
    produce,
    rfm_env,
    settings_of,
    wait_until,
)

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
    produce(kafka_bootstrap, settings.kafka.orders_topic, events)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: accounted(redis_url) == len(events), 240, "all events accounted", worker)
        wait_until(lambda: outbox_empty(redis_url), 60, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    values = [v for _, v in events]
    oracle = assert_matches_oracle(env, redis_url, values, START + 500 * MS_PER_DAY)
    assert oracle.outcomes["applied"] >= 50_000
