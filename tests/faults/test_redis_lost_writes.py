"""Redis restarts having lost its last writes (as AOF everysec can): the worker pauses while
Redis is away, then notices the gap between the offsets Kafka committed and the offsets Redis
holds, re-reads those records and ends equal to the batch oracle."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

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

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

START = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)
PROFILE = ShopProfile(
    customers=1_500, orders=6_000, start_ms=START, end_ms=START + 200 * MS_PER_DAY, seed=31
)


def test_redis_restored_to_older_snapshot_is_caught_up_from_kafka(
    kafka_bootstrap: str, private_redis, topic_prefix: str, tmp_path: Path
) -> None:
    server = private_redis(["--save", ""])
    env = rfm_env(kafka_bootstrap, server.url, topic_prefix, tmp_path, RFM_CLOCK="event")
    settings = settings_of(env)
    events = list(generate_history(PROFILE))
    half = len(events) // 2
    client = redis.Redis.from_url(server.url)

    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        produce(kafka_bootstrap, settings.kafka.orders_topic, events[:half])
        wait_until(lambda: accounted(server.url) == half, 90, "first half applied", worker)
        wait_until(lambda: outbox_empty(server.url), 30, "first changes relayed", worker)
        client.save()  # the snapshot Redis will come back with
        produce(kafka_bootstrap, settings.kafka.orders_topic, events[half:])
        wait_until(lambda: accounted(server.url) == len(events), 90, "all applied", worker)
        time.sleep(2)  # let faust commit the offsets of the second half
        server.kill()  # dies: every write after the snapshot is lost
        time.sleep(3)  # the worker keeps running without Redis
        server.restart()
        assert accounted(server.url) == half  # really lost the second half
        # One more event reveals the gap: the worker must re-read the second half first.
        produce(kafka_bootstrap, settings.kafka.orders_topic, [events[0]])  # a duplicate
        wait_until(lambda: accounted(server.url) == len(events) + 1, 90, "caught up", worker)
        wait_until(lambda: outbox_empty(server.url), 30, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert "consumed but are not in Redis" in worker.log_path.read_text()

    values = [v for _, v in [*events, events[0]]]
    oracle = assert_matches_oracle(
        env,
        server.url,
        values,
        START + 400 * MS_PER_DAY,
        superseded_allowed=True,
    )
    stats = {k.decode(): int(v) for k, v in client.hgetall("rfm:stats").items()}
    stats.pop("redelivered", None)
    assert stats == dict(oracle.outcomes)
