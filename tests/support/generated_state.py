"""Customers generated straight into Redis through the apply step, for tests that compare
what two routes leave there (ids with braces, percent signs, quotes, backslashes and
non-ASCII characters; purchases in the future; refunds; cancelled-out customers)."""

from __future__ import annotations

import random
from typing import Any

from state.model import MS_PER_DAY, OrderEvent
from state.store import InputRecord
from stream.runtime import Runtime
from stream.settings import load_settings

START = 1_767_225_600_000  # 2026-01-01
TOPIC = "orders"


def runtime(redis_url: str, prefix: str, mode: str, **extra: str) -> Runtime:
    env = {
        "RFM_REDIS_URL": redis_url,
        "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # never contacted: nothing is published
        "RFM_REDIS_PREFIX": prefix,
        "RFM_SCORING": mode,
        **extra,
    }
    return Runtime.build(load_settings(env=env))


def generated_events(seed: int, customers: int, first_offset: int) -> list[InputRecord]:
    rng = random.Random(seed)
    records: list[InputRecord] = []
    for i in range(customers):
        cid = rng.choice(
            [f"c{i}", f"c%{i}", f"c{{{i}}}", f"c}}%7B{i}", f'c"{i}\\', f"Zoë/{i}\u2028\x7f"]
        )
        for n in range(rng.choice([1, 1, 1, 2, 3, 5, 8, 12])):
            order = f"{cid}-{seed}-{n}"
            when = START - rng.randrange(-5, 400) * MS_PER_DAY - rng.randrange(MS_PER_DAY)
            amount = rng.choice([100, 5_000, 9_999, 10_000, 39_999, 40_000, 70_000, 250_000])
            records.append(
                _record(len(records) + first_offset, "purchase", order, cid, amount, when)
            )
            if rng.random() < 0.15:
                kind = rng.choice(["cancel", "refund"])
                amount = 0 if kind == "cancel" else amount // 2
                rec = _record(len(records) + first_offset, kind, order, cid, amount, when + 1)
                records.append(rec)
    return records


def _record(offset: int, kind: Any, order: str, cid: str, amount: int, when: int) -> InputRecord:
    refund = f"r-{order}" if kind == "refund" else None
    event = OrderEvent(kind, order, cid, amount, when, refund)
    return InputRecord(0, offset, cid.encode(), b"{}", event)


async def apply(rt: Runtime, records: list[InputRecord]) -> list[str]:
    touched: dict[str, None] = {}
    for i in range(0, len(records), 500):
        applied = await rt.store.apply_orders(TOPIC, records[i : i + 500])
        touched.update(dict.fromkeys(applied.touched))
    return list(touched)
