"""Dashboards, alert rules and the compose stack, proven against a real Prometheus server.

The main test runs a real worker on a real broker and Redis, feeds it live orders from the
demo shop (``python -m stream.shopper``) plus some bad records, lets a real ``prometheus``
scrape it, and then asks Prometheus for every query of every dashboard panel (each must
return data) and every alert rule (each must parse and evaluate without error; the rules
that watch for an unhealthy system must be quiet on this healthy one). Another test feeds
the alert expressions, as loaded by Prometheus, synthetic series through ``promtool test
rules`` to show that each fires in the condition it is named after.

``prometheus``/``promtool`` come from Debian's ``prometheus`` package (installed by
``.ci/run``); without them these tests skip on a workstation and fail in CI.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
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
from typing import Any

import orjson
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from stream import metrics
from tests.support.harness import ROOT, Worker, free_port, produce, rfm_env, wait_until

pytestmark = pytest.mark.integration

DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
JOB = "rfm-stream"  # the scrape job the rules and docs name

# What Grafana would put in for its built-in variables.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}

ALERTS = {
    "RfmWorkerDown",
    "RfmNoWorkerUp",
    "RfmConsumerLagGrowing",
    "RfmNoInput",
    "RfmDeadLetterRateHigh",
    "RfmRescoringOverdue",
    "RfmRescoringNeverRan",
    "RfmRescoringFailing",
    "RfmOutboxBacklogGrowing",
    "RfmRedisErrors",
}
# On a healthy worker with traffic these must have nothing to say.
QUIET_WHEN_HEALTHY = {
    "RfmWorkerDown",
    "RfmNoWorkerUp",
    "RfmNoInput",
    "RfmRescoringOverdue",
    "RfmRescoringNeverRan",
    "RfmRescoringFailing",
    "RfmRedisErrors",
}


# --------------------------------------------------------------------------- helpers


def tool(name: str) -> str:
    """The path of a CLI tool; a skip on a workstation without it, a failure in CI."""
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed, but .ci/run installs it (Debian package)")
    package = "docker-compose" if name == "docker-compose" else "prometheus"
    pytest.skip(f"{name} is not installed (apt-get install {package}); CI installs it")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def load_dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, json.loads(path.read_text(encoding="utf-8"))) for path in DASHBOARDS]


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """A value for each template variable, as Grafana would substitute it by default."""
    values = dict(BUILTINS)
    for var in dashboard["templating"]["list"]:
        if var["type"] == "datasource":
            values[var["name"]] = "prometheus"
        elif var.get("includeAll") and var.get("allValue"):
            values[var["name"]] = var["allValue"]
        else:
            current = var.get("current", {}).get("value")
            values[var["name"]] = current[0] if isinstance(current, list) else current
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"unknown template variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(where, raw expr, expr ready for Prometheus) of every panel target."""
    out = []
    for name, dashboard in load_dashboards():
        values = variable_values(dashboard)
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                where = f"{name}: {panel['title']} [{target['refId']}]"
                out.append((where, target["expr"], substitute(target["expr"], values)))
    return out


def catalog_names() -> set[str]:
    """Every series name the worker can expose, from stream/metrics.py."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                names.update(family.name + s for s in suffixes[family.type])
    assert len(names) > 20, "stream/metrics.py defines no metrics?"
    return names


def http_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Prometheus:
    """A real ``prometheus`` server as a child process, on a free local port."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        return http_json(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))

    def query(self, expr: str) -> dict[str, Any]:
        """The raw API answer; a PromQL error comes back as status "error", not an exception."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400 / 422 carry the error as JSON
            answer = json.loads(exc.read())
        return answer

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def alert_rules(self) -> dict[str, dict[str, Any]]:
        groups = self.api("rules", type="alert")["data"]["groups"]
        return {rule["name"]: rule for group in groups for rule in group["rules"]}


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """Starts ``prometheus`` with a config text; every server is killed at teardown."""
    started: list[Prometheus] = []

    def start(config_text: str) -> Prometheus:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        config = workdir / "prometheus.yml"
        config.write_text(config_text, encoding="utf-8")
        server = Prometheus(config, workdir)
        started.append(server)
        wait_until(server.ready, 30, f"prometheus ready (log: {server.log_path})")
        return server

    yield start
    for server in started:
        server.stop()


def prometheus_config(targets: list[str], interval: str = "1s") -> str:
    """JSON is YAML too: no YAML library needed."""
    jobs = [{"job_name": JOB, "static_configs": [{"targets": targets}]}] if targets else []
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(RULES)],
        "scrape_configs": jobs,
    }
    return json.dumps(config, indent=2)


@contextmanager
def shopper(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m stream.shopper`` publishing live orders until the block ends (SIGTERM)."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.shopper"],
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


# --------------------------------------------------------------------------- static checks


def test_dashboards_are_generated_and_well_formed() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "dashboards" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert {p.name for p in DASHBOARDS} >= {"pipeline-health.json", "segments.json"}
    known = catalog_names()
    uids = set()
    for name, dashboard in load_dashboards():
        assert isinstance(dashboard["schemaVersion"], int), name
        assert dashboard["schemaVersion"] >= 36, name
        assert dashboard["uid"] not in uids, f"{name}: uid {dashboard['uid']} used twice"
        uids.add(dashboard["uid"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        ds = variables.get("datasource")
        assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", name
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat: {sorted(ids)}"
        for panel in panels(dashboard):
            where = f"{name}: {panel['title']}"
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, where
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${datasource}", where
            targets = panel["targets"]
            assert targets, f"{where}: no query"
            ref_ids = [t["refId"] for t in targets]
            assert len(ref_ids) == len(set(ref_ids)), f"{where}: refIds repeat"
            for target in targets:
                assert target["datasource"]["uid"] == "${datasource}", where
                assert 'job=~"$job"' in target["expr"], f"{where}: no job matcher"
                for metric in re.findall(r"\brfm_\w+", target["expr"]):
                    assert metric in known, f"{where}: {metric} is not in stream/metrics.py"


def test_rules_and_docs_name_only_real_metrics() -> None:
    known = catalog_names()
    rules = RULES.read_text(encoding="utf-8")
    unknown = set(re.findall(r"\brfm_\w+", rules)) - known
    assert not unknown, f"rules.yml names metrics the worker does not have: {sorted(unknown)}"
    for alert in ALERTS:
        assert f"alert: {alert}\n" in rules, f"{alert} is missing from rules.yml"
    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    families = {re.sub(r"_(total|info)$", "", n) for n in known if not n.endswith("_created")}
    families = {f for f in families if not re.search(r"_(bucket|sum|count)$", f)}
    missing = sorted(f for f in families if f not in docs)
    assert not missing, f"docs/operations.md does not describe {missing}"
    for alert in ALERTS:
        assert alert in docs, f"docs/operations.md does not explain {alert}"


def test_config_files_check() -> None:
    promtool = tool("promtool")
    for args in (["check", "config", str(PROMETHEUS_CONFIG)], ["check", "rules", str(RULES)]):
        done = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    tool("docker-compose")  # skips or fails
    raise AssertionError("unreachable")


def test_compose_file_validates() -> None:
    compose = _compose_command()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*compose, "-f", str(COMPOSE), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=False,
        )

    done = run("config", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    # (docker-compose 1.x lists services of every profile here, Compose v2 the active ones)
    services = set(run("config", "--services").stdout.split()) - {"shop"}
    assert services == {"kafka", "kafka-init", "redis", "worker", "prometheus", "grafana"}
    demo = set(run("--profile", "demo", "config", "--services").stdout.split())
    assert demo == services | {"shop"}
    rendered = run("--profile", "demo", "config").stdout
    shop = rendered[rendered.index("\n  shop:") :]
    assert re.search(r"profiles:\n\s+- demo", shop), "the shop is not in the demo profile"
    for needle in (
        "image: apache/kafka:3.8.0",
        "KAFKA_PROCESS_ROLES: broker,controller",
        "replicas: 2",
        "--appendonly",
        "redis-data:/data",
        "condition: service_completed_successfully",
        "/etc/prometheus",
        "/etc/grafana/provisioning",
        "/var/lib/grafana/dashboards",
        "stream.shopper",
    ):
        assert needle in rendered, f"docker-compose.yml: {needle!r} not found"
    # What the compose file mounts and builds exists.
    for path in (
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/rules.yml",
        "deploy/grafana/provisioning/datasources",
        "deploy/grafana/provisioning/dashboards",
        "dashboards/pipeline-health.json",
    ):
        assert (ROOT / path).exists(), path


def test_dockerfile_is_small_and_unprivileged() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line.split(None, 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith((" ", "#"))
    ]
    froms = [args for op, args in instructions if op == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms), froms
    users = [args.strip() for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert 'ENTRYPOINT ["rfm-stream"]' in text and 'CMD ["worker"]' in text
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


# --------------------------------------------------------------------------- alert semantics

# For each alert: series in which it must fire and the labels it fires with, at `at`. The
# expressions come from the running Prometheus (so from rules.yml itself); `for:` is not
# part of this check, the expression is.
W = f'job="{JOB}",instance="w1:6066"'
SCENARIOS: dict[str, tuple[list[tuple[str, str]], str, str]] = {
    "RfmWorkerDown": (
        [(f"up{{{W}}}", "1 1 0 0 0 0"), (f'up{{job="{JOB}",instance="w2:6066"}}', "1x5")],
        "5m",
        f"{{{W}}}",
    ),
    # absent() of an expression, not of a plain selector, has no labels
    "RfmNoWorkerUp": ([(f"up{{{W}}}", "1 1 0 0 0 0")], "5m", "{}"),
    "RfmConsumerLagGrowing": (
        [(f'rfm_consumer_lag_messages{{{W},topic="rfm.orders",partition="0"}}', "0+200x20")],
        "15m",
        f'{{job="{JOB}",topic="rfm.orders"}}',
    ),
    "RfmNoInput": (
        [
            (f"rfm_build_info{{{W}}}", "1x40"),
            (
                f'rfm_input_events_total{{{W},topic="rfm.orders",outcome="applied"}}',
                "0+600x10 6000x30",
            ),
        ],
        "30m",
        f'{{job="{JOB}"}}',
    ),
    "RfmDeadLetterRateHigh": (
        [
            (f'rfm_input_events_total{{{W},topic="rfm.orders",outcome="applied"}}', "0+600x20"),
            (
                f'rfm_input_events_total{{{W},topic="rfm.orders",outcome="dead_lettered"}}',
                "0+60x20",
            ),
        ],
        "15m",
        f'{{job="{JOB}",topic="rfm.orders"}}',
    ),
    "RfmRescoringOverdue": (
        [(f'rfm_rescore_last_success_timestamp_seconds{{{W},kind="due"}}', "0+60x5 300x30")],
        "20m",
        f'{{job="{JOB}"}}',
    ),
    "RfmRescoringNeverRan": ([(f"rfm_build_info{{{W}}}", "1x30")], "20m", f'{{job="{JOB}"}}'),
    "RfmRescoringFailing": (
        [(f'rfm_rescore_passes_total{{{W},kind="due",result="failed"}}', "0+1x20")],
        "15m",
        f'{{job="{JOB}",kind="due"}}',
    ),
    "RfmOutboxBacklogGrowing": (
        [(f"rfm_outbox_backlog_records{{{W}}}", "0+100x30")],
        "20m",
        f'{{job="{JOB}"}}',
    ),
    "RfmRedisErrors": (
        [
            (
                f'rfm_redis_errors_total{{{W},operation="apply_orders",error="ConnectionError"}}',
                "0+3x10",
            )
        ],
        "8m",
        f'{{job="{JOB}",operation="apply_orders"}}',
    ),
}
# ... and a calm moment of the same series, where it must not fire.
CALM = {
    "RfmWorkerDown": "1m",
    "RfmNoWorkerUp": "1m",
    "RfmConsumerLagGrowing": "3m",
    "RfmNoInput": "8m",
    "RfmDeadLetterRateHigh": None,
    "RfmRescoringOverdue": "5m",
    "RfmRescoringNeverRan": None,
    "RfmRescoringFailing": None,
    "RfmOutboxBacklogGrowing": "5m",
    "RfmRedisErrors": None,
}


def test_alert_rules_fire_on_synthetic_series(
    start_prometheus: Callable[[str], Prometheus], tmp_path: Path
) -> None:
    promtool = tool("promtool")
    server = start_prometheus(prometheus_config([]))
    rules = server.alert_rules()
    assert set(rules) == ALERTS
    for name, rule in rules.items():
        assert rule["annotations"].get("runbook", "").count("\n") >= 2, f"{name}: runbook"
        assert rule["annotations"].get("description"), f"{name}: description"
        assert rule["labels"].get("severity") in ("warning", "critical"), name
    tests = []
    for name, (series, at, labels) in SCENARIOS.items():
        # `* 0 + 1` keeps the labels and makes the value exact; the name label goes.
        expr = f"({rules[name]['query']}) * 0 + 1"
        cases: list[dict[str, Any]] = [
            {"expr": expr, "eval_time": at, "exp_samples": [{"labels": labels, "value": 1}]}
        ]
        if CALM[name]:
            cases.append({"expr": expr, "eval_time": CALM[name], "exp_samples": []})
        tests.append(
            {
                "name": name,
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": cases,
            }
        )
    test_file = tmp_path / "rules-test.yml"
    test_file.write_text(json.dumps({"rule_files": [str(RULES)], "tests": tests}, indent=2))
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


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
