"""The faust app: the orders agent, the rescoring timer and the outbox relay task.

faust does what it is good at here: consumer-group membership, offsets, rebalances, timers
and the web server. The orders skip faust's per-event stream path: its consumer hands each
fetched batch to the pipeline (stream/intake.py) and acks it through faust's bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import TP

from stream import observe
from stream.intake import BatchApp
from stream.jobs import periodic_pass
from stream.pipeline import RawRecord
from stream.retry import retry_transient
from stream.runtime import Runtime
from stream.security import faust_credentials
from stream.settings import Settings
from stream.topics import ensure_topics

log = logging.getLogger(__name__)


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


async def rescore_tick(runtime: Runtime) -> None:
    """One tick of the periodic rescoring timer. Never raises (that would stop the whole
    worker); the next tick retries. A pass that fails, or cannot start, is logged and
    counted as failed by periodic_pass; anything else that escapes is logged here, so no
    failure is silent."""
    try:
        await periodic_pass(runtime)
    except Exception as exc:
        log.warning(
            "periodic rescoring failed (%s: %s); the next tick retries", type(exc).__name__, exc
        )


def create_app(settings: Settings, runtime: Runtime) -> faust.App:
    app = BatchApp(
        settings.kafka.app_id,
        fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
        broker=broker_url(settings.kafka.bootstrap),
        broker_credentials=faust_credentials(settings),
        datadir=settings.operations.data_dir,
        web_port=settings.operations.web_port,
        web_host="0.0.0.0",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka.session_timeout,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval,
        broker_rebalance_timeout=settings.kafka.rebalance_timeout,
        # Commit at most every 10 batches and every second: a commit in the drain loop
        # holds the next fetch for a broker round trip, and Redis, not the commit, is
        # what makes a redelivery harmless.
        broker_commit_every=settings.kafka.batch_size * 10,
        broker_max_poll_records=settings.kafka.batch_size,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        producer_acks=-1,
        logging_config=None,
    )
    orders = app.topic(
        settings.kafka.orders_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    relay_wake = asyncio.Event()

    def highwater(partition: int) -> int | None:
        try:
            value = app.consumer.highwater(TP(settings.kafka.orders_topic, partition))
        except Exception:  # not assigned (any more), or not fetched yet
            return None
        return None if value is None else int(value)

    runtime.pipeline.highwater = highwater

    async def process_orders(batch: Sequence[Any]) -> None:
        scoring = await runtime.pipeline.submit(
            [RawRecord(r.partition, r.offset, r.key, r.value, r.timestamp) for r in batch]
        )
        scoring.add_done_callback(lambda _: relay_wake.set())

    app.batch_topic(orders, process_orders)

    @app.timer(settings.operations.rescore_interval, on_leader=True)  # type: ignore[untyped-decorator]
    async def rescore_periodically() -> None:
        await rescore_tick(runtime)
        relay_wake.set()

    @app.timer(settings.operations.gap_check_interval)  # type: ignore[untyped-decorator]
    async def catch_up_lost_writes() -> None:
        partitions = [
            tp.partition for tp in app.consumer.assignment() if tp.topic == orders.get_topic_name()
        ]
        try:
            await ensure_topics(settings)  # a broker that lost its data has lost them too
            filled = await runtime.pipeline.fill_committed_gaps(settings.kafka.app_id, partitions)
        except Exception as exc:
            log.warning("checking for lost writes failed: %s: %s", type(exc).__name__, exc)
            return
        if filled:
            relay_wake.set()

    @app.task  # type: ignore[untyped-decorator]
    async def relay_outbox() -> None:
        await retry_transient(
            lambda: runtime.rescorer.sweep_dirty(runtime.as_of_now), "sweeping dirty customers"
        )
        await runtime.relay.run_forever(relay_wake, every=settings.operations.relay_interval)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_clients(app: Any, **kwargs: Any) -> None:
        # After the agents stopped: the relay's producer and the Redis pool close cleanly.
        await runtime.close()

    observe.install(app, runtime)
    return app
