"""Scenario 4: rebalances while events flow, 1 -> 2 -> 3 -> 2 -> 1 workers over 4 partitions
(workers join, and leave with SIGTERM). Each rebalance settles within a bound, and the
result equals the batch fold.

Settle time of a change: from starting the new worker (until it has synced with the group)
or from the leaving worker's exit, until every partition has applied events published after
that point, so no partition is left without an owner. /readyz of every live worker is
recorded after each settle (a worker the assignor gave no partition reports 503).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.faults.common import START, FaultRun, http_get, wait_for
from tests.faults.scenario import Scenario
from tests.support.harness import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=1_500, orders=6_000, start_ms=START, end_ms=START + 300 * MS_PER_DAY, seed=404
)
SETTLE_BOUND_S = 30.0
HOLD_S = 2.0  # events keep flowing a little on each settled membership


def _synced(worker: Worker) -> bool:
    text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
    return "Successfully synced group" in text


def _all_partitions_moved(sc: Scenario, since: dict[int, int]) -> bool:
    """Every partition applied events after ``since``: none is left without an owner."""
    now = sc.applied_offsets()
    return all(now.get(p, -1) > since.get(p, -1) for p in range(sc.settings.kafka.partitions))


def test_rebalances_one_two_three_two_one_workers(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_BATCH_SIZE="100")
    events = list(generate_history(PROFILE))
    # ~100 events/s, so every partition gets events throughout the rebalances.
    publisher = sc.paced(events, chunk=25, interval=0.25)
    live: list[Worker] = []
    settle: dict[str, float] = {}
    stop_codes: list[int | None] = []
    readyz: dict[str, list[tuple[int, bytes]]] = {}

    def change(label: str, action: str) -> None:
        started = time.monotonic()
        if action == "start":
            joining = sc.worker(f"w{len(settle) + 1}").start()
            live.append(joining)
            wait_for(lambda: _synced(joining), 60, f"{label}: new worker in the group", joining)
        else:
            leaving = live.pop(0)  # the oldest: the group leader the first time
            stop_codes.append(leaving.stop())
        since = sc.applied_offsets()
        wait_for(
            lambda: _all_partitions_moved(sc, since),
            SETTLE_BOUND_S + 30,
            f"rebalance {label} to settle",
            live[-1],
            poll=0.1,
        )
        settle[label] = time.monotonic() - started
        readyz[label] = [http_get(w, "/readyz") for w in live]
        time.sleep(HOLD_S)

    try:
        for label, action in (
            ("0->1", "start"),
            ("1->2", "start"),
            ("2->3", "start"),
            ("3->2", "stop"),
            ("2->1", "stop"),
        ):
            change(label, action)
            assert publisher.is_alive(), "the events stopped flowing before the rebalances ended"
        publisher.finish()
        sc.wait_accounted(live[0], 120)
        sc.wait_relayed(live[0], 60)
    finally:
        publisher.finish()
        for worker in live:
            stop_codes.append(worker.stop())
    assert stop_codes == [0, 0, 0], stop_codes

    rebalances = {k: round(v, 2) for k, v in settle.items() if k != "0->1"}
    run = FaultRun("rebalance_1_2_3_2_1", recovery_seconds=max(rebalances.values()))
    run.extra.update(settle_seconds=rebalances, first_start_seconds=round(settle["0->1"], 2))
    run.extra["readyz_after_settle"] = {k: [s for s, _ in v] for k, v in readyz.items()}
    sc.verify(run, expect_change_duplicates=None)
    # Every live worker answers /readyz after each rebalance, and Redis is reachable from it.
    for label, answers in readyz.items():
        for status, body in answers:
            assert status in (200, 503), (label, status)
            assert orjson.loads(body)["checks"]["redis"] is True, (label, body)
    slow = {k: v for k, v in rebalances.items() if v > SETTLE_BOUND_S}
    assert not slow, f"rebalances slower than {SETTLE_BOUND_S}s: {slow}"
