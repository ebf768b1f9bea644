"""README, "Query API": ``rfm-stream serve`` against a real Redis filled through the
worker's own pipeline. Every route with its statuses, paging compared with
``rfm-stream export --segment``, the stream form, the OpenAPI document, the metrics, and
the refusal to start without tokens beyond loopback."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from state.keys import Keys
from state.model import iso_utc
from stream.api import paging
from stream.api.app import build_app
from stream.api.routes import RUNTIME
from stream.pipeline import RawRecord
from stream.runtime import Runtime
from tests.conftest import RedisFactory
from tests.support.harness import ROOT, free_port, run_cli, settings_of, wait_until

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
NOW = 1_780_000_000_000  # 2026-05-28
TOKEN, ROTATED = "tok-" + "A" * 28, "tok-" + "B" * 28
ODD_IDS = ["c/slash", "c%25", "c{7}", "c:colon", "Zoë", "c with space", "c\u2028sep", "c?q=1"]


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "RFM_REDIS_URL": redis_url,
        "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # never contacted: nothing is published
        "RFM_REDIS_PREFIX": "api",
        "RFM_CLOCK": "event",
        "RFM_API_TOKENS": f"{TOKEN},{ROTATED}",
        "RFM_DATA_DIR": str(tmp_path),
    }


def _orders(customers: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    ids = [f"c{i:04d}" for i in range(customers)] + ODD_IDS
    values = []
    for n, cid in enumerate(ids):
        for k in range(rng.choice([1, 1, 2, 3, 5, 8, 12])):
            doc = {
                "customer_id": cid,
                "order_id": f"o{n}-{k}",
                "amount": rng.choice(["5.00", "99.99", "150.00", "420.10", "800.00", "1500.00"]),
                "occurred_at": iso_utc(NOW - rng.randrange(0, 300) * DAY_MS),
            }
            values.append(orjson.dumps(doc))
    return values


async def _fill(env: dict[str, str], customers: int) -> None:
    runtime = Runtime.build(settings_of(env))
    try:
        values = _orders(customers)
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            await runtime.pipeline.process(
                [RawRecord(0, start + i, b"k", v) for i, v in enumerate(chunk)]
            )
    finally:
        await runtime.close()


@pytest.fixture
async def client(env: dict[str, str]) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    await _fill(env, 400)
    async with TestClient(TestServer(build_app(settings_of(env)))) as c:
        yield c


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _cli(env: dict[str, str], *args: str) -> str:
    done = await asyncio.to_thread(run_cli, env, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def _get(client: TestClient[Any, Any], url: str, **kw: Any) -> tuple[int, Any]:
    response = await client.get(url, headers=kw.pop("headers", _auth()), **kw)
    assert response.content_type == "application/json", await response.text()
    return response.status, await response.json()


def _jsonl(text: str) -> list[Any]:
    """JSON lines split on "\\n" only: str.splitlines() would also split inside an id
    holding U+2028, which JSON leaves unescaped."""
    return [orjson.loads(line) for line in text.split("\n") if line]


def _quoted(customer_id: str) -> str:
    from urllib.parse import quote

    return quote(customer_id, safe="")


# ---------------------------------------------------------------------------- customer


async def test_customer_is_the_cli_profile_plus_an_explanation(
    client: TestClient[Any, Any], env: dict[str, str]
) -> None:
    for cid in ["c0001", "c0042", *ODD_IDS]:
        status, body = await _get(client, f"/v1/customers/{_quoted(cid)}")
        assert status == 200, (cid, body)
        explanation = body.pop("explanation")
        assert body == orjson.loads(await _cli(env, "customer", cid)), cid
        assert explanation["rule"]["name"] == body["segment"]
        assert explanation["scoring"] == "thresholds"
        assert [explanation[a]["score"] for a in "rfm"] == [body["r"], body["f"], body["m"]]
        assert explanation["m"]["value"] == body["spend"]
        assert explanation["f"]["value"] == body["orders"]  # the window's, as scored
        change = explanation["next_change"]
        # R drops next, or (R at 1 already) an order leaves the 365-day window
        assert change is not None
        assert change["cause"] == ("window" if body["r"] == 1 else "recency"), change


async def test_unknown_and_hostile_customer_ids(client: TestClient[Any, Any]) -> None:
    status, body = await _get(client, "/v1/customers/nobody")
    assert (status, body["error"]) == (404, "unknown_customer")
    status, body = await _get(client, "/v1/customers/" + "x" * 256)  # longest valid id
    assert (status, body["error"]) == (404, "unknown_customer")
    hostile = ["x" * 257, "y" * 5000, "%00", "a%0Ab", "%7F", "%C2%85", "%20%20", "%09", "c%1F1"]
    for raw in hostile:
        status, body = await _get(client, f"/v1/customers/{raw}")
        assert (status, body["error"]) == (400, "invalid_customer_id"), raw
        assert set(body) == {"error", "message"}


async def test_a_failure_inside_is_a_generic_500_and_logged(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    await _fill({**env, "RFM_SCORING": "quintiles"}, 5)
    async with TestClient(
        TestServer(build_app(settings_of({**env, "RFM_SCORING": "quintiles"})))
    ) as c:
        await c.server.app[RUNTIME].redis.set(Keys("api").quintiles, b"{not json")
        with caplog.at_level(logging.ERROR):
            status, body = await _get(c, "/v1/customers/c0001")
    assert status == 500
    assert body == {"error": "internal_error", "message": "internal error; see the server log"}
    assert "query API: unexpected error in GET /v1/customers/{id}" in caplog.text
    assert "c0001" not in caplog.text.split("Traceback")[0]


# ---------------------------------------------------------------------------- auth


ROUTES = ["/v1/customers/c0001", "/v1/segments", "/v1/segments/new/customers", "/v1/openapi.json"]


@pytest.mark.parametrize("route", ROUTES)
async def test_every_route_needs_a_good_token(client: TestClient[Any, Any], route: str) -> None:
    for headers, error in [
        ({}, None),
        (_auth("tok-" + "C" * 28), "invalid_token"),
        (_auth(TOKEN[:-1]), "invalid_token"),
        ({"Authorization": f"Basic {TOKEN}"}, "invalid_request"),
        ({"Authorization": "Bearer "}, "invalid_request"),
    ]:
        status, body = await _get(client, route, headers=headers)
        assert (status, body["error"]) == (401, "unauthorized"), headers
        response = await client.get(route, headers=headers)
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="rfm-stream"')
        assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
    for token in (TOKEN, ROTATED):  # both while one is rotated out
        status, _ = await _get(client, route, headers=_auth(token))
        assert status == 200


async def test_unknown_routes_and_methods_answer_in_json(client: TestClient[Any, Any]) -> None:
    status, body = await _get(client, "/v1/nothing-here")
    assert (status, body["error"]) == (404, "not_found")
    response = await client.post("/v1/segments", headers=_auth())
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"


# ---------------------------------------------------------------------------- segments


async def test_segment_sizes_are_those_of_the_cli(
    client: TestClient[Any, Any], env: dict[str, str]
) -> None:
    status, body = await _get(client, "/v1/segments")
    assert status == 200
    printed = (await _cli(env, "segments")).splitlines()
    cli = {line.split()[0]: int(line.split()[1]) for line in printed}
    assert cli.pop("total") == body["total"] == 400 + len(ODD_IDS)
    assert {s["segment"]: s["customers"] for s in body["segments"]} == cli
    sizes = [s["customers"] for s in body["segments"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) >= 3


async def _walk(client: TestClient[Any, Any], name: str, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        status, body = await _get(client, f"/v1/segments/{name}/customers", params=params)
        assert status == 200, body
        assert len(body["customers"]) <= limit
        seen.extend(body["customers"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_paging_walks_every_segment_once_as_export_does(
    client: TestClient[Any, Any], env: dict[str, str]
) -> None:
    _, sizes = await _get(client, "/v1/segments")
    for entry in sizes["segments"]:
        name = entry["segment"]
        for limit in (7, 1000):
            walked = await _walk(client, name, limit)
            ids = [c["customer_id"] for c in walked]
            assert len(ids) == len(set(ids)), f"{name}: duplicates"
            exported = _jsonl(await _cli(env, "export", "--segment", name))
            assert sorted(walked, key=str) == sorted(exported, key=str), name
            assert len(ids) == entry["customers"]
    status, body = await _get(client, "/v1/segments/new/customers")  # default limit 100
    assert status == 200 and len(body["customers"]) <= 100


async def test_streaming_form_gives_the_whole_segment_as_json_lines(
    client: TestClient[Any, Any], env: dict[str, str]
) -> None:
    _, sizes = await _get(client, "/v1/segments")
    name = sizes["segments"][0]["segment"]
    response = await client.get(
        f"/v1/segments/{name}/customers", params={"stream": "1"}, headers=_auth()
    )
    assert response.status == 200
    assert response.content_type == "application/x-ndjson"
    assert response.headers.get("Transfer-Encoding") == "chunked"
    lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
    exported = _jsonl(await _cli(env, "export", "--segment", name))
    assert sorted(lines, key=str) == sorted(exported, key=str)
    # from a cursor: the rest of the walk only
    _, first = await _get(client, f"/v1/segments/{name}/customers", params={"limit": "5"})
    rest = await client.get(
        f"/v1/segments/{name}/customers",
        params={"stream": "1", "cursor": first["next_cursor"]},
        headers=_auth(),
    )
    tail = [orjson.loads(line) for line in (await rest.read()).splitlines()]
    assert sorted(first["customers"] + tail, key=str) == sorted(exported, key=str)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_bad_page_parameters_and_unknown_segments(client: TestClient[Any, Any]) -> None:
    url = "/v1/segments/new/customers"
    for limit in ["0", "1001", "-1", "abc", "1e3", "", "\u0661\u0660"]:
        status, body = await _get(client, url, params={"limit": limit})
        assert (status, body["error"]) == (400, "bad_limit"), limit
    status, _ = await _get(client, url, params={"limit": "1000"})
    assert status == 200
    for cursor in ["!!", "%%%", _b64("2:0:"), _b64("1:65536:"), _b64("1:-1:"), _b64("1:x:")]:
        status, body = await _get(client, url, params={"cursor": cursor})
        assert (status, body["error"]) == (400, "bad_cursor"), cursor
    status, body = await _get(client, url, params={"stream": "yes"})
    assert (status, body["error"]) == (400, "bad_stream")
    for name in ["champions", "nope", "a" * 300]:  # champions: the classic preset's, not ours
        status, body = await _get(client, f"/v1/segments/{name}/customers")
        assert (status, body["error"]) == (404, "unknown_segment"), name


# ---------------------------------------------------------------------------- openapi, metrics


async def test_openapi_document_is_valid_and_lists_the_routes(
    client: TestClient[Any, Any],
) -> None:
    status, doc = await _get(client, "/v1/openapi.json")
    assert status == 200
    validate(doc)
    app = client.server.app
    routes = {r.canonical for r in app.router.resources() if r.canonical.startswith("/v1/")}
    assert set(doc["paths"]) == routes


async def test_metrics_count_by_route_template_without_a_token(
    client: TestClient[Any, Any],
) -> None:
    await _get(client, "/v1/customers/c0001")
    await _get(client, "/v1/customers/nobody")
    await _get(client, "/v1/segments", headers={})
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'rfm_api_requests_total{route="/v1/customers/{id}",status="200"}' in text
    assert 'rfm_api_requests_total{route="/v1/customers/{id}",status="404"}' in text
    assert 'rfm_api_requests_total{route="/v1/segments",status="401"}' in text
    assert 'rfm_api_request_seconds_bucket{le="0.005",route="/v1/segments"}' in text
    assert "c0001" not in text and "nobody" not in text
    assert "rfm_input_events_total" not in text  # only the API's own registry


# ---------------------------------------------------------------------------- starting


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.org"])
def test_serve_refuses_to_start_without_tokens_beyond_loopback(
    env: dict[str, str], host: str
) -> None:
    done = run_cli({**env, "RFM_API_TOKENS": "", "RFM_API_HOST": host}, "serve", timeout=60)
    assert done.returncode == 2
    assert "RFM_API_TOKENS" in done.stderr and "loopback" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
async def test_without_tokens_loopback_serves_without_auth(env: dict[str, str], host: str) -> None:
    from stream.api.auth import check_startable

    settings = settings_of({**env, "RFM_API_TOKENS": "", "RFM_API_HOST": host})
    check_startable(settings)  # no refusal
    async with TestClient(TestServer(build_app(settings))) as c:
        status, body = await _get(c, "/v1/segments", headers={})
        assert status == 200 and body["total"] == 0


def test_serve_runs_as_its_own_process_and_stops_on_sigterm(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The installed command, as an operator runs it: answers, never logs a token, and
    exits 0 on SIGTERM."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    run_env = {**os.environ, **env, "RFM_API_PORT": str(port), "RFM_LOG_LEVEL": "debug"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli.main", "serve"],
            env=run_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def get(path: str, token: str | None) -> tuple[int, bytes]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
            except OSError:
                return 0, b""

        wait_until(lambda: get("/metrics", None)[0] == 200, 30, "the API to answer")
        status, body = get("/v1/segments", TOKEN)
        assert (status, orjson.loads(body)) == (200, {"segments": [], "total": 0})
        status, body = get("/v1/segments", None)
        assert status == 401 and orjson.loads(body)["error"] == "unauthorized"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert code == 0, text
    assert f"query API on http://127.0.0.1:{port}/v1 (2 bearer token(s))" in text
    assert TOKEN not in text and ROTATED not in text


async def test_a_page_stops_at_its_read_budget_and_the_walk_still_completes(
    client: TestClient[Any, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rare segment: pages short of ``limit`` (even empty) that carry a cursor on."""
    monkeypatch.setattr(paging, "CHUNK", 1024)
    monkeypatch.setattr(paging, "BUDGET", 10)
    _, sizes = await _get(client, "/v1/segments")
    name = sizes["segments"][-1]["segment"]  # the smallest
    pages: list[int] = []
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
        status, body = await _get(client, f"/v1/segments/{name}/customers", params=params)
        assert status == 200
        pages.append(len(body["customers"]))
        seen.extend(body["customers"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(pages) >= 10 and max(pages) < 1000  # stopped by the budget, not the limit
    exported = _jsonl(await _cli(env, "export", "--segment", name))
    assert sorted(seen, key=str) == sorted(exported, key=str)


async def test_quintile_explanation_reads_the_boundaries_of_the_last_pass(
    env: dict[str, str],
) -> None:
    quintile_env = {**env, "RFM_SCORING": "quintiles"}
    await _fill(quintile_env, 200)
    runtime = Runtime.build(settings_of(quintile_env))
    try:
        await runtime.rescorer.full_pass(NOW)
        boundaries = orjson.loads(await runtime.redis.get(Keys("api").quintiles))
    finally:
        await runtime.close()
    async with TestClient(TestServer(build_app(settings_of(quintile_env)))) as c:
        for cid in ("c0001", "c0002", "c0100", "Zoë"):
            status, body = await _get(c, f"/v1/customers/{_quoted(cid)}")
            assert status == 200
            explanation = body["explanation"]
            assert explanation["scoring"] == "quintiles"
            # boundaries move with every pass: no R drop is foretold, only the window's due
            change = explanation["next_change"]
            assert change is None or (change["cause"], change["segment"]) == ("window", None)
            assert explanation["r"]["cuts"] == [-x for x in boundaries["recency"]]
            assert explanation["f"]["cuts"] == boundaries["frequency"]
            for axis, value in (("r", body["recency_days"]), ("f", body["orders"])):
                low, high = explanation[axis]["min"], explanation[axis]["max"]
                assert (low is None or low <= value) and (high is None or value <= high), axis
            assert explanation["rule"]["name"] == body["segment"]


async def test_redis_down_is_a_500_or_a_cut_stream_never_internals(
    env: dict[str, str], private_redis: RedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A paged request gets the generic 500; a stream, whose 200 is already sent, is cut
    before its final chunk so the client sees an incomplete body, not a short segment."""
    server = private_redis()
    own_env = {**env, "RFM_REDIS_URL": server.url, "RFM_REDIS_CONNECT_TIMEOUT": "1"}
    await _fill(own_env, 20)
    async with TestClient(TestServer(build_app(settings_of(own_env)))) as c:
        status, _ = await _get(c, "/v1/segments/new/customers")
        assert status == 200
        server.kill()
        with caplog.at_level(logging.ERROR):
            status, body = await _get(c, "/v1/segments/new/customers")
            assert (status, body["error"]) == (500, "internal_error")
            assert "Redis" not in body["message"] and "Error" not in body["message"]
            response = await c.get(
                "/v1/segments/new/customers", params={"stream": "1"}, headers=_auth()
            )
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    assert "segment stream failed part-way; connection cut" in caplog.text


# ---------------------------------------------------------------------------- erasure

ERASER = "tok-" + "E" * 28


async def test_delete_erases_with_an_erase_token_only(env: dict[str, str]) -> None:
    """DELETE /v1/customers/{id}: 401 without a token, 403 with a reading one, 200 with an
    erase token (the customer gone, its order records too), then 404; ids judged as the
    worker judges them."""
    env = {**env, "RFM_API_ERASE_TOKENS": ERASER}
    await _fill(env, 50)
    async with TestClient(TestServer(build_app(settings_of(env)))) as client:
        url = f"/v1/customers/{_quoted('c/slash')}"
        status, before = await _get(client, url)
        assert status == 200
        nobody = await client.delete(url)
        assert (nobody.status, (await nobody.json())["error"]) == (401, "unauthorized")
        reader = await client.delete(url, headers=_auth(TOKEN))
        assert (reader.status, (await reader.json())["error"]) == (403, "forbidden")
        assert (await _get(client, url))[0] == 200  # nothing erased by the refusals

        erased = await client.delete(url, headers=_auth(ERASER))
        report = await erased.json()
        assert erased.status == 200, report
        assert report["customer_id"] == "c/slash"
        assert report["previous_segment"] == before["segment"]
        assert report["order_records_deleted"] >= 1
        status, body = await _get(client, url)
        assert (status, body["error"]) == (404, "unknown_customer")
        again = await client.delete(url, headers=_auth(ERASER))
        assert (again.status, (await again.json())["error"]) == (404, "unknown_customer")
        hostile = await client.delete("/v1/customers/" + "x" * 257, headers=_auth(ERASER))
        assert (hostile.status, (await hostile.json())["error"]) == (400, "invalid_customer_id")
        status, sizes = await _get(client, "/v1/segments", headers=_auth(ERASER))  # reads too
        assert status == 200 and sizes["total"] == 50 + len(ODD_IDS) - 1

    runtime = Runtime.build(settings_of(env))
    try:
        keys = runtime.keys
        assert await runtime.redis.hexists(keys.profiles_of("c/slash"), "c/slash") == 0
        fields = await runtime.redis.hkeys(keys.orders_of("c/slash"))
        assert not [f for f in fields if f.startswith(b"c/slash")]
        assert int(await runtime.redis.get(keys.erasures) or 0) == 1
    finally:
        await runtime.close()


async def test_delete_is_never_open_not_even_on_loopback(env: dict[str, str]) -> None:
    open_env = {k: v for k, v in env.items() if k != "RFM_API_TOKENS"}
    await _fill(open_env, 5)
    async with TestClient(TestServer(build_app(settings_of(open_env)))) as client:
        assert (await _get(client, "/v1/customers/c0001", headers={}))[0] == 200  # reads open
        refused = await client.delete("/v1/customers/c0001")
        assert (refused.status, (await refused.json())["error"]) == (403, "forbidden")
        assert (await _get(client, "/v1/customers/c0001", headers={}))[0] == 200
