"""A worker killed with SIGKILL mid-stream and restarted loses and doubles nothing: the state
and change chains equal the independent oracle before and after a final rescore."""

from __future__ import annotations

import random
import threading
import time
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

START = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)
PROFILE = ShopProfile(
    customers=3_000, orders=15_000, start_ms=START, end_ms=START + 300 * MS_PER_DAY, seed=99
)


def test_sigkill_mid_stream_then_restart_matches_uninterrupted_run(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(
        kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event", RFM_BATCH_SIZE="200"
    )
    settings = settings_of(env)
    events = list(generate_history(PROFILE))
    rng = random.Random(5)

    # Publish in the background while the worker is killed and restarted three times.
    publisher = threading.Thread(
        target=lambda: [
            produce(kafka_bootstrap, settings.kafka.orders_topic, events[i : i + 1500])
            or time.sleep(0.3)
            for i in range(0, len(events), 1500)
        ],
    )
    publisher.start()
    kills = 0
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        for _ in range(3):
            before = accounted(redis_url)
            wait_until(
                lambda b=before: accounted(redis_url) > b + rng.randint(50, 2000),
                90,
                "progress before the kill",
                worker,
            )
            worker.kill()
            kills += 1
            worker = Worker(env, tmp_path / "worker.log").start()
        publisher.join()
        wait_until(lambda: accounted(redis_url) == len(events), 180, "all events accounted", worker)
        wait_until(lambda: outbox_empty(redis_url), 60, "outbox relayed", worker)
    finally:
        publisher.join()
        assert worker.stop() == 0, worker.log_tail()
    assert kills == 3

    values = [v for _, v in events]
    assert_matches_oracle(env, redis_url, values, START + 400 * MS_PER_DAY)
