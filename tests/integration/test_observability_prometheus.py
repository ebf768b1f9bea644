"""Dashboards, alert rules and the compose stack, proven against a real Prometheus server.

The test here runs a real worker on a real broker and Redis, feeds it live orders from the
demo shop (``python -m rfm_dev.shopper``) plus some bad records, lets a real ``prometheus``
scrape it, and then asks Prometheus for every query of every dashboard panel (each must
return data) and every alert rule (each must parse and evaluate without error; the rules
that watch for an unhealthy system must be quiet on this healthy one).

``prometheus`` comes from Debian's ``prometheus`` package (installed by ``.ci/run``);
without it this test skips on a workstation and fails in CI.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import ROOT, Worker, produce, rfm_env, wait_until
from tests.support.observability import (
    ALERTS,
    JOB,
    QUIET_WHEN_HEALTHY,
    Prometheus,
    dashboard_queries,
    prometheus_config,
    start_prometheus_fixture,  # noqa: F401 (fixture)
    tool,
)

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- helpers


@contextmanager
def shopper(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m rfm_dev.shopper`` publishing live orders until the block ends (SIGTERM)."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rfm_dev.shopper"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The worker's /metrics as {(sample name, sorted labels): value}."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all((k, val) in ls for k, val in labels.items())
    )


def bad(**fields: object) -> tuple[bytes, bytes]:
    return b"c9", orjson.dumps(
        {"customer_id": "c9", "occurred_at": "2026-01-01T00:00:00Z"} | fields
    )


# One of several dead-letter reasons, so the dead-letter series exist.
BAD_RECORDS = [
    (b"c9", b"{nope"),
    (b"c9", b"[1, 2]"),
    bad(amount="1"),  # no order_id
    bad(order_id="b1", amount="-1"),
    bad(order_id="b2", amount="1", currency="XXX"),
    bad(type="refund", order_id="never-bought", amount="1"),
]


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_prometheus_scrapes_a_worker_and_every_query_returns_data(
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    tmp_path: Path,
    start_prometheus: Callable[[str], Prometheus],
) -> None:
    tool("prometheus")
    env = rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_RESCORE_INTERVAL="2")
    worker = Worker(env, tmp_path / "worker.log").start()
    port = int(worker.env["RFM_WEB_PORT"])
    shop_env = {**env, "RFM_SHOP_RATE": "60", "RFM_SHOP_CUSTOMERS": "5000", "RFM_SHOP_SEED": "3"}
    try:
        with shopper(shop_env, tmp_path / "shop.log") as shop:
            wait_until(lambda: total(scrape(port), "rfm_build_info") == 1, 60, "/metrics", worker)
            produce(kafka_bootstrap, env["RFM_ORDERS_TOPIC"], BAD_RECORDS)

            def worker_did_everything() -> bool:
                s = scrape(port)
                return (
                    total(s, "rfm_input_events_total", outcome="applied") >= 200
                    and total(s, "rfm_dead_letters_total") >= len(BAD_RECORDS)
                    and total(s, "rfm_rescore_passes_total", result="ok") >= 1
                    and total(s, "rfm_outbox_published_total") >= 1
                    and total(s, "rfm_segment_transitions_total") >= 1
                    and any(name == "rfm_consumer_lag_messages" for name, _ in s)
                )

            wait_until(
                worker_did_everything, 60, "traffic, dead letters and a rescoring pass", worker
            )
            assert shop.poll() is None, (tmp_path / "shop.log").read_text()

            server = start_prometheus(prometheus_config([f"127.0.0.1:{port}"]))
            enough = f'count_over_time(up{{job="{JOB}"}}[1m]) >= 6 and up{{job="{JOB}"}} == 1'
            wait_until(
                lambda: bool(server.query(enough)["data"]["result"]),
                30,
                f"six successful scrapes (log: {server.log_path})",
                worker,
            )
            time.sleep(2)  # one more refresh of the worker's gauges and two more scrapes

            problems = check_dashboards(server) + check_alert_rules(server)
            assert not problems, "\n".join(problems)
            jobs = server.api("label/job/values", **{"match[]": "rfm_build_info"})["data"]
            assert jobs == [JOB], "the dashboards' $job variable finds no job"
        assert shop.returncode == 0, f"shopper did not stop cleanly on SIGTERM: {shop.returncode}"
    finally:
        assert worker.stop() == 0, worker.log_tail()


def check_dashboards(server: Prometheus) -> list[str]:
    problems = []
    queries = dashboard_queries()
    assert len(queries) >= 40
    for where, raw, expr in queries:
        answer = server.query(expr)
        if answer.get("status") != "success":
            problems.append(f"{where}: {answer.get('error')}\n    {raw}")
            continue
        result = answer["data"]["result"]
        if not result:
            problems.append(f"{where}: no data\n    {raw}")
            continue
        values = (
            [float(s["value"][1]) for s in result]
            if answer["data"]["resultType"] == "vector"
            else [float(result[1])]
        )
        if all(math.isnan(v) for v in values):
            problems.append(f"{where}: only NaN\n    {raw}")
    return problems


def check_alert_rules(server: Prometheus) -> list[str]:
    """Every rule is loaded, parses, evaluated without error; the 'unhealthy' ones are quiet."""
    problems = []
    wait_until(
        lambda: all(
            r.get("lastEvaluation", "").startswith("2") for r in server.alert_rules().values()
        ),
        20,
        "every rule evaluated once",
    )
    rules = server.alert_rules()
    if set(rules) != ALERTS:
        problems.append(f"alert rules loaded: {sorted(rules)}, expected {sorted(ALERTS)}")
    for name, rule in rules.items():
        if rule["health"] != "ok":
            problems.append(f"rule {name}: health {rule['health']}: {rule.get('lastError')}")
        answer = server.query(rule["query"])
        if answer.get("status") != "success":
            problems.append(f"rule {name}: {answer.get('error')}")
        elif name in QUIET_WHEN_HEALTHY and answer["data"]["result"]:
            problems.append(f"rule {name} fires on a healthy worker: {answer['data']['result']}")
    return problems
