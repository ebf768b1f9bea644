"""Scenario 7: the whole input topic replayed from offset 0 by a NEW consumer group
(another RFM_APP_ID) against the existing state. Nothing changes: every Redis key of ours is
byte-identical except that the replayed events are counted as ``redelivered``, and no new
segment change or dead letter reaches Kafka."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.faults.common import START, FaultRun, wait_for
from tests.faults.scenario import Scenario, snapshot
from tests.support.harness import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=600, orders=2_500, start_ms=START, end_ms=START + 250 * MS_PER_DAY, seed=707
)


def _state(redis_url: str, prefix: str) -> dict[bytes, object]:
    lock = f"{prefix}:relay-lock:".encode()
    return {k: v for k, v in snapshot(redis_url, prefix).items() if not k.startswith(lock)}


def test_replay_from_zero_into_a_new_group_changes_nothing(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    events = list(generate_history(PROFILE))
    sc.publish(events)
    worker = sc.worker("first").start()
    try:
        sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    prefix = sc.settings.redis.prefix
    # Relay locks are coordination, not state; one may outlive a clean stop (its TTL).
    lingering = [sc.relay_locks()]
    before = _state(sc.redis_url, prefix)
    stats_before = sc.stats()
    changes_before = len(read_topic(kafka_bootstrap, sc.settings.kafka.changes_topic))
    dead_before = len(read_topic(kafka_bootstrap, sc.settings.kafka.dlq_topic))

    replay = sc.worker("replay", RFM_APP_ID=f"{sc.settings.kafka.app_id}-replay").start()
    started = time.monotonic()
    try:
        target = stats_before.get("redelivered", 0) + len(events)
        wait_for(
            lambda: sc.stats().get("redelivered", 0) >= target, 120, "replay redelivered", replay
        )
        seconds = time.monotonic() - started
        time.sleep(2.0)  # anything the replay would still do (scores, relay) happens now
    finally:
        assert replay.stop() == 0, replay.log_tail()

    lingering.append(sc.relay_locks())
    after = _state(sc.redis_url, prefix)
    stats_key = f"{prefix}:stats".encode()
    stats_after = sc.stats()
    assert stats_after == {**stats_before, "redelivered": target}, (stats_before, stats_after)
    before.pop(stats_key)
    after.pop(stats_key)
    differ = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not differ, f"{len(differ)} keys changed by the replay, e.g. {differ[:5]}"
    assert len(read_topic(kafka_bootstrap, sc.settings.kafka.changes_topic)) == changes_before
    assert len(read_topic(kafka_bootstrap, sc.settings.kafka.dlq_topic)) == dead_before

    run = FaultRun("replay_new_group", recovery_seconds=None)
    run.extra.update(replayed=len(events), replay_seconds=round(seconds, 2), keys=len(before))
    run.extra["relay_locks_after_stop"] = [[k.decode() for k in ks] for ks in lingering]
    sc.verify(run)
