"""An event that fails to apply and whose dead letter cannot be written either: the worker
exits 70 (stream/isolation.py ``EXIT_UNRECOVERABLE``) without acknowledging it, and after a
restart the event is applied exactly once (docs/reliability.md, "How it holds together" 2;
README, RfmWorkerDown: "exit code 70 is an unrecoverable batch").

Both failures come from real conditions: the fault point ``apply:<order_id>`` makes the
batch and the single-event apply raise (a bug), and the dead letter goes to the outbox
stream of the event's input partition, where a string is planted, so XADD answers WRONGTYPE
(not a transient error: nothing to wait for). One partition; the first records reach the
worker as one record batch, five good purchases and then the poisoned one, so the worker
applies the five one by one, then stops before scoring them (nothing else writes to the
planted key) and before acknowledging anything: after the restart exactly those five are
redeliveries.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from rfm_dev.shop import ShopEvent, ShopProfile, history_events
from state.model import MS_PER_DAY
from stream.isolation import EXIT_UNRECOVERABLE
from tests.faults.common import START, FaultRun, kafka_committed, produce_record_batch, wait_for
from tests.faults.scenario import Scenario
from tests.support.harness import read_topic
from tests.support.state_reads import has_order, read_profile

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

BEFORE = 5  # good purchases in the poisoned event's batch, ahead of it
PROFILE = ShopProfile(
    customers=80, orders=320, start_ms=START, end_ms=START + 120 * MS_PER_DAY, seed=707
)


def _doc(value: bytes) -> dict[str, object]:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _unique_purchase(events: list[ShopEvent]) -> int:
    """A good purchase whose order id no other event names: it can be published first,
    nothing refers back to it, and it never becomes a dead letter (which needs the outbox)."""
    order_ids = Counter(_doc(e.value).get("order_id") for e in events)
    for index, event in enumerate(events):
        doc = _doc(event.value)
        purchase = doc.get("type", "purchase") == "purchase"
        if purchase and not event.bad and order_ids[doc.get("order_id")] == 1:
            return index
    raise AssertionError("no suitable order")


def test_unwritable_dead_letter_exits_70_and_the_event_is_applied_once_after_restart(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_PARTITIONS="1")
    topic, group = sc.settings.kafka.orders_topic, sc.settings.kafka.app_id
    events = list(history_events(PROFILE))
    picked = [events.pop(_unique_purchase(events)) for _ in range(BEFORE + 1)]
    head = [(e.key, e.value) for e in picked]
    rest = [(e.key, e.value) for e in events]
    poison = head[BEFORE]
    doc = orjson.loads(poison[1])
    order_id, customer = doc["order_id"], doc["customer_id"]

    produce_record_batch(kafka_bootstrap, topic, 0, head)  # offsets 0..BEFORE, one fetch
    sc.published.extend(v for _, v in head)
    sc.publish(rest)
    # The dead letter cannot be written: the partition's outbox is not a stream.
    outbox = sc.keys.outbox(0)
    sc.redis.set(outbox, b"planted: not a stream")

    worker = sc.worker("poisoned", RFM_TEST_FAULTS=f"apply:{order_id}=raise").start()
    proc = worker.proc
    assert proc is not None
    wait_for(lambda: proc.poll() is not None, 60, "the worker to stop on its own", worker)
    assert proc.returncode == 70 == EXIT_UNRECOVERABLE, worker.log_tail()  # as the README says
    log = worker.log_path.read_text(errors="replace")
    assert "batch apply failed; isolating the event that fails" in log
    assert f"event at {topic}:0:{BEFORE} fails to apply" in log
    assert "cannot even dead-letter an event; stopping without acknowledging it" in log

    # The five before it applied, it not, nothing acknowledged, nothing dead-lettered.
    assert sc.applied_offsets() == {0: BEFORE - 1}
    assert sc.stats() == {"applied": BEFORE}
    assert kafka_committed(kafka_bootstrap, group, topic, 1) == {0: -1}
    assert not has_order(sc.redis, customer, order_id, sc.keys)
    assert sc.redis.type(outbox) == b"string"

    sc.redis.delete(outbox)
    restarted = sc.worker("restarted").start()
    try:
        seconds = sc.wait_accounted(restarted, 90)
        sc.wait_relayed(restarted, 60)
    finally:
        assert restarted.stop() == 0, restarted.log_tail()

    run = FaultRun("unrecoverable_exit_70", extra={"poisoned_order": order_id})
    run.extra["recovery_seconds_after_restart"] = round(seconds, 2)
    # Each event once: the five are recognised by their offsets, nothing else is repeated.
    assert sc.stats().get("redelivered") == BEFORE, sc.stats()
    verdict = sc.verify(run)
    assert "dlq:internal_error" not in verdict.stats

    assert has_order(sc.redis, customer, order_id, sc.keys)
    state = read_profile(sc.redis, customer, sc.keys)
    assert state is not None
    assert state.orders == len(verdict.oracle.customers[customer].live_orders())
    changes = [
        orjson.loads(r.value)
        for r in read_topic(kafka_bootstrap, sc.settings.kafka.changes_topic)
        if r.key == customer.encode()
    ]
    assert changes and changes[0]["sequence"] == 1 and changes[0]["cause"] == "order", changes
