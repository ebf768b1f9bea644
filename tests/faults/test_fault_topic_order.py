"""Scenario 11: the README tells consumers to keep the latest segment-change event of each
customer, so a customer's changes must reach the topic in the order they happened, across
relay handovers: two and three workers, one joining and one leaving with SIGTERM
(rebalances), and two SIGKILLed while their relays are busy (changes written to the outbox
and not yet deleted), so another worker's relay takes their outboxes over once the lock
expires and publishes again what they may already have published.

Almost every order moves its customer across a segment boundary (a fourth order makes F
3: ``general``; cancelling it again makes F 2: ``new``), so the relays always have changes
in flight. The verdict reads the topic as a consumer does, in offset order per partition
(tests/support/checks.py ``check_chains``): deduplicated by event id keeping the first,
every customer's changes come numbered 1, 2, ... n with no gap and never going back, each
links to the one before it, and the last carries the segment the store holds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.faults.common import FaultRun, wait_for
from tests.faults.scenario import Scenario
from tests.reference import MS_PER_DAY
from tests.reference.records import iso
from tests.support.harness import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

CUSTOMERS = 300
FLIPS = 8  # purchase + cancel pairs per customer, each event a segment change
T0 = int(datetime(2025, 9, 1, tzinfo=UTC).timestamp() * 1000)


def _events() -> list[tuple[bytes, bytes]]:
    """Step by step over all customers, so each customer's events span the whole stream.
    Three purchases (``new``), then FLIPS times a fourth purchase (``general``) and its
    cancel (``new`` again). Everything within 20 days, so R stays 5 at the event clock."""
    steps: list[list[dict[str, object]]] = [[] for _ in range(3 + 2 * FLIPS)]
    for c in range(CUSTOMERS):
        cid = f"t{c:03d}"
        for n in range(3):
            steps[n].append({"order_id": f"{cid}-base{n}", "customer_id": cid, "amount": "20.00"})
        for k in range(FLIPS):
            order = {"order_id": f"{cid}-flip{k}", "customer_id": cid}
            steps[3 + 2 * k].append({**order, "amount": "20.00"})
            steps[4 + 2 * k].append({**order, "type": "cancel"})
    out = []
    for step, docs in enumerate(steps):
        for c, doc in enumerate(docs):
            doc["occurred_at"] = iso(T0 + step * MS_PER_DAY + c * 1000)
            out.append((str(doc["customer_id"]).encode(), orjson.dumps(doc)))
    return out


def _synced(worker: Worker) -> bool:
    text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
    return "Successfully synced group" in text


def _kill_while_relaying(sc: Scenario, worker: Worker, at_least: int = 20) -> int:
    """SIGKILL ``worker`` the moment the outbox holds changes (written, not yet deleted:
    queued or being published); returns how many it held."""
    deadline = time.monotonic() + 15
    backlog = sc.outbox_backlog()
    while backlog < at_least and time.monotonic() < deadline:
        time.sleep(0.005)
        backlog = sc.outbox_backlog()
    worker.kill()
    assert backlog > 0, "the relay was idle at the kill"
    return backlog


def _progress(sc: Scenario, worker: Worker, events: int) -> None:
    target = sc.accounted() + events
    wait_for(lambda: sc.accounted() >= target, 60, f"{events} more events applied", worker)


def test_changes_keep_their_order_through_rebalances_and_kills(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_BATCH_SIZE="100")
    events = _events()
    publisher = sc.paced(events, chunk=60, interval=0.25)  # ~240 events/s for ~25 s
    backlog_at_kills: list[int] = []
    stop_codes: list[int | None] = []
    live: list[Worker] = []
    try:
        # Two workers share the partitions (and race for the outboxes).
        live = [sc.worker("w1").start(), sc.worker("w2").start()]
        for w in live:
            wait_for(lambda w=w: _synced(w), 60, "worker in the group", w)
        _progress(sc, live[1], 300)
        # One dies with its relay busy: its outbox locks outlive it for up to 10 s.
        backlog_at_kills.append(_kill_while_relaying(sc, live.pop(0)))
        # A third joins (rebalance) while the dead one's partitions wait for the eviction.
        live.append(sc.worker("w3").start())
        wait_for(lambda: _synced(live[-1]), 60, "w3 in the group", live[-1])
        _progress(sc, live[-1], 300)
        # The oldest leaves cleanly (rebalance, its relay releases its locks).
        stop_codes.append(live.pop(0).stop())
        _progress(sc, live[-1], 300)
        assert publisher.is_alive(), "the events stopped flowing before the last kill"
        # The last one dies with its relay busy; a fresh worker finishes the stream.
        backlog_at_kills.append(_kill_while_relaying(sc, live.pop(0)))
        live.append(sc.worker("w4").start())
        publisher.finish()
        sc.wait_accounted(live[-1], 120)
        sc.wait_relayed(live[-1], 60)
    finally:
        publisher.finish()
        for worker in live:
            stop_codes.append(worker.stop())
    assert stop_codes == [0, 0], stop_codes

    run = FaultRun("topic_order_rebalances_and_kills")
    run.extra.update(customers=CUSTOMERS, outbox_backlog_at_kills=backlog_at_kills)
    verdict = sc.verify(run, expect_change_duplicates=None)
    # Most events were segment changes (a purchase and its cancel in one batch make none).
    chains = verdict.order_path.changes.by_customer
    assert len(chains) == CUSTOMERS
    changes = sum(len(chain) for chain in chains.values())
    assert changes >= CUSTOMERS * FLIPS, changes
