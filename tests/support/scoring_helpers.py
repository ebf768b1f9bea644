"""Shared helpers of the scoring-mode tests (presets, quintiles, recency decay).

Event builders on a fixed calendar (day numbers from ``DAY0``), a worker that is stopped
cleanly, and observations of the state through the operator's CLI (``customer``,
``segments``, ``export``), the segment-change topic and Redis itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis

from state.keys import Keys
from stream.settings import Settings
from tests.support.checks import read_changes
from tests.support.harness import Worker, accounted, produce, run_cli, wait_until
from tests.support.state_reads import read_profile

DAY0 = datetime(2025, 1, 1, tzinfo=UTC)
KEYS = Keys()
Event = tuple[bytes, bytes]


# --------------------------------------------------------------------------- event builders


def ms(day: float) -> int:
    return int((DAY0 + timedelta(days=day)).timestamp() * 1000)


def at(day: float) -> str:
    return (DAY0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def event(**fields: object) -> Event:
    return str(fields["customer_id"]).encode(), orjson.dumps(fields)


def purchase(cid: str, oid: str, day: float, cents: int) -> Event:
    return event(order_id=oid, customer_id=cid, amount=money(cents), occurred_at=at(day))


def refund(cid: str, oid: str, day: float, cents: int, refund_id: str) -> Event:
    return event(
        type="refund",
        order_id=oid,
        customer_id=cid,
        amount=money(cents),
        refund_id=refund_id,
        occurred_at=at(day),
    )


def cancel(cid: str, oid: str, day: float) -> Event:
    return event(type="cancel", order_id=oid, customer_id=cid, occurred_at=at(day))


def history(cid: str, last_day: float, orders: int, total_cents: int) -> list[Event]:
    """``orders`` purchases one day apart ending on ``last_day``, summing to ``total_cents``."""
    each, rest = divmod(total_cents, orders)
    return [
        purchase(cid, f"{cid}-o{i}", last_day - (orders - 1 - i), each + (rest if i == 0 else 0))
        for i in range(orders)
    ]


# --------------------------------------------------------------------------- observations


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[Worker]:
    worker = Worker(env, log).start()
    try:
        yield worker
    finally:
        assert worker.stop() == 0, worker.log_tail()


def settled(redis_url: str, n_events: int) -> bool:
    """Every event applied and every touched customer scored (the dirty set is empty)."""
    dirty = redis.Redis.from_url(redis_url).scard(KEYS.dirty)
    return accounted(redis_url) == n_events and dirty == 0


def publish_and_settle(
    bootstrap: str,
    settings: Settings,
    redis_url: str,
    worker: Worker,
    events: Sequence[Event],
    total_so_far: int,
) -> int:
    produce(bootstrap, settings.kafka.orders_topic, events)
    total = total_so_far + len(events)
    wait_until(lambda: settled(redis_url, total), 60, f"{total} events applied and scored", worker)
    return total


def cli(env: dict[str, str], *args: str) -> str:
    done = run_cli(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def customer_profiles(env: dict[str, str], ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``rfm-stream customer ID`` for each id (a few at a time: each is its own process)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda cid: cli(env, "customer", cid), ids))
    return {cid: orjson.loads(out) for cid, out in zip(ids, outputs, strict=True)}


def export(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    rows = [orjson.loads(line) for line in cli(env, "export", "--format", "jsonl").splitlines()]
    by_id = {row["customer_id"]: row for row in rows}
    assert len(by_id) == len(rows), "a customer exported twice"
    return by_id


def segment_sizes(env: dict[str, str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for line in cli(env, "segments").splitlines():
        name, count = line.split()[:2]
        sizes[name] = int(count)
    total = sizes.pop("total")
    assert total == sum(sizes.values())
    return sizes


def change_chains(bootstrap: str, topic: str) -> dict[str, list[dict[str, Any]]]:
    """Segment changes per customer in TOPIC order (what a consumer reads), deduplicated by
    event id keeping the first; a repeated id must repeat the same change. Each chain must
    come numbered 1, 2, 3 ... in that order and link previous_segment to the segment before
    it (tests/support/checks.py)."""
    changes = read_changes(bootstrap, topic)
    assert not changes.conflicting, changes.conflicting[:3]
    assert not changes.split, f"customers on several partitions: {changes.split[:5]}"
    for cid, chain in changes.by_customer.items():
        assert [c["sequence"] for c in chain] == list(range(1, len(chain) + 1)), (cid, chain)
        previous = None
        for change in chain:
            assert change["previous_segment"] == previous, (cid, chain)
            previous = change["segment"]
    return changes.by_customer


def passes_as_of(worker: Worker, as_of_ms: int) -> int:
    """How many periodic rescoring passes the worker has logged as of this instant."""
    return sum(
        1
        for line in worker.log_tail(400).splitlines()
        if "rescoring pass" in line and f"as of {as_of_ms}:" in line
    )


def raw_state(redis_url: str, cid: str) -> tuple[int, str | None, int | None]:
    """(version, scores field, due time) straight from Redis: the version moves on every
    write, so an unchanged version proves a customer was not rewritten."""
    state = read_profile(redis.Redis.from_url(redis_url), cid, KEYS)
    assert state is not None, cid
    scores = None
    if state.r is not None:
        scores = f"{state.r},{state.f},{state.m},{state.recency_days},{state.as_of_ms}"
    return state.version, scores, state.due_ms


def profile(redis_url: str, cid: str) -> dict[str, int]:
    _, scores, _ = raw_state(redis_url, cid)
    assert scores, cid
    r, f, m, days, as_of = (int(x) for x in scores.split(","))
    return {"r": r, "f": f, "m": m, "recency_days": days, "as_of": as_of}
