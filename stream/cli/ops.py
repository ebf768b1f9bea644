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
            as_of = as_of_ms if as_of_ms is not None else await runtime.as_of_now()
            result = await run_pass(runtime, as_of, full=True)
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
