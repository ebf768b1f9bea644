"""``rfm-stream worker``: one faust worker process."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from stream.app import create_app
from stream.runtime import Runtime
from stream.settings import Settings
from stream.topics import ensure_topics


def run(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    runtime = Runtime.build(settings)  # validates segment rules before anything starts
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))
    app = create_app(settings, runtime)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0
