"""HTTP endpoints of a worker (/metrics, /healthz, /readyz) and the gauges refreshed in the
background: segment sizes, outbox backlog, consumer lag and assignment.

They share faust's web server, so an SRE has one port per worker to scrape and probe.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from state.cancellation import raise_if_cancelled
from stream import metrics
from stream.runtime import Runtime
from stream.topics import input_partitions

log = logging.getLogger(__name__)
_background: set[asyncio.Future[None]] = set()  # running checks, kept from being collected


async def _check_partitions(runtime: Runtime) -> None:
    try:
        await input_partitions(runtime.settings)
    except Exception as exc:  # a metric left as it was, never a crash
        log.warning("reading the input topic's partitions failed: %s: %s", type(exc).__name__, exc)


def install(app: faust.App, runtime: Runtime) -> None:
    settings = runtime.settings
    metrics.BUILD.info(
        {
            "version": version("rfm-stream"),
            "scoring": settings.scoring.mode,
            "segments": settings.scoring.segments,
            "clock": settings.scoring.clock,
        }
    )

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = await readiness(app, runtime)
        status = 200 if all(checks.values()) else 503
        return web.json({"ready": status == 200, "checks": checks}, status=status)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        metrics.REBALANCES.inc()
        # The topic may have grown (the likely cause of this rebalance): read its partition
        # count again, in the background, so the rebalance does not wait for an admin call.
        task = asyncio.ensure_future(_check_partitions(runtime))
        _background.add(task)
        task.add_done_callback(_background.discard)

    @app.task  # type: ignore[untyped-decorator]
    async def refresh_gauges() -> None:
        while True:
            raise_if_cancelled()  # redis-py can drop one (state/cancellation.py)
            try:
                await refresh(app, runtime)
            except Exception as exc:  # a dashboard gap, never a crash
                log.warning("refreshing gauges failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(settings.operations.gauge_refresh_interval)


def _orders_partitions(app: faust.App, topic: str) -> list[Any]:
    return [tp for tp in app.consumer.assignment() if tp.topic == topic]


async def readiness(app: faust.App, runtime: Runtime) -> dict[str, bool]:
    """Partitions assigned and Redis reachable; names no secret, shows no URL."""
    try:
        async with asyncio.timeout(2):  # not wait_for: see OutboxRelay.run_forever
            redis_ok = bool(await runtime.redis.ping())
    except Exception:
        redis_ok = False
    try:
        assigned = bool(_orders_partitions(app, runtime.settings.kafka.orders_topic))
    except Exception:
        assigned = False
    return {"partitions_assigned": assigned and not app.rebalancing, "redis": redis_ok}


async def refresh_shared(runtime: Runtime) -> None:
    """The gauges read from Redis: the same on every worker."""
    counts = await runtime.reader.segment_counts()
    for name in runtime.rules.names:
        metrics.SEGMENT_CUSTOMERS.labels(name).set(counts.get(name, 0))
    metrics.OUTBOX_BACKLOG.set(await runtime.relay.backlog())
    metrics.CUSTOMERS_ERASED.set(await runtime.reader.erasures())


async def refresh(app: faust.App, runtime: Runtime) -> None:
    await refresh_shared(runtime)
    topic = runtime.settings.kafka.orders_topic
    tps = _orders_partitions(app, topic)
    metrics.ASSIGNED_PARTITIONS.labels(topic).set(len(tps))
    applied = await runtime.reader.applied_offsets(topic)
    metrics.CONSUMER_LAG.clear()  # partitions this worker lost since must not linger
    for tp in tps:
        highwater = app.consumer.highwater(tp)
        if highwater is None:
            continue
        # Next offset to process: this worker's own progress, else what Redis has applied.
        position = runtime.pipeline.next_offsets.get(
            tp.partition, applied.get(tp.partition, -1) + 1
        )
        metrics.CONSUMER_LAG.labels(topic, str(tp.partition)).set(max(0, highwater - position))
