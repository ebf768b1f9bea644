"""``rfm-stream worker``: one faust worker process."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from state.hooks import NO_FAULTS, FaultHooks
from stream.app import create_app
from stream.logs import logging_config
from stream.runtime import Runtime
from stream.security import redis_options
from stream.settings import Settings
from stream.topics import ensure_topics


def run(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    import faust

    runtime = Runtime.build(settings, hooks)  # validates segment rules before anything starts
    Path(settings.operations.data_dir).mkdir(parents=True, exist_ok=True)
    asyncio.run(_check_redis(settings))  # wrong credentials fail here, not in the stream
    asyncio.run(ensure_topics(settings))
    app = create_app(settings, runtime)
    worker = faust.Worker(
        app,
        loglevel=settings.operations.log_level,
        logging_config=logging_config(
            settings.operations.log_level, settings.operations.log_format
        ),
        quiet=True,
    )
    worker.execute_from_commandline()
    return 0


async def _check_redis(settings: Settings) -> None:
    client = aioredis.from_url(
        settings.redis.url,
        socket_connect_timeout=settings.redis.connect_timeout,
        **redis_options(settings),
    )
    try:
        await client.ping()
    finally:
        await client.aclose()
