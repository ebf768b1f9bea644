"""Shared pieces of the observability tests: paths, alert names, dashboard queries, Prometheus.

``Prometheus`` runs a real ``prometheus`` server as a child process; the
``start_prometheus`` fixture (import ``start_prometheus_fixture`` into a test module to use
it) starts one per config text and stops them all at teardown. ``prometheus``/``promtool``
come from Debian's ``prometheus`` package (installed by ``.ci/run``); without them ``tool``
skips the test on a workstation and fails it in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from stream import metrics
from tests.support.harness import ROOT, free_port, wait_until

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


@pytest.fixture(name="start_prometheus")
def start_prometheus_fixture(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
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
