"""Assembles the query API: middlewares, routes, /metrics, and the Redis connection's life.

Middlewares, outermost first: metrics (sees every final status, errors included), errors
(one JSON shape, no internals), auth (bearer tokens). ``/metrics`` serves the API's own
registry only (stream/metrics.py, ``API_REGISTRY``), unauthenticated like a worker's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream import metrics
from stream.api.auth import auth_middleware, check_startable
from stream.api.errors import Handler, error_middleware
from stream.api.routes import RUNTIME, add_routes
from stream.runtime import Runtime
from stream.settings import Settings

SETTINGS = web.AppKey("settings", Settings)


def route_of(request: web.Request) -> str:
    """The route template (``/v1/customers/{id}``), never the path: ids stay out of labels."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        route = route_of(request)
        metrics.API_REQUESTS.labels(route, str(status)).inc()
        metrics.API_SECONDS.labels(route).observe(time.perf_counter() - started)


async def metrics_page(request: web.Request) -> web.Response:
    body = generate_latest(metrics.API_REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _runtime_context(app: web.Application) -> AsyncIterator[None]:
    """Redis client made on the server's loop, closed on shutdown."""
    runtime = Runtime.build(app[SETTINGS])
    app[RUNTIME] = runtime
    try:
        yield
    finally:
        await runtime.close()


def build_app(settings: Settings) -> web.Application:
    """The application; refuses (SettingsError) what ``check_startable`` refuses, so no
    caller can build an open API for a network address."""
    check_startable(settings)
    app = web.Application(
        middlewares=[
            metrics_middleware,
            error_middleware,
            auth_middleware(settings.api.token_list, settings.api.erase_token_list),
        ]
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_runtime_context)
    add_routes(app)
    app.router.add_get("/metrics", metrics_page, allow_head=False)
    return app
