"""Scenario 1: workers die exactly between the Redis write and the offset commit (fault points
``after_apply`` and ``after_score``) and at random points; each time a clean worker takes
over. Nothing may be lost or applied twice, and the result equals the oracle's fold.

Each fault-point death comes after a clean worker has committed offsets on every partition
and left with SIGTERM, so the dead worker's batch is in Redis but ahead of a real committed
offset: the next worker is redelivered exactly those records and must recognise every one
of them by its offset (``redelivered`` grows by exactly that many), not apply it again.
"""

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
from tests.support.harness import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=800, orders=3_000, start_ms=START, end_ms=START + 300 * MS_PER_DAY, seed=101
)
EXIT_AT_FAULT = 137  # rfm_dev.faults exits with os._exit(137), like a SIGKILL


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


def _committed(sc: Scenario) -> dict[int, int]:
    s = sc.settings
    return kafka_committed(sc.bootstrap, s.kafka.app_id, s.kafka.orders_topic, s.kafka.partitions)


def _commit_cleanly(sc: Scenario, worker: Worker) -> None:
    """Let ``worker`` apply something on every partition, then SIGTERM it: it commits what
    it applied, so the group's committed offsets are real (not -1) everywhere."""
    partitions = range(sc.settings.kafka.partitions)
    before = sc.applied_offsets()
    wait_for(
        lambda: all(sc.applied_offsets().get(p, -1) > before.get(p, -1) for p in partitions),
        90,
        "every partition applied",
        worker,
    )
    assert worker.stop() == 0, worker.log_tail()
    committed, applied = _committed(sc), sc.applied_offsets()
    assert all(committed[p] == applied[p] + 1 for p in partitions), (committed, applied)


def _ahead_of_commit(sc: Scenario) -> tuple[dict[int, int], dict[int, int]]:
    """After a worker died between its Redis write and its commit: per partition, how many
    applied records the group has not committed (all of them >= 0, some > 0), and the
    applied offsets."""
    applied, committed = sc.applied_offsets(), _committed(sc)
    assert all(c >= 0 for c in committed.values()), ("nothing was committed", committed)
    ahead = {p: applied.get(p, -1) + 1 - committed[p] for p in committed}
    assert all(n >= 0 for n in ahead.values()), ("Redis behind the Kafka commit", ahead)
    assert sum(ahead.values()) > 0, ("Redis should be ahead of the Kafka commit", ahead)
    return ahead, applied


def _redeliveries_recognised(
    sc: Scenario, ahead: dict[int, int], applied: dict[int, int], expected_total: int
) -> Worker:
    """A clean worker starts from the committed offsets: it must count exactly the records
    between them and what Redis applied as redelivered, then move past them."""
    worker = sc.worker().start()
    wait_for(
        lambda: all(sc.applied_offsets()[p] > applied[p] for p, n in ahead.items() if n),
        90,
        "the new worker past the records the dead one applied",
        worker,
    )
    assert sc.stats().get("redelivered", 0) == expected_total, (sc.stats(), ahead)
    return worker


def test_sigkill_at_random_points_and_between_redis_write_and_commit(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    rng = random.Random(20250301)
    events = list(generate_history(PROFILE))
    # ~80 events/s: the stream lasts through every kill below (about 40 s).
    publisher = sc.paced(events, chunk=40, interval=0.5)
    run = FaultRun("sigkill_worker")
    recoveries: list[float] = []
    redelivered = 0
    ahead_at_kills: list[dict[int, int]] = []
    try:
        # 1. A clean worker commits; then one dies after its batch is in Redis, before its
        #    scores and its offset commit; the next must recognise exactly those records.
        _commit_cleanly(sc, sc.worker("clean-1").start())
        _die_at(sc, "after_apply")
        ahead, applied = _ahead_of_commit(sc)
        ahead_at_kills.append(ahead)
        redelivered += sum(ahead.values())
        worker = _redeliveries_recognised(sc, ahead, applied, redelivered)

        # 2. The same after scores and outbox are written, still before the offset commit.
        _commit_cleanly(sc, worker)
        _die_at(sc, "after_score")
        ahead, applied = _ahead_of_commit(sc)
        ahead_at_kills.append(ahead)
        redelivered += sum(ahead.values())
        worker = _redeliveries_recognised(sc, ahead, applied, redelivered)

        # 3. Clean workers SIGKILLed at random progress points while events flow.
        for i in range(2):
            assert publisher.is_alive(), "the events stopped flowing before the random kills"
            if i:
                before = sc.accounted()
                worker = sc.worker().start()
                recoveries.append(
                    wait_for(_reached(sc, before + 1), 90, "progress after restart", worker)
                )
            target = min(sc.accounted() + rng.randint(30, 400), len(events) - 1)
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
    run.extra.update(
        kills=4,
        recoveries=[round(r, 2) for r in recoveries],
        uncommitted_at_fault_kills=ahead_at_kills,
    )
    verdict = sc.verify(run, expect_change_duplicates=None)
    # The fault-point batches came again and were recognised (the random kills add more).
    assert verdict.stats.get("redelivered", 0) >= redelivered > 0
