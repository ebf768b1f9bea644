"""``rfm-stream forget``: after it, Redis holds nothing that names the customer, the
``erased`` event is on the change topic, and the id can come back as a new customer whose
events never repeat an ``event_id`` of the erased one. Real broker, worker and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis

from tests.support.harness import (
    Worker,
    accounted,
    outbox_empty,
    produce,
    read_topic,
    rfm_env,
    run_cli,
    settings_of,
    wait_until,
)
from tests.support.state_reads import read_profiles

pytestmark = pytest.mark.integration

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
GONE = "erase-me/Ω {7}"  # non-ASCII, a slash, braces: nothing special about it may leak
KEPT = ("kept-1", "kept-2")


def purchase(cid: str, order: str, amount: str, day: float) -> tuple[bytes, bytes]:
    at = (DAY0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")
    return cid.encode(), orjson.dumps(
        {"order_id": order, "customer_id": cid, "amount": amount, "occurred_at": at}
    )


def refund(cid: str, order: str, amount: str, day: float, refund_id: str) -> tuple[bytes, bytes]:
    at = (DAY0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")
    return cid.encode(), orjson.dumps(
        {
            "type": "refund",
            "order_id": order,
            "customer_id": cid,
            "amount": amount,
            "refund_id": refund_id,
            "occurred_at": at,
        }
    )


def everything_in(r: redis.Redis) -> list[bytes]:
    """Every key name and every byte string stored under it, whatever its type."""
    found: list[bytes] = []
    for key in r.scan_iter(count=1000):
        found.append(key)
        kind = r.type(key)
        if kind == b"string":
            found.append(r.get(key) or b"")
        elif kind == b"hash":
            for field, value in r.hgetall(key).items():
                found += [field, value]
        elif kind == b"list":
            found += r.lrange(key, 0, -1)
        elif kind == b"set":
            found += list(r.smembers(key))
        elif kind == b"zset":
            found += [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            for _, fields in r.xrange(key):
                for field, value in fields.items():
                    found += [field, value]
        else:
            raise AssertionError(f"{key!r} has a type this test does not read: {kind!r}")
    return found


def changes_of(kafka_bootstrap: str, topic: str, cid: str) -> list[dict[str, object]]:
    events = [orjson.loads(m.value) for m in read_topic(kafka_bootstrap, topic)]
    return [e for e in events if e["customer_id"] == cid]


def test_forget_erases_everything_and_the_id_can_come_back(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event")
    settings = settings_of(env)
    topic, changes_topic = settings.kafka.orders_topic, settings.kafka.changes_topic
    r = redis.Redis.from_url(redis_url)
    # Three steps, each scored before the next, so the customer's due time moves between
    # hours and leaves an entry in more than one due list, and changes segment on the way.
    steps = [
        [purchase(GONE, "g1", "40.00", 0), purchase(KEPT[0], "k1", "10.00", 0)],
        [purchase(GONE, "g2", "900.00", 20), refund(GONE, "g2", "15.00", 21, "r-1")],
        [purchase(GONE, "g3", "300.00", 45), purchase(KEPT[1], "k2", "5.00", 46)],
    ]
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        sent = 0
        for step in steps:
            sent += produce(kafka_bootstrap, topic, step)
            wait_until(lambda n=sent: accounted(redis_url) == n, 60, "step applied", worker)
            wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)
        gone_bytes = GONE.encode()
        before = [b for b in everything_in(r) if gone_bytes in b]
        due_lists = {
            k
            for k in r.scan_iter(match="rfm:due:*")
            if any(gone_bytes in e for e in r.lrange(k, 0, -1))
        }
        assert len(due_lists) >= 2, "the scenario should leave entries in two due lists"
        assert before, "the customer should be in Redis before it is forgotten"
        chain_before = changes_of(kafka_bootstrap, changes_topic, GONE)
        assert chain_before, "the customer should have had segment changes"

        done = run_cli(env, "forget", GONE)
        assert done.returncode == 0, done.stderr
        report = orjson.loads(done.stdout)
        last = chain_before[-1]
        assert report["previous_segment"] == last["segment"]
        assert report["sequence"] == last["sequence"] + 1  # type: ignore[operator]
        assert report["order_records_deleted"] == 4  # three orders and one refund mark
        assert report["due_entries_deleted"] >= 2
        assert report["event_published"] is True

        # Nothing in Redis names the customer: no key, field, value, entry or member.
        leftovers = [b for b in everything_in(r) if gone_bytes in b]
        assert leftovers == []
        assert int(r.get("rfm:erasures") or 0) == 1
        sizes = {k.decode(): int(v) for k, v in r.hgetall("rfm:segments").items()}
        assert sum(sizes.values()) == len(KEPT)
        kept = read_profiles(r, list(KEPT))
        assert all(kept.values()), "the other customers are untouched"

        erased = changes_of(kafka_bootstrap, changes_topic, GONE)[-1]
        assert erased["cause"] == "erased"
        assert erased["segment"] is None and erased["previous_segment"] == last["segment"]
        assert (erased["r"], erased["f"], erased["m"]) == (None, None, None)
        assert erased["sequence"] == report["sequence"]

        missing = run_cli(env, "customer", GONE)
        assert missing.returncode == 1 and "no customer" in missing.stderr

        # The id comes back: a new customer with only its new order, and event ids that
        # never repeat one the erased customer had.
        sent += produce(kafka_bootstrap, topic, [purchase(GONE, "g9", "12.00", 50)])
        wait_until(lambda: accounted(redis_url) == sent, 60, "return applied", worker)
        wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    back = read_profiles(r, [GONE])[GONE]
    assert back is not None and (back.orders, back.spend_minor) == (1, 1200)
    chain = changes_of(kafka_bootstrap, changes_topic, GONE)
    assert len(chain) == len(chain_before) + 2
    returned = chain[-1]
    assert returned["previous_segment"] is None and returned["cause"] == "order"
    assert returned["sequence"] > erased["sequence"]  # type: ignore[operator]
    assert len({e["event_id"] for e in chain}) == len(chain)


def test_forget_refuses_unknown_and_invalid_ids(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    unknown = run_cli(env, "forget", "nobody")
    assert unknown.returncode == 1 and "no customer 'nobody'" in unknown.stderr
    hostile = run_cli(env, "forget", "bad\x1fid")
    assert hostile.returncode == 2 and "control character" in hostile.stderr
    too_long = run_cli(env, "forget", "x" * 257)
    assert too_long.returncode == 2 and "limit is 256" in too_long.stderr
    r = redis.Redis.from_url(redis_url)
    assert r.get("rfm:erasures") is None  # nothing was erased
