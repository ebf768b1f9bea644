"""The benchmark harness end to end at its smallest size: it runs and reports every part.

Speed is not checked here (CI machines vary); the targets are reported by the bench itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _positive(data: dict[str, Any], *path: str) -> None:
    value: Any = data
    for key in path:
        assert isinstance(value, dict) and key in value, f"missing {'.'.join(path)}"
        value = value[key]
    assert isinstance(value, int | float) and value > 0, f"{'.'.join(path)} = {value!r}"


@pytest.mark.timeout(360)
def test_small_bench_reports_every_part(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--small", "--commandstats", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    data = json.loads(out.read_text())
    for part in ("ceiling", "bare_ceiling", "worker", "latency", "rescoring", "memory"):
        assert "error" not in data[part], data[part]

    _positive(data, "ceiling", "events_per_s")
    _positive(data, "bare_ceiling", "events_per_s")
    for process in ("bench", "redis"):
        _positive(data, "bare_ceiling", "cpu_s_per_1000_events", process)
    bare = data["bare_ceiling"]
    assert bare["orders_applied"] + bare["duplicates"] + bare["skipped"] == bare["events"]
    assert bare["events"] == data["meta"]["workload"]["events"]
    assert set(bare["us_per_event"]) == {"fetch", "decode", "apply", "commit"}
    one = data["worker"]["1"]
    _positive(one, "cpu_s_per_1000_events", "redis")
    _positive(one, "commandstats", "redis_cpu_us_per_event")
    assert one["commandstats"]["commands"]["evalsha"]["calls"] > 0
    assert "commandstats" not in data["worker"]["2"]  # the 1-worker run only
    for workers in ("1", "2"):
        _positive(data, "worker", workers, "events_per_s")
        _positive(data, "worker", workers, "seconds")
    _positive(data, "latency", "orders")
    latency = data["latency"]
    assert latency["changes_seen"] == latency["orders"]
    # one record in ten is a timed probe, the rest the throughput workload's events
    assert latency["probe_every"] == 10
    assert latency["orders"] == -(-latency["records"] // 10)
    stress = latency["every_order_a_change"]
    assert stress["probe_every"] == 1 and stress["orders"] == stress["records"]
    assert stress["changes_seen"] == stress["orders"]
    _positive(data, "latency", "every_order_a_change", "publish_to_change_publish", "p99_ms")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        _positive(data, "latency", "publish_to_change_publish", q)
        _positive(data, "latency", "broker_alone", q)
    assert data["latency"]["broker_alone"]["missing"] == 0
    assert set(data["latency"]["cpu_cores_busy"]) == {"worker0", "redis", "broker", "bench"}
    scoring = data["rescoring"]
    for kind in ("full_pass", "due_pass", "full_pass_quintiles"):
        _positive(data, "rescoring", kind, "seconds")
        _positive(data, "rescoring", kind, "rescored")
    assert scoring["full_pass"]["rescored"] == scoring["customers"]
    assert scoring["full_pass_quintiles"]["rescored"] == scoring["customers"]
    assert scoring["full_pass_quintiles"]["changes"] == 0  # steady: the second at one as-of
    n = scoring["customers"]
    # Exactly 1 % a day: customers i with i % 100 == day are due on that day.
    assert [p["rescored"] for p in scoring["due_passes"]] == [
        len(range(d, n, 100)) for d in range(3)
    ]
    assert len(scoring["full_passes_s"]) == 3
    _positive(data, "memory", "bytes_per_customer")
    _positive(data, "memory", "bytes_per_order")

    machine = data["meta"]["machine"]
    assert machine["cpu_model"] and machine["python"] and machine["redis_version"]
    _positive(data, "meta", "machine", "cores")
    names = {t["name"] for t in data["targets"]}
    assert len(names) == 9, names
    assert {"worker_throughput_vs_bare_ceiling", "redis_cpu_us_per_event_1_worker"} <= names
    assert all(t["result"] in ("PASS", "FAIL") for t in data["targets"])
    assert any("ceiling" in line for line in data["table"])
    for row in ("bare ceiling", "ratio to bare ceiling", "Redis CPU us/input event", "evalsha"):
        assert any(row in line for line in data["table"]), row
