"""A script that fails from inside Lua in the middle of a batch of many customers: the
events before and after the failing one are applied exactly once, the failing one alone is
dead-lettered (``internal_error``), and the state equals the batch fold customer by customer.

Two real ways a script fails after it has read part of a batch (issue: "two ways events go
missing"): a key of the wrong type where the script reads a customer's order records
(WRONGTYPE from ``redis.call``), and an order record whose value is not in the packed format
(a Lua error on an unforeseen value). Before the fix the script had already written the
order records of the events before the failing one, so when the batch was applied again one
event at a time they were counted as duplicates and never reached their profiles.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.faults.common import FaultRun, wait_for
from tests.faults.scenario import Scenario
from tests.support.state_reads import order_field, orders_key_of, read_profiles

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

WRONG_TYPE = "victim"  # its order records' key holds a string
CORRUPT = "corrupt"  # one of its order records holds a value in no known format
CORRUPT_ORDER = "corrupt-o1"
DAY = "2025-06-0{}T12:00:00Z"


def _purchase(cid: str, oid: str, day: int, amount: str) -> tuple[bytes, bytes]:
    doc = {"order_id": oid, "customer_id": cid, "amount": amount, "occurred_at": DAY.format(day)}
    return cid.encode(), orjson.dumps(doc)


def _events() -> tuple[list[tuple[bytes, bytes]], set[int]]:
    """Good customers' purchases around the two failing events; returns the failing indexes."""
    events: list[tuple[bytes, bytes]] = []
    for i in range(300):
        events.append(_purchase(f"good{i}", f"good{i}-o1", 1 + i % 5, f"{10 + i % 90}.50"))
    failing = {len(events)}
    events.append(_purchase(WRONG_TYPE, "victim-o1", 3, "25.00"))
    for i in range(150):
        events.append(_purchase(f"good{i}", f"good{i}-o2", 6, "120.00"))
    failing.add(len(events))
    refund = {
        "type": "refund",
        "order_id": CORRUPT_ORDER,
        "customer_id": CORRUPT,
        "amount": "5.00",
        "occurred_at": DAY.format(7),
    }
    events.append((CORRUPT.encode(), orjson.dumps(refund)))
    for i in range(200):
        events.append(_purchase(f"late{i}", f"late{i}-o1", 8, "999.99"))
    return events, failing


def test_script_error_mid_batch_dead_letters_only_the_failing_event(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    # One partition and batches larger than the whole stream: the events arrive together.
    sc = Scenario(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        tmp_path,
        RFM_PARTITIONS="1",
        RFM_BATCH_SIZE="2000",
    )
    events, failing = _events()
    r = sc.redis
    wrong_type_key = orders_key_of(WRONG_TYPE, sc.keys)
    corrupt_key = orders_key_of(CORRUPT, sc.keys)
    others = {orders_key_of(k.decode(), sc.keys) for k, _ in events} - {
        wrong_type_key,
        corrupt_key,
    }
    neighbours = [k for k, _ in events if orders_key_of(k.decode(), sc.keys) == wrong_type_key]
    assert set(neighbours) == {WRONG_TYPE.encode()}, "pick another name: a bucket is shared"
    assert corrupt_key not in others or corrupt_key != wrong_type_key
    r.set(wrong_type_key, "not a hash")
    r.hset(corrupt_key, order_field(CORRUPT, CORRUPT_ORDER), "no commas, no numbers")
    sc.publish(events)

    worker = sc.worker().start()
    try:
        sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
        wait_for(lambda: r.scard(sc.keys.dirty) == 0, 30, "every customer scored", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    stats = sc.stats()
    assert stats.get("duplicate", 0) == 0, stats
    assert stats.get("dlq:internal_error") == 2, stats
    assert stats.get("applied") == len(events) - 2, stats
    # Every good customer has both orders (the bug left the early ones with none).
    profiles = read_profiles(r, [f"good{i}" for i in range(300)], sc.keys)
    missing = [cid for cid, p in profiles.items() if p is None]
    assert not missing, f"{len(missing)} customers lost, e.g. {missing[:5]}"

    r.delete(wrong_type_key)  # so the final rescore and the state scan read only ours
    run = FaultRun("script_error_mid_batch")
    oracle = sc.oracle(
        values=(v for i, (_, v) in enumerate(events) if i not in failing),
        extra_outcomes={"dlq:internal_error": 2},
    )
    verdict = sc.verify(run, oracle=oracle)
    assert verdict.stats["applied"] == len(events) - 2
