"""``rfm-stream customer``, ``export`` and ``segments``: read-only views of the state.

Each profile is shown as last scored, with that scoring's ``as_of``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

import orjson

from state.hooks import NO_FAULTS, FaultHooks
from state.model import CustomerState, iso_utc
from state.money import format_minor
from stream.cli.main import run_async
from stream.runtime import Runtime
from stream.settings import Settings

PROFILE_FIELDS = (
    "customer_id",
    "first_purchase_at",
    "last_purchase_at",
    "orders",
    "spend",
    "lifetime_orders",
    "lifetime_spend",
    "window_days",
    "currency",
    "recency_days",
    "r",
    "f",
    "m",
    "segment",
    "previous_segment",
    "segment_since",
    "as_of",
)


def profile(state: CustomerState, settings: Settings) -> dict[str, Any]:
    def ts(ms: int | None) -> str | None:
        return None if ms is None else iso_utc(ms)

    exponent = settings.scoring.exponent
    # The window's values as last scored (state/model.py, CustomerState.scored_window).
    window_days, orders, spend = state.scored_window(settings.scoring.window_days)

    return {
        "customer_id": state.customer_id,
        "first_purchase_at": ts(state.first_ms),
        "last_purchase_at": ts(state.last_ms),
        "orders": orders,
        "spend": format_minor(spend, exponent),
        "lifetime_orders": state.orders,
        "lifetime_spend": format_minor(state.spend_minor, exponent),
        "window_days": window_days,
        "currency": settings.scoring.currency,
        "recency_days": state.recency_days,
        "r": state.r,
        "f": state.f,
        "m": state.m,
        "segment": state.segment,
        "previous_segment": state.previous_segment,
        "segment_since": ts(state.segment_since_ms),
        "as_of": ts(state.as_of_ms),
    }


def customer(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    async def go() -> int:
        runtime = Runtime.build(settings, hooks)
        try:
            state = await runtime.reader.customer(args.customer_id)
        finally:
            await runtime.close()
        if state is None:
            print(f"rfm-stream customer: no customer {args.customer_id!r}", file=sys.stderr)
            return 1
        sys.stdout.write(
            orjson.dumps(profile(state, settings), option=orjson.OPT_INDENT_2).decode()
        )
        sys.stdout.write("\n")
        return 0

    return run_async(go())


def export(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    async def go() -> int:
        runtime = Runtime.build(settings, hooks)
        out = sys.stdout
        writer = csv.DictWriter(out, PROFILE_FIELDS) if args.format == "csv" else None
        if writer:
            writer.writeheader()
        try:
            async for ids in runtime.reader.scan_customer_ids():
                for state in await runtime.reader.customers(ids):
                    if state is None or (args.segment and state.segment != args.segment):
                        continue
                    row = profile(state, settings)
                    if writer:
                        writer.writerow(row)
                    else:
                        out.write(orjson.dumps(row).decode() + "\n")
        finally:
            await runtime.close()
        out.flush()
        return 0

    return run_async(go())


def segments(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    async def go() -> int:
        runtime = Runtime.build(settings, hooks)
        try:
            counts = await runtime.reader.segment_counts()
        finally:
            await runtime.close()
        total = sum(counts.values())
        width = max([len(n) for n in counts] + [7])
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            share = 100 * n / total if total else 0
            print(f"{name:<{width}}  {n:>10}  {share:5.1f}%")
        print(f"{'total':<{width}}  {total:>10}")
        return 0

    return run_async(go())
