"""Profile history (#20): every profile's ``previous_segment`` and ``segment_since`` equal a
batch computation over the change topic, through a real broker, worker and Redis: for each
customer, the last change (topic order, deduplicated by event id) says from where it came
(its ``previous_segment``) and when (its ``as_of``); a customer never changed has neither.
Checked as the order path left the state (the Python route scores a batch's customers in
Redis with rescore_in_redis.lua, both its routes) and after a full rescoring pass.

The snapshot topic (RFM_SNAPSHOT_TOPIC, compacted), read from the start keeping each
key's latest value, agrees with ``export``: the same customers (those ever given a segment),
each as of its last segment change; a customer erased has a tombstone as its latest value.

Also: the packed profile's length (the 64-byte listpack limit, state/lua/profile.lua), and
profiles written before the history (eleven fields) read as unknown and gain both fields
at their next segment change."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from rfm_dev.shop import ShopProfile, generate_history
from state.keys import Keys
from state.model import MS_PER_DAY
from tests.reference.records import iso
from tests.support.checks import Changes, read_changes, rescore
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

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
PROFILE = ShopProfile(
    customers=1_500, orders=6_000, start_ms=START, end_ms=START + 420 * MS_PER_DAY, seed=2020
)


def export(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    done = run_cli(env, "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    return {row["customer_id"]: row for row in rows}


def history_of(changes: Changes) -> dict[str, tuple[str | None, str | None]]:
    """The batch computation: each customer's (previous segment, since) from its last change."""
    out = {}
    for cid, chain in changes.by_customer.items():
        last = chain[-1]
        assert last["segment_since"] == last["as_of"], last  # a change entered it at as_of
        out[cid] = (last["previous_segment"], last["as_of"])
    return out


def assert_history_matches(env: dict[str, str], when: str) -> dict[str, dict[str, Any]]:
    changes = read_changes(env["RFM_KAFKA_BOOTSTRAP"], env["RFM_CHANGES_TOPIC"])
    batch = history_of(changes)
    profiles = export(env)
    wrong = {
        cid: (batch.get(cid, (None, None)), (p["previous_segment"], p["segment_since"]))
        for cid, p in profiles.items()
        if batch.get(cid, (None, None)) != (p["previous_segment"], p["segment_since"])
    }
    assert not wrong, f"{when}: {len(wrong)} profiles differ, e.g. {list(wrong.items())[:5]}"
    assert set(batch) <= set(profiles), f"{when}: changes of customers the store lacks"
    moved = sum(1 for p in profiles.values() if p["previous_segment"] is not None)
    assert moved > 100, f"{when}: too few customers changed segment twice to mean anything"
    return profiles


HISTORY = ("segment", "previous_segment", "segment_since")


def read_snapshot(env: dict[str, str]) -> dict[str, dict[str, Any] | None]:
    """The snapshot topic from the start, the latest value per key (None: a tombstone)."""
    latest: dict[str, dict[str, Any] | None] = {}
    for record in read_topic(env["RFM_KAFKA_BOOTSTRAP"], env["RFM_SNAPSHOT_TOPIC"]):
        assert record.key is not None
        latest[record.key.decode()] = None if record.value is None else orjson.loads(record.value)
    return latest


def assert_snapshot_matches(
    env: dict[str, str], profiles: dict[str, dict[str, Any]], when: str
) -> None:
    """Every customer ever given a segment has a snapshot, and no one else; each holds its
    profile's segment, previous segment and since (what a consumer of the segments needs
    current), in ``export``'s fields and order plus ``sequence``; its scores, counts and
    as_of are those of its last change event (a later write that changed no segment, e.g. a
    late order scored at the same clock, queued no change and so no snapshot)."""
    snapshot = read_snapshot(env)
    changes = read_changes(env["RFM_KAFKA_BOOTSTRAP"], env["RFM_CHANGES_TOPIC"])
    changed = {cid for cid, p in profiles.items() if p["segment_since"] is not None}
    assert set(snapshot) == changed, f"{when}: {set(snapshot) ^ changed}"
    wrong, whole = [], 0
    same_as_event = ("r", "f", "m", "recency_days", "orders", "spend", "lifetime_orders",
                     "lifetime_spend", "window_days", "currency", "sequence")  # fmt: skip
    for cid, snap in snapshot.items():
        assert snap is not None, (when, cid)
        p, last = profiles[cid], changes.by_customer[cid][-1]
        assert snap["customer_id"] == cid
        assert list(snap) == [*p, "sequence"], (when, list(snap), list(p))
        if any(snap[k] != p[k] for k in HISTORY):
            wrong.append((cid, {k: (snap[k], p[k]) for k in HISTORY}))
        if any(snap[k] != last[k] for k in same_as_event):
            wrong.append((cid, {k: (snap[k], last[k]) for k in same_as_event}))
        whole += {k: snap[k] for k in p} == p
    assert not wrong, f"{when}: {len(wrong)} snapshots differ, e.g. {wrong[:3]}"
    print(f"{when}: {len(snapshot)} snapshots, {whole} equal to export in every field")


def packed_profiles(r: redis.Redis) -> list[bytes]:
    keys = Keys()
    values: list[bytes] = []
    for key in r.scan_iter(match=keys.profiles_pattern(), count=1000, _type="hash"):
        values += r.hvals(key)
    return values


def report_lengths(r: redis.Redis, when: str) -> float:
    """The packed profiles' lengths, and what they were without the history's two fields."""
    values = packed_profiles(r)
    lengths = sorted(len(v) for v in values)
    without = sorted(len(v) - len(b"".join(v.split(b",")[10:12])) - 2 for v in values)
    over = sum(1 for n in lengths if n >= 64)
    print(
        f"{when}: {len(values)} packed profiles, median {statistics.median(lengths)} bytes "
        f"(p90 {lengths[len(lengths) * 9 // 10]}, max {lengths[-1]}, {over} of 64 or more); "
        f"without the history: median {statistics.median(without)}, max {without[-1]}"
    )
    return statistics.median(lengths)


def test_profile_history_equals_the_change_topic(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event")
    settings = settings_of(env)
    events = list(generate_history(PROFILE))
    produce(kafka_bootstrap, settings.kafka.orders_topic, events)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: accounted(redis_url) == len(events), 240, "all events accounted", worker)
        wait_until(lambda: outbox_empty(redis_url), 60, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    profiles = assert_history_matches(env, "the order path")
    assert_snapshot_matches(env, profiles, "the order path")

    r = redis.Redis.from_url(redis_url)
    assert report_lengths(r, "the order path") < 64

    # A full pass as of a day after the last event: every customer's R drops where due.
    rescore(env, iso(PROFILE.end_ms + 120 * MS_PER_DAY))
    profiles = assert_history_matches(env, "after a rescoring pass")
    assert report_lengths(r, "after a rescoring pass") < 64
    assert_snapshot_matches(env, profiles, "after a rescoring pass")

    # An erasure: the customer's latest snapshot is a tombstone.
    gone = next(cid for cid, p in profiles.items() if p["segment"] is not None)
    done = run_cli(env, "forget", gone)
    assert done.returncode == 0, done.stderr[-3000:]
    snapshot = read_snapshot(env)
    assert gone in snapshot and snapshot[gone] is None
    assert all(v is not None for cid, v in snapshot.items() if cid != gone)


def test_a_profile_from_before_the_history_reads_as_unknown(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Eleven fields (no previous segment, no since): null in ``export``; a rescore that
    moves the customer to another segment records both, in the new layout."""
    env = rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event")
    settings = settings_of(env)
    day = 86_400_000
    t0 = START + 300 * day
    orders = [
        (cid.encode(), orjson.dumps(o))
        for cid, o in [
            ("old-a", {"order_id": "a1", "customer_id": "old-a", "amount": "20.00",
                       "occurred_at": iso(t0)}),
        ]
    ]  # fmt: skip
    produce(kafka_bootstrap, settings.kafka.orders_topic, orders)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: accounted(redis_url) == len(orders), 60, "all events accounted", worker)
        wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    r = redis.Redis.from_url(redis_url)
    keys = Keys()
    for cid in ("old-a",):
        key = keys.profiles_of(cid)
        fields = r.hget(key, cid).split(b",")  # type: ignore[union-attr]
        assert len(fields) == 13
        r.hset(key, cid, b",".join(fields[:10] + fields[12:]))  # as written before the history
    before = export(env)
    for cid in ("old-a",):
        assert (before[cid]["previous_segment"], before[cid]["segment_since"]) == (None, None)
        assert before[cid]["segment"] is not None

    # rescored a year later, its R drops: another segment
    later = t0 + 365 * day
    rescore(env, iso(later))
    after = export(env)["old-a"]
    assert after["segment"] != before["old-a"]["segment"]
    assert (after["previous_segment"], after["segment_since"]) == (
        before["old-a"]["segment"],
        iso(later),
    )
    assert len(r.hget(keys.profiles_of("old-a"), "old-a").split(b",")) == 13  # type: ignore[union-attr]
