"""``rfm-stream produce`` and ``rfm-stream rescore``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from state.hooks import NO_FAULTS, FaultHooks
from state.model import iso_utc, parse_instant
from stream.cli.main import run_async
from stream.jobs import run_pass
from stream.runtime import Runtime
from stream.settings import Settings
from stream.topics import ensure_topics


def produce(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    from stream.produce import format_report, produce_file

    async def go() -> int:
        await ensure_topics(settings)
        runtime = Runtime.build(settings, hooks)
        try:
            report = await produce_file(
                Path(args.file), runtime.publisher, settings.kafka.orders_topic
            )
        finally:
            await runtime.close()
        print(format_report(report))
        return 1 if report.bad else 0

    try:
        return run_async(go())
    except (OSError, ValueError) as exc:
        print(f"rfm-stream produce: {exc}", file=sys.stderr)
        return 1


def window_refusal(settings: Settings, as_of_ms: int, clock_ms: int) -> str | None:
    """Why a window ending at ``as_of_ms`` cannot be scored exactly (None: it can): it
    starts before the order retention, measured by the clock, so some of its order records
    may be deleted already."""
    scoring = settings.scoring
    if scoring.window_days == 0 or scoring.retention_days == 0:
        return None
    horizon = clock_ms - scoring.retention_ms
    if as_of_ms - scoring.window_ms >= horizon:
        return None
    return (
        f"the {scoring.window_days}-day window ending then starts before {iso_utc(horizon)}, "
        f"the order retention horizon ({scoring.retention_days} days before the clock, "
        f"{iso_utc(clock_ms)}): order records it needs may be deleted; choose a time at or "
        f"after {iso_utc(horizon + scoring.window_ms)}"
    )


def rescore(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    as_of_ms: int | None = None
    if args.as_of:
        try:
            as_of_ms = parse_instant(args.as_of)
        except ValueError as exc:
            print(f"rfm-stream rescore: --as-of {args.as_of!r}: {exc}", file=sys.stderr)
            return 2

    async def go() -> int:
        runtime = Runtime.build(settings, hooks)
        try:
            # Redis unreachable is one line from main(), not a failed pass and its traceback.
            await runtime.redis.ping()
            clock = await runtime.retention_clock()
            as_of = as_of_ms if as_of_ms is not None else await runtime.as_of_now()
            refusal = window_refusal(settings, as_of, clock)
            if refusal:
                print(f"rfm-stream rescore: --as-of {args.as_of}: {refusal}", file=sys.stderr)
                return 2
            result = await run_pass(runtime, as_of, full=True, clock_ms=clock)
            await ensure_topics(settings)
            relayed = await runtime.relay.drain()
        finally:
            await runtime.close()
        print(
            f"rescored {result.rescored} of {result.examined} customers as of {iso_utc(as_of)}: "
            f"{result.changes} segment changes; {relayed} records published"
        )
        if result.failed:
            shown = ", ".join(repr(c) for c in result.failed[:10])
            print(
                f"rfm-stream rescore: {len(result.failed)} customers could not be scored "
                f"(corrupt state or a bug; left as they were): {shown}",
                file=sys.stderr,
            )
            return 1
        return 0

    return run_async(go())
