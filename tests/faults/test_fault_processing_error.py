"""Scenario 2: a bug (an exception) while applying one event. That event alone is
dead-lettered with reason ``internal_error``; every other event of its batch and of the
stream is applied as usual, and the accounting stays exact."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.faults.common import START, FaultRun, header, http_get
from tests.faults.scenario import Scenario
from tests.support.harness import read_topic
from tests.support.state_reads import has_order

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=500, orders=2_000, start_ms=START, end_ms=START + 200 * MS_PER_DAY, seed=202
)


def _poison_index(events: list[tuple[bytes, bytes]]) -> int:
    """A purchase in the middle of the stream whose order id no other event names, so
    dead-lettering it changes nothing but that one order."""
    order_ids: Counter[str] = Counter()
    for _, value in events:
        try:
            order_ids[orjson.loads(value).get("order_id")] += 1
        except (orjson.JSONDecodeError, AttributeError):
            continue
    for index in range(len(events) // 2, len(events)):
        doc = orjson.loads(events[index][1])
        if doc.get("type", "purchase") == "purchase" and order_ids[doc["order_id"]] == 1:
            return index
    raise AssertionError("no suitable order")


def test_exception_while_applying_dead_letters_only_that_event(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    events = list(generate_history(PROFILE))
    poison = _poison_index(events)
    order_id = orjson.loads(events[poison][1])["order_id"]
    sc.publish(events)

    worker = sc.worker(RFM_TEST_FAULTS=f"apply:{order_id}=raise").start()
    try:
        seconds = sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
        assert worker.proc is not None and worker.proc.poll() is None, "worker died"
        assert http_get(worker, "/healthz")[0] == 200
    finally:
        assert worker.stop() == 0, worker.log_tail()
    log = worker.log_path.read_text(errors="replace")
    assert "batch apply failed; isolating the event that fails" in log

    run = FaultRun("processing_exception", extra={"poisoned_order": order_id})
    run.extra["processing_seconds"] = round(seconds, 2)
    oracle = sc.oracle(
        values=(v for i, v in enumerate(sc.published) if i != poison),
        extra_outcomes={"dlq:internal_error": 1},
    )
    verdict = sc.verify(run, oracle=oracle)
    assert verdict.stats["dlq:internal_error"] == 1

    internal = [
        r
        for r in read_topic(kafka_bootstrap, sc.settings.kafka.dlq_topic)
        if header(r, "rfm.dlq.reason") == "internal_error"
    ]
    assert len(internal) == 1, internal
    record = internal[0]
    assert record.value == events[poison][1], "the dead letter must carry the original bytes"
    assert record.key == events[poison][0]
    assert "InjectedFault" in (header(record, "rfm.dlq.message") or "")
    source = header(record, "rfm.dlq.source") or ""
    assert source.startswith(f"{sc.settings.kafka.orders_topic}:")
    # The customer of the poisoned order still has every other order of theirs.
    customer = orjson.loads(events[poison][1])["customer_id"]
    assert not has_order(sc.redis, customer, order_id, sc.keys)
