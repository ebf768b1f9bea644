"""The deterministic throughput workload: the project's synthetic shop, cut to N events.

``rfm_dev.shop`` already models what a real order stream looks like (Zipf-like order counts,
producer retries, refunds, cancels, late and broken records); the bench only picks a size
and a fixed seed and time span, so two runs publish byte-identical records.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from rfm_dev.shop import ShopProfile, history_events

START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: in the past, so no event is "in future"
END_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SEED = 20_260_101
ORDERS_PER_CUSTOMER = 5  # mean; the shop skews it (most buy once or twice, a few constantly)
EVENTS_PER_ORDER = 1.07  # purchases + retries + refunds/cancels + bad records, about


@dataclass(frozen=True)
class Workload:
    profile: ShopProfile
    records: list[tuple[bytes, bytes]]
    bad: int  # records the worker must dead-letter (as labelled by the shop)

    def describe(self) -> dict[str, object]:
        kinds: Counter[str] = Counter()
        for _, value in self.records:
            head = value[:40]
            kinds[
                "refund" if b'"refund"' in head else "cancel" if b'"cancel"' in head else "other"
            ] += 1
        return {
            "events": len(self.records),
            "customers": self.profile.customers,
            "orders_generated": self.profile.orders,
            "seed": self.profile.seed,
            "bad_records": self.bad,
            "refunds": kinds["refund"],
            "cancels": kinds["cancel"],
            "bytes": sum(len(k) + len(v) for k, v in self.records),
        }


def build(events: int, seed: int = SEED) -> Workload:
    """Exactly ``events`` records in publish order."""
    orders = math.ceil(events / EVENTS_PER_ORDER)
    profile = ShopProfile(
        customers=max(1, orders // ORDERS_PER_CUSTOMER),
        orders=orders,
        start_ms=START_MS,
        end_ms=END_MS,
        seed=seed,
    )
    out: list[tuple[bytes, bytes]] = []
    bad = 0
    for event in history_events(profile):
        if len(out) == events:
            break
        out.append((event.key, event.value))
        bad += event.bad
    if len(out) < events:
        raise ValueError(f"the shop made only {len(out)} events, {events} wanted")
    return Workload(profile, out, bad)
