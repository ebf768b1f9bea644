"""Scenario 1: workers die at random points and exactly between the Redis write and the
offset commit (fault points ``after_apply`` and ``after_score``); each time a clean worker
takes over. Nothing may be lost or applied twice, and the result equals the batch fold."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.faults.common import START, FaultRun, kafka_committed, wait_for
from tests.faults.scenario import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=800, orders=3_000, start_ms=START, end_ms=START + 300 * MS_PER_DAY, seed=101
)
EXIT_AT_FAULT = 137  # stream.faults exits with os._exit(137), like a SIGKILL


def _die_at(sc: Scenario, point: str) -> float:
    """Start a worker armed to exit at ``point``; wait until it did. Returns seconds."""
    worker = sc.worker(f"fault-{point}", RFM_TEST_FAULTS=f"{point}=exit").start()
    started = time.monotonic()
    assert worker.proc is not None
    try:
        code = worker.proc.wait(90)
    finally:
        worker.kill()
    assert code == EXIT_AT_FAULT, worker.log_tail()
    assert f"fault point {point}: exiting now" in worker.log_path.read_text(errors="replace")
    return time.monotonic() - started


def _reached(sc: Scenario, accounted: int) -> Callable[[], bool]:
    return lambda: sc.accounted() >= accounted


def test_sigkill_at_random_points_and_between_redis_write_and_commit(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    rng = random.Random(20250301)
    events = list(generate_history(PROFILE))
    publisher = sc.paced(events, chunk=60, interval=0.5)
    run = FaultRun("sigkill_worker")
    recoveries: list[float] = []
    try:
        # 1. Dies after the batch is in Redis, before scores and before the offset commit.
        _die_at(sc, "after_apply")
        assert sc.accounted() > 0
        assert sc.redis.scard(sc.keys.dirty) > 0, "after_apply: customers should be unscored"
        applied = sc.applied_offsets()
        committed = kafka_committed(
            kafka_bootstrap,
            sc.settings.kafka.app_id,
            sc.settings.kafka.orders_topic,
            sc.settings.kafka.partitions,
        )
        assert any(off + 1 > committed.get(p, -1) for p, off in applied.items()), (
            "expected Redis to be ahead of the Kafka commit",
            applied,
            committed,
        )
        # 2. Dies after scores and outbox are written, still before the offset commit.
        _die_at(sc, "after_score")

        # 3. Clean workers, SIGKILLed at random progress points while events flow.
        for _ in range(2):
            before = sc.accounted()
            worker = sc.worker().start()
            recoveries.append(
                wait_for(_reached(sc, before + 1), 90, "progress after restart", worker)
            )
            target = min(before + rng.randint(30, 400), len(events) - 1)
            wait_for(_reached(sc, target), 90, "progress before kill", worker, poll=0.01)
            worker.kill()

        # 4. The last worker finishes the stream.
        before = sc.accounted()
        worker = sc.worker("final").start()
        try:
            recoveries.append(
                wait_for(
                    lambda: sc.accounted() > before or sc.accounted() == len(events),
                    90,
                    "progress after restart",
                    worker,
                )
            )
            publisher.finish()
            sc.wait_accounted(worker, 120)
            sc.wait_relayed(worker, 60)
        finally:
            assert worker.stop() == 0, worker.log_tail()
    finally:
        publisher.finish()

    run.recovery_seconds = max(recoveries)
    run.extra.update(kills=4, recoveries=[round(r, 2) for r in recoveries])
    verdict = sc.verify(run, expect_change_duplicates=None)
    # The batches of the dead workers were delivered again and recognised as such.
    assert verdict.stats.get("redelivered", 0) > 0
