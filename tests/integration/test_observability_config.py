"""Static checks of the observability files: generated dashboards, rules, docs, configs.

The dashboards are what ``dashboards/generate.py`` writes and name only real metrics; the
alert rules and the README's Operations section cover every metric and alert; ``promtool`` accepts
the Prometheus config and rules; ``docker-compose.yml`` validates and the Dockerfile builds
a small, unprivileged image. ``promtool``/``docker-compose`` missing: skip on a
workstation, failure in CI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.support.harness import ROOT
from tests.support.observability import (
    ALERTS,
    COMPOSE,
    DASHBOARDS,
    DOCKERFILE,
    PROMETHEUS_CONFIG,
    RULES,
    catalog_names,
    load_dashboards,
    panels,
    tool,
)

pytestmark = pytest.mark.integration


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
    docs = (ROOT / "README.md").read_text(encoding="utf-8")
    families = {re.sub(r"_(total|info)$", "", n) for n in known if not n.endswith("_created")}
    families = {f for f in families if not re.search(r"_(bucket|sum|count)$", f)}
    missing = sorted(f for f in families if f not in docs)
    assert not missing, f"README.md does not describe {missing}"
    for alert in ALERTS:
        assert alert in docs, f"README.md does not explain {alert}"


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
        "rfm_dev.shopper",
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
    stages = [f.split()[-1] for f in froms if " AS " in f]
    bases = [f.split()[0] for f in froms]
    # Each stage starts from the slim Python image or from a stage defined before it.
    for i, base in enumerate(bases):
        assert base.startswith("python:3.11-slim") or base in stages[:i], froms
    users = [args.strip() for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert 'ENTRYPOINT ["rfm-stream"]' in text and 'CMD ["worker"]' in text
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_the_production_image_has_no_development_code() -> None:
    """Issue #18: the demo shop and the embedded servers (rfm_dev) are not in the image the
    Dockerfile builds by default; only its `shop` stage, for the compose demo profile, adds
    them. The image's package is built from stream/ and state/ only."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith((" ", "#")):
            continue
        op, _, args = line.partition(" ")
        if op == "FROM":
            current = args.split()[-1] if " AS " in args else "<final>"
            stages[current] = [("FROM", args.split()[0])]
        else:
            stages[current].append((op, args))

    def chain(stage: str) -> list[tuple[str, str]]:
        """The instructions of a stage and of the stages it is built on."""
        base = stages[stage][0][1]
        return (chain(base) if base in stages else []) + stages[stage]

    def copied(stage: str) -> list[str]:
        return [
            source
            for op, args in chain(stage)
            if op == "COPY"
            for source in args.split()[:-1]
            if not source.startswith("--")
        ]

    final = chain("<final>")
    assert "rfm_dev/" not in copied("<final>") and "rfm_dev/" not in copied("build")
    assert set(copied("build")) == {"pyproject.toml", "README.md", "state/", "stream/"}
    assert any(op == "COPY" and args.startswith("--from=build") for op, args in final)
    assert ("ENTRYPOINT", '["rfm-stream"]') in final
    # ... and the build fails if the installed package could still import it.
    assert '! /opt/rfm-stream/bin/python -c "import rfm_dev"' in DOCKERFILE.read_text()
    assert "rfm_dev/" in copied("shop")
    assert ("ENTRYPOINT", '["python", "-m", "rfm_dev.shopper"]') in stages["shop"]
    compose = COMPOSE.read_text(encoding="utf-8")
    shop = compose[compose.index("\n  shop:") :]
    assert re.search(r"build:\n\s+context: \.\n\s+target: shop", shop), shop[:400]
    assert "rfm-stream-shop:local" in shop
