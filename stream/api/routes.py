"""The handlers of ``/v1``: JSON views of the state, read-only.

A profile is rendered by ``stream.cli.queries.profile``, the function behind
``rfm-stream customer`` and ``export``, so the API and the CLI cannot drift apart.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import orjson
from aiohttp import web

from state.erasure import Eraser
from state.explain import Scale, explain
from state.scoring import QuintileBoundaries
from stream.api import paging
from stream.api.errors import bad_request, not_found
from stream.api.openapi import document
from stream.cli.queries import profile
from stream.runtime import Runtime
from stream.validation import id_problem

log = logging.getLogger(__name__)
RUNTIME = web.AppKey("runtime", Runtime)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
NDJSON = "application/x-ndjson"


def _runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _scale(rt: Runtime) -> Scale:
    """What scores are read against now: in quintile mode the last full pass's boundaries,
    thresholds until one has run (as the worker does, state/rescorer.py)."""
    if rt.settings.scoring.mode == "quintiles":
        raw = cast(bytes | None, await rt.redis.get(rt.keys.quintiles))
        if raw is not None:
            return QuintileBoundaries.from_json(raw)
    return rt.settings.scoring.thresholds


async def customer(request: web.Request) -> web.Response:
    rt = _runtime(request)
    customer_id = request.match_info["id"]
    problem = id_problem(customer_id, rt.pipeline.rules)
    if problem:
        raise bad_request(f"customer id {problem}", "invalid_customer_id")
    state = await rt.reader.customer(customer_id)
    if state is None:
        raise not_found("no such customer", "unknown_customer")
    body = profile(state, rt.settings)
    scoring = rt.settings.scoring
    scale = await _scale(rt)
    body["explanation"] = explain(state, rt.rules, scale, scoring.exponent, scoring.window_days)
    return _json(body)


async def forget_customer(request: web.Request) -> web.Response:
    """The right to erasure (README, "Erasure"), as ``rfm-stream forget`` does it. The
    ``erased`` event is queued in the outbox; the workers' relay publishes it (this process
    talks to Redis only)."""
    rt = _runtime(request)
    customer_id = request.match_info["id"]
    problem = id_problem(customer_id, rt.pipeline.rules)
    if problem:
        raise bad_request(f"customer id {problem}", "invalid_customer_id")
    scoring = rt.settings.scoring
    eraser = Eraser(rt.redis, rt.keys, scoring.currency, scoring.exponent, scoring.window_days)
    erasure = await eraser.forget(customer_id, await rt.as_of_now())
    if not erasure.found:
        raise not_found("no such customer", "unknown_customer")
    log.info("customer erased through the API (%d order records)", erasure.order_records)
    return _json(
        {
            "customer_id": customer_id,
            "previous_segment": erasure.previous_segment,
            "sequence": erasure.sequence,
            "order_records_deleted": erasure.order_records,
            "due_entries_deleted": erasure.due_entries,
        }
    )


async def segments(request: web.Request) -> web.Response:
    counts = await _runtime(request).reader.segment_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return _json(
        {
            "segments": [{"segment": name, "customers": n} for name, n in ranked],
            "total": sum(counts.values()),
        }
    )


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}", "bad_limit")
    return int(text)


def _segment(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in _runtime(request).rules.names:
        raise not_found("no such segment in the configured rules", "unknown_segment")
    return name


async def segment_customers(request: web.Request) -> web.StreamResponse:
    rt = _runtime(request)
    name = _segment(request)
    limit = _limit(request)
    cursor = request.query.get("cursor")
    start = paging.decode_cursor(cursor) if cursor else paging.Position()
    stream = request.query.get("stream", "0")
    if stream not in ("0", "1"):
        raise bad_request("stream must be 0 or 1", "bad_stream")
    if stream == "1":
        return await _stream(request, rt, name, start)
    found = await paging.page(rt.reader, name, start, limit)
    return _json(
        {
            "segment": name,
            "customers": [profile(s, rt.settings) for s in found.customers],
            "next_cursor": None if found.next is None else paging.encode_cursor(found.next),
        }
    )


async def _stream(
    request: web.Request, rt: Runtime, name: str, start: paging.Position
) -> web.StreamResponse:
    """Every member from ``start`` to the end, one JSON object a line, chunked. A failure
    mid-stream cannot become an error status any more: the connection is cut without the
    final chunk, which an HTTP client reports as an incomplete body."""
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    response.enable_chunked_encoding()
    await response.prepare(request)
    lines: list[bytes] = []
    try:
        async for state, _ in paging.walk(rt.reader, name, start):
            if state is not None:
                lines.append(orjson.dumps(profile(state, rt.settings)) + b"\n")
            if len(lines) >= 500:
                await response.write(b"".join(lines))
                lines.clear()
        await response.write(b"".join(lines))
    except Exception:
        log.exception("query API: segment stream failed part-way; connection cut")
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def openapi(request: web.Request) -> web.Response:
    return _json(document())


def add_routes(app: web.Application) -> None:
    # Any id but a raw "/": braces too (the default pattern refuses them); "%2F" matches.
    app.router.add_get("/v1/customers/{id:[^/]+}", customer, allow_head=False)
    app.router.add_delete("/v1/customers/{id:[^/]+}", forget_customer)
    app.router.add_get("/v1/segments", segments, allow_head=False)
    app.router.add_get("/v1/segments/{name}/customers", segment_customers, allow_head=False)
    app.router.add_get("/v1/openapi.json", openapi, allow_head=False)
