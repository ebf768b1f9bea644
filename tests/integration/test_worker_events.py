"""Each event type and each dead-letter reason, through a real broker, worker and Redis."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
import redis

from state.keys import Keys
from tests.reference import Config, expected, fold
from tests.support.harness import (
    Worker,
    accounted,
    outbox_empty,
    produce,
    read_topic,
    rfm_env,
    settings_of,
    wait_until,
)
from tests.support.state_reads import read_profiles

pytestmark = pytest.mark.integration

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(days: float) -> str:
    return (DAY0 + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def ev(**fields: object) -> tuple[bytes, bytes]:
    key = str(fields.get("customer_id", "none")).encode()
    return key, orjson.dumps(fields)


def ms(days: float) -> int:
    return int((DAY0 + timedelta(days=days)).timestamp() * 1000)


GOOD = [
    ev(order_id="o1", customer_id="c1", amount="100.00", occurred_at=at(0)),
    ev(order_id="o2", customer_id="c1", amount="50.00", occurred_at=at(10)),
    ev(order_id="o2", customer_id="c1", amount="50.00", occurred_at=at(10)),  # producer retry
    ev(
        type="refund",
        order_id="o2",
        customer_id="c1",
        amount="20",
        refund_id="r1",
        occurred_at=at(11),
    ),
    ev(
        type="refund",
        order_id="o2",
        customer_id="c1",
        amount="20",
        refund_id="r1",
        occurred_at=at(11),
    ),  # the same refund again
    ev(
        type="refund",
        order_id="o2",
        customer_id="c1",
        amount="100",
        refund_id="r2",
        occurred_at=at(12),
    ),  # more than is left: capped at 30.00
    ev(type="cancel", order_id="o1", customer_id="c1", occurred_at=at(13)),
    # c2: out of order, then the latest purchase is cancelled: recency falls back
    ev(order_id="o4", customer_id="c2", amount="10.00", occurred_at=at(20)),
    ev(order_id="o3", customer_id="c2", amount="5.50", currency="USD", occurred_at=ms(5)),
    ev(type="cancel", order_id="o4", customer_id="c2", occurred_at=at(21)),
    ev(type="cancel", order_id="o4", customer_id="c2", occurred_at=at(21)),  # duplicate cancel
    # c3 { }:* ids stay in their own keys
    ev(order_id="x:*", customer_id="c{3}:*", amount="999.99", occurred_at=at(30)),
]

FUTURE = (datetime.now(UTC) + timedelta(days=2)).isoformat()
BAD = {
    "payload_too_large": (b"c9", b'{"pad": "' + b"x" * 70_000 + b'"}'),
    "malformed_json": (b"c9", b"{nope"),
    "not_an_object": (b"c9", b"[1, 2]"),
    "missing_field": ev(customer_id="c9", amount="1", occurred_at=at(1)),
    "invalid_field": ev(order_id="o9", customer_id=5, amount="1", occurred_at=at(1)),
    "invalid_type": ev(type="swap", order_id="o9", customer_id="c9", amount="1", occurred_at=at(1)),
    "invalid_amount": ev(order_id="o9", customer_id="c9", amount="abc", occurred_at=at(1)),
    "negative_amount": ev(order_id="o9", customer_id="c9", amount="-1", occurred_at=at(1)),
    "amount_too_large": ev(
        order_id="o9", customer_id="c9", amount="1" + "0" * 30, occurred_at=at(1)
    ),
    "unknown_currency": ev(
        order_id="o9", customer_id="c9", amount="1", currency="XXX", occurred_at=at(1)
    ),
    "invalid_timestamp": ev(order_id="o9", customer_id="c9", amount="1", occurred_at="yesterday"),
    "timestamp_in_future": ev(order_id="o9", customer_id="c9", amount="1", occurred_at=FUTURE),
    "unknown_order": ev(
        type="refund", order_id="zz", customer_id="c1", amount="1", occurred_at=at(14)
    ),
    "order_cancelled": ev(
        type="refund", order_id="o4", customer_id="c2", amount="1", occurred_at=at(22)
    ),
}


def test_every_event_type_and_dead_letter_reason(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event")
    settings = settings_of(env)
    events = GOOD + list(BAD.values())
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        produce(kafka_bootstrap, settings.kafka.orders_topic, events)
        wait_until(lambda: accounted(redis_url) == len(events), 60, "all events accounted", worker)
        wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    r = redis.Redis.from_url(redis_url)
    stats = {k.decode(): int(v) for k, v in r.hgetall("rfm:stats").items()}
    assert stats == {
        "applied": 9,
        "duplicate": 3,
        **{f"dlq:{reason}": 1 for reason in BAD},
    }

    c1, c2, c3 = read_profiles(r, ["c1", "c2", "c{3}:*"]).values()
    assert c1 and c2 and c3
    assert (c1.first_ms, c1.last_ms, c1.orders, c1.spend_minor) == (ms(10), ms(10), 1, 0)
    assert (c2.first_ms, c2.last_ms, c2.orders, c2.spend_minor) == (ms(5), ms(5), 1, 550)
    assert (c3.orders, c3.spend_minor) == (1, 99999)
    assert r.hexists(Keys().profiles_of("c{3}:*"), "c{3}:*") == 1

    # the independent oracle (tests/reference) agrees on every customer
    config = Config.from_env(env)
    oracle = fold((v for _, v in events), config, int(datetime.now(UTC).timestamp() * 1000))
    assert dict(oracle.outcomes) == stats
    profiles = expected(oracle, config, oracle.clock_ms)
    for state in (c1, c2, c3):
        p = profiles[state.customer_id]
        exp = (p.first_ms, p.last_ms, p.orders, p.spend_minor, p.r, p.f, p.m)
        exp += (p.recency_days, p.segment)
        got = (
            state.first_ms,
            state.last_ms,
            state.orders,
            state.spend_minor,
            state.r,
            state.f,
            state.m,
            state.recency_days,
            state.segment,
        )
        assert got == exp, state.customer_id

    # dead letters: original bytes, a reason header, a readable message
    dlq = read_topic(kafka_bootstrap, settings.kafka.dlq_topic, expect=len(BAD))
    by_reason = {dict(m.headers)["rfm.dlq.reason"].decode(): m for m in dlq}
    assert set(by_reason) == set(BAD)
    for reason, (_, value) in BAD.items():
        record = by_reason[reason]
        assert record.value == value
        assert dict(record.headers)["rfm.dlq.message"]
        assert dict(record.headers)["rfm.dlq.source"].startswith(
            settings.kafka.orders_topic.encode()
        )

    # segment changes: one per change, a consistent chain per customer in topic order (what
    # a consumer reads), numbered 1, 2, ... as they come, deterministic ids
    changes = [
        orjson.loads(m.value) for m in read_topic(kafka_bootstrap, settings.kafka.changes_topic)
    ]
    per_customer = Counter(c["customer_id"] for c in changes)
    assert set(per_customer) == {"c1", "c2", "c{3}:*"}
    for cid in per_customer:
        chain = [c for c in changes if c["customer_id"] == cid]
        assert [c["sequence"] for c in chain] == list(range(1, len(chain) + 1)), chain
        assert chain[0]["previous_segment"] is None
        for before, after in pairwise(chain):
            assert after["previous_segment"] == before["segment"]
        assert chain[-1]["segment"] == profiles[cid].segment
        assert len({c["event_id"] for c in chain}) == len(chain)
    sample = changes[0]
    assert set(sample) >= {
        "event_id",
        "customer_id",
        "previous_segment",
        "segment",
        "r",
        "f",
        "m",
        "recency_days",
        "orders",
        "spend",
        "currency",
        "as_of",
        "cause",
        "schema_version",
    }
