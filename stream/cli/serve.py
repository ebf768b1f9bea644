"""``rfm-stream serve``: the read-only query API (README, "Query API"), in its own process
so that lookups never take a worker's CPU."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from state.hooks import NO_FAULTS, FaultHooks
from stream.api.app import build_app
from stream.api.auth import check_startable
from stream.settings import Settings

log = logging.getLogger("stream.api")


def run(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    check_startable(settings)  # SettingsError: exit 2 with the reason
    api = settings.api
    log.info(
        "query API on http://%s:%d/v1 (%d bearer token(s)%s)",
        api.host,
        api.port,
        len(api.token_list),
        "" if api.token_list else "; none needed on loopback",
    )
    web.run_app(build_app(settings), host=api.host, port=api.port, print=None, access_log=None)
    return 0
