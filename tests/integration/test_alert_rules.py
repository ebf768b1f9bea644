"""Alert semantics: each alert rule fires in the condition it is named after.

The alert expressions, as loaded by a real Prometheus from ``deploy/prometheus/rules.yml``,
get synthetic series through ``promtool test rules``: each must fire with the expected
labels, and stay quiet at a calm moment of the same series. ``prometheus``/``promtool``
come from Debian's ``prometheus`` package (installed by ``.ci/run``); without them this
test skips on a workstation and fails in CI.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.observability import (
    ALERTS,
    JOB,
    RULES,
    Prometheus,
    prometheus_config,
    start_prometheus_fixture,  # noqa: F401 (fixture)
    tool,
)

pytestmark = pytest.mark.integration


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
