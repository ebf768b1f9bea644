"""``rfm-stream forget ID``: the right-to-erasure procedure (README, "Erasure")."""

from __future__ import annotations

import argparse
import sys

import orjson
from aiokafka.errors import KafkaError

from state.erasure import Eraser
from state.hooks import NO_FAULTS, FaultHooks
from stream.cli.main import EXIT_USAGE, run_async
from stream.runtime import Runtime
from stream.settings import Settings
from stream.topics import ensure_topics
from stream.validation import id_problem


def forget(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    customer_id: str = args.customer_id
    problem = id_problem(customer_id)
    if problem:
        print(f"rfm-stream forget: the customer id {problem}", file=sys.stderr)
        return EXIT_USAGE

    async def go() -> int:
        runtime = Runtime.build(settings, hooks)
        try:
            await runtime.redis.ping()
            scoring = settings.scoring
            eraser = Eraser(
                runtime.redis, runtime.keys, scoring.currency, scoring.exponent, scoring.window_days
            )
            erasure = await eraser.forget(customer_id, await runtime.as_of_now())
            if not erasure.found:
                print(f"rfm-stream forget: no customer {customer_id!r}", file=sys.stderr)
                return 1
            # Publish the erased event now; if Kafka is away it waits in the outbox, which
            # every worker's relay drains, so the erasure itself is complete either way.
            try:
                await ensure_topics(settings)
                await runtime.relay.drain()
                published = True
            except (KafkaError, OSError) as exc:
                published = False
                print(
                    f"rfm-stream forget: erased, but the 'erased' event is not published yet "
                    f"({exc}); it waits in the outbox for the workers' relay",
                    file=sys.stderr,
                )
        finally:
            await runtime.close()
        report = {
            "customer_id": customer_id,
            "previous_segment": erasure.previous_segment,
            "sequence": erasure.sequence,
            "order_records_deleted": erasure.order_records,
            "due_entries_deleted": erasure.due_entries,
            "event_published": published,
        }
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return 0

    return run_async(go())
