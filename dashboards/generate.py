"""Builds the Grafana dashboards of rfm-stream as JSON: ``python dashboards/generate.py``.

Edit this file, not the JSON: run it to rewrite ``pipeline-health.json`` and
``segments.json`` next to it, and commit both. ``--check`` exits 1 when the committed JSON
differs from what this file generates (the test suite runs it).

Conventions, so every panel works with any Prometheus that scrapes the workers:

* every panel and query uses the ``${datasource}`` template variable (type ``datasource``);
* every selector carries ``job=~"$job"`` (all jobs that expose ``rfm_build_info`` by default);
* gauges read from Redis (segment sizes, outbox backlog) are reported by every worker, so
  they are combined with ``max``, never ``sum``;
* counters that only exist after their first event (dead letters, Redis errors, failed
  passes, a transition out of a segment) end in ``or on() vector(0)``, so the panel shows a
  zero rather than "No data" on a healthy system.

Metric names, labels and meanings: ``stream/metrics.py`` and ``docs/operations.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39  # Grafana 10.3 - 11.x
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
J = 'job=~"$job"'  # the job matcher every selector carries
RATE = "$__rate_interval"
TOP = "$top_segment"

Json = dict[str, Any]


# --------------------------------------------------------------------------- building blocks


def q(expr: str, legend: str = "__auto", *, instant: bool = False, table: bool = False) -> Json:
    """One Prometheus query of a panel; refIds are given by the panel."""
    target: Json = {"datasource": DS, "expr": expr, "legendFormat": legend}
    if instant:
        target |= {"instant": True, "range": False}
    else:
        target |= {"instant": False, "range": True}
    if table:
        target["format"] = "table"
    return target


def quantiles(
    metric: str, by: str = "", window: str = RATE, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> list[Json]:
    """Quantiles of a histogram over ``window``, optionally per label ``by``."""
    labels = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        q(
            f"histogram_quantile({p}, sum by ({labels}) (rate({metric}_bucket{{{J}}}[{window}])))",
            f"p{round(p * 100)}{suffix}",
        )
        for p in qs
    ]


def or_zero(expr: str) -> str:
    """A zero instead of no series at all when the counter has never been incremented."""
    return f"({expr}) or on() vector(0)"


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


GREEN = thresholds((None, "green"))


def timeseries(
    title: str,
    targets: list[Json],
    *,
    unit: str = "short",
    description: str = "",
    stack: bool = False,
    log_scale: bool = False,
    minimum: float | None = 0,
) -> Json:
    custom: Json = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 25 if stack else 10,
        "showPoints": "never",
        "spanNulls": True,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    if log_scale:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    defaults: Json = {"unit": unit, "custom": custom, "thresholds": GREEN}
    if minimum is not None and not log_scale:
        defaults["min"] = minimum
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    target: Json,
    *,
    unit: str = "short",
    description: str = "",
    steps: Json = GREEN,
    decimals: int | None = None,
) -> Json:
    defaults: Json = {"unit": unit, "thresholds": steps, "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "targets": [target],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        },
    }


def bargauge(title: str, target: Json, *, unit: str = "short", description: str = "") -> Json:
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "targets": [target],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "thresholds": GREEN,
                "color": {"mode": "palette-classic"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        },
    }


def table(
    title: str, target: Json, *, description: str = "", transformations: list[Json] | None = None
) -> Json:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "targets": [target],
        "transformations": transformations or [],
        "fieldConfig": {"defaults": {"thresholds": GREEN}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
    }


class Layout:
    """Places panels left to right in rows of 24 grid units and numbers them."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._row_height = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._next_id(),
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
            }
        )
        self._y += 1

    def add(self, panel: Json, w: int, h: int | None = None) -> None:
        h = h or (5 if panel["type"] == "stat" else 8)
        if self._x + w > 24:
            self._newline()
        for i, target in enumerate(panel.get("targets", [])):
            target["refId"] = chr(ord("A") + i)
        self.panels.append(
            {
                "id": self._next_id(),
                **panel,
                "datasource": DS,
                "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
            }
        )
        self._x += w
        self._row_height = max(self._row_height, h)

    def _newline(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0


def variables(*extra: Json) -> Json:
    datasource = {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }
    job = {
        "type": "query",
        "name": "job",
        "label": "Job",
        "datasource": DS,
        "definition": "label_values(rfm_build_info, job)",
        "query": {"query": "label_values(rfm_build_info, job)", "refId": "Jobs"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "regex": "",
        "options": [],
    }
    return {"list": [datasource, job, *extra]}


def dashboard(uid: str, title: str, description: str, layout: Layout, templating: Json) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["rfm-stream"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "title": "rfm-stream dashboards",
                "type": "dashboards",
                "tags": ["rfm-stream"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": templating,
        "panels": layout.panels,
    }


# --------------------------------------------------------------------------- pipeline health

_EVENTS = f"rfm_input_events_total{{{J}}}"
_DEAD = f'rfm_input_events_total{{{J},outcome="dead_lettered"}}'
_LAG = f"max by (topic, partition) (rfm_consumer_lag_messages{{{J}}})"


def pipeline_health() -> Json:
    lay = Layout()
    lay.row("Overview")
    lay.add(stat("Workers up", q(f"sum(up{{{J}}})"), description="Scrape targets answering."), 4)
    lay.add(
        stat(
            "Input events",
            q(f"sum(rate({_EVENTS}[{RATE}]))"),
            unit="ops",
            description="Input events handled per second, every outcome.",
        ),
        4,
    )
    lay.add(
        stat(
            "Consumer lag",
            q(f"sum({_LAG})"),
            description="Records on the input topic not processed yet, all partitions.",
            steps=thresholds((None, "green"), (1000, "orange"), (10000, "red")),
        ),
        4,
    )
    lay.add(
        stat(
            "Publish to applied p99",
            quantiles("rfm_publish_to_applied_seconds", qs=(0.99,))[0],
            unit="s",
            steps=thresholds((None, "green"), (1, "orange"), (10, "red")),
        ),
        4,
    )
    lay.add(
        stat(
            "Dead-letter ratio",
            q(f"{or_zero(f'sum(rate({_DEAD}[{RATE}]))')} / sum(rate({_EVENTS}[{RATE}]))"),
            unit="percentunit",
            decimals=2,
            steps=thresholds((None, "green"), (0.01, "orange"), (0.05, "red")),
        ),
        4,
    )
    lay.add(
        stat(
            "Outbox backlog",
            q(f"max(rfm_outbox_backlog_records{{{J}}})"),
            description="Segment changes and dead letters waiting in Redis for Kafka.",
            steps=thresholds((None, "green"), (1000, "orange"), (10000, "red")),
        ),
        4,
    )

    lay.row("Throughput")
    lay.add(
        timeseries(
            "Input events by outcome",
            [q(f"sum by (outcome) (rate({_EVENTS}[{RATE}]))", "{{outcome}}")],
            unit="ops",
            stack=True,
            description="applied, duplicate (a retried order), dead_lettered, or redelivered "
            "(an offset applied before, seen again after a restart or rebalance).",
        ),
        12,
    )
    lay.add(
        timeseries(
            "Batches and batch size",
            [
                q(f"sum(rate(rfm_batches_total{{{J}}}[{RATE}]))", "batches/s"),
                q(
                    f"sum(rate({_EVENTS}[{RATE}])) / sum(rate(rfm_batches_total{{{J}}}[{RATE}]))",
                    "events per batch",
                ),
            ],
            description="Each batch is one Redis round trip for the state and one for scores.",
        ),
        12,
    )

    lay.row("Lag and latency")
    lay.add(
        timeseries(
            "Consumer lag by partition",
            [q(f"sum by (topic, partition) ({_LAG})", "{{topic}} p{{partition}}")],
            description="Partition high watermark minus the next offset to process.",
        ),
        12,
    )
    lay.add(
        timeseries(
            "Consumer lag by worker",
            [q(f"sum by (instance) (rfm_consumer_lag_messages{{{J}}})", "{{instance}}")],
        ),
        12,
    )
    lay.add(
        timeseries(
            "Broker publish to state applied",
            quantiles("rfm_publish_to_applied_seconds"),
            unit="s",
            description="From the broker timestamp of a record to its state update: what a "
            "consumer of segment changes waits, without the relay.",
        ),
        8,
    )
    lay.add(
        timeseries(
            "Batch processing time",
            quantiles("rfm_consumed_to_applied_seconds"),
            unit="s",
            description="From a batch handed to the worker to its state update and scoring.",
        ),
        8,
    )
    lay.add(
        timeseries(
            "Event age when applied",
            quantiles("rfm_event_to_applied_seconds", qs=(0.5, 0.99)),
            unit="s",
            log_scale=True,
            description="From occurred_at to the state update; large during backfills.",
        ),
        8,
    )

    lay.row("Dead letters")
    lay.add(
        timeseries(
            "Dead letters by reason",
            [
                q(
                    or_zero(f"sum by (reason) (rate(rfm_dead_letters_total{{{J}}}[{RATE}]))"),
                    "{{reason}}",
                )
            ],
            unit="ops",
            stack=True,
            description="Records sent to the dead-letter topic; the header rfm.dlq.reason "
            "names the reason, rfm.dlq.source the original offset.",
        ),
        16,
    )
    lay.add(
        bargauge(
            "Dead letters in the last hour",
            q(
                or_zero(
                    f"sort_desc(sum by (reason) (increase(rfm_dead_letters_total{{{J}}}[1h])))"
                ),
                "{{reason}}",
                instant=True,
            ),
        ),
        8,
    )

    lay.row("Redis")
    lay.add(
        timeseries(
            "Redis call latency",
            quantiles("rfm_redis_call_seconds", by="operation", qs=(0.5, 0.99)),
            unit="s",
            description="Batched Lua calls of the hot path: apply_orders and write_scores.",
        ),
        12,
    )
    lay.add(
        timeseries(
            "Redis errors",
            [
                q(
                    or_zero(
                        f"sum by (operation, error) (rate(rfm_redis_errors_total{{{J}}}[{RATE}]))"
                    ),
                    "{{operation}} {{error}}",
                )
            ],
            unit="ops",
            description="Failed Redis calls; each retry counts. Consumption pauses while "
            "Redis fails, so lag grows too.",
        ),
        12,
    )

    lay.row("Workers and partitions")
    lay.add(timeseries("Workers up", [q(f"up{{{J}}}", "{{instance}}")], minimum=0), 6)
    lay.add(
        timeseries(
            "Assigned partitions by worker",
            [q(f"sum by (instance) (rfm_assigned_partitions{{{J}}})", "{{instance}}")],
            stack=True,
        ),
        6,
    )
    lay.add(
        timeseries(
            "Rebalances",
            [
                q(
                    f"sum by (instance) (increase(rfm_rebalances_total{{{J}}}[{RATE}]))",
                    "{{instance}}",
                )
            ],
            description="Consumer-group rebalances; frequent ones mean workers come and go.",
        ),
        6,
    )
    lay.add(
        table(
            "Workers",
            q(
                f"max by (instance, version, scoring, segments, clock) (rfm_build_info{{{J}}})",
                instant=True,
                table=True,
            ),
            description="Version and configuration of each worker.",
            transformations=[
                {
                    "id": "organize",
                    "options": {"excludeByName": {"Time": True, "Value": True}},
                }
            ],
        ),
        6,
    )

    lay.row("Outbox")
    lay.add(
        timeseries(
            "Outbox backlog",
            [q(f"max(rfm_outbox_backlog_records{{{J}}})", "records waiting")],
            description="Every worker reports the same shared backlog: max, not sum.",
        ),
        8,
    )
    lay.add(
        timeseries(
            "Outbox relayed by kind",
            [q(f"sum by (kind) (rate(rfm_outbox_published_total{{{J}}}[{RATE}]))", "{{kind}}")],
            unit="ops",
        ),
        8,
    )
    lay.add(
        timeseries(
            "Outbox publish latency",
            quantiles("rfm_outbox_publish_seconds", qs=(0.5, 0.99)),
            unit="s",
            description="One chunk of outbox records, until the broker acked it.",
        ),
        8,
    )
    return dashboard(
        "rfm-pipeline-health",
        "rfm-stream / Pipeline health",
        "Throughput, lag, latency, dead letters, Redis, workers and the outbox.",
        lay,
        variables(),
    )


# --------------------------------------------------------------------------- segments

_SEGMENTS = f"max by (segment) (rfm_segment_customers{{{J}}})"
_TOP_CUSTOMERS = f'max by (segment) (rfm_segment_customers{{{J},segment="{TOP}"}})'
_TRANSITIONS = "rfm_segment_transitions_total"
_ENTERING = f'{_TRANSITIONS}{{{J},to_segment="{TOP}",from_segment!="{TOP}"}}'
_LEAVING = f'{_TRANSITIONS}{{{J},from_segment="{TOP}",to_segment!="{TOP}"}}'


def segments() -> Json:
    lay = Layout()
    lay.row("Customers per segment")
    lay.add(
        timeseries(
            "Customers per segment",
            [q(_SEGMENTS, "{{segment}}")],
            stack=True,
            description="Read from Redis by every worker every few seconds.",
        ),
        16,
        9,
    )
    lay.add(
        bargauge(
            "Customers per segment now",
            q(f"sort_desc({_SEGMENTS})", "{{segment}}", instant=True),
        ),
        8,
        9,
    )
    lay.add(stat("Customers", q(f"sum({_SEGMENTS})")), 6, 4)
    lay.add(
        stat(
            "Share in $top_segment",
            q(f"sum({_TOP_CUSTOMERS}) / sum({_SEGMENTS})"),
            unit="percentunit",
            decimals=1,
        ),
        6,
        4,
    )
    lay.add(
        stat(
            "Entering $top_segment, last hour",
            q(f"sum(increase({_ENTERING}[1h])) or on() vector(0)"),
            decimals=0,
        ),
        6,
        4,
    )
    lay.add(
        stat(
            "Leaving $top_segment, last hour",
            q(f"sum(increase({_LEAVING}[1h])) or on() vector(0)"),
            decimals=0,
            steps=thresholds((None, "green"), (10, "orange")),
        ),
        6,
        4,
    )

    lay.row("Transitions")
    lay.add(
        table(
            "Transitions from / to (dashboard time range)",
            q(
                f"sum by (from_segment, to_segment) (increase({_TRANSITIONS}{{{J}}}[$__range]))",
                instant=True,
                table=True,
            ),
            description="Rows: segment before; columns: segment after ('none' = no segment "
            "yet, a first purchase).",
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "rowField": "from_segment",
                        "columnField": "to_segment",
                        "valueField": "Value",
                    },
                }
            ],
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Transitions by destination",
            [q(f"sum by (to_segment) (rate({_TRANSITIONS}{{{J}}}[{RATE}]))", "to {{to_segment}}")],
            unit="ops",
            stack=True,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Entering and leaving $top_segment per hour",
            [
                q(f"sum(increase({_ENTERING}[1h])) or on() vector(0)", "entering"),
                q(f"sum(increase({_LEAVING}[1h])) or on() vector(0)", "leaving"),
            ],
            description="Customers moving into and out of the top segment over the past hour.",
        ),
        24,
    )

    lay.row("Rescoring")
    lay.add(
        timeseries(
            "Rescoring pass duration",
            [
                *quantiles("rfm_rescore_pass_seconds", by="kind", window="5m", qs=(0.95,)),
                q(
                    f"sum by (kind) (rate(rfm_rescore_pass_seconds_sum{{{J}}}[5m])) "
                    f"/ sum by (kind) (rate(rfm_rescore_pass_seconds_count{{{J}}}[5m]))",
                    "mean {{kind}}",
                ),
            ],
            unit="s",
            description="due: customers whose R score may have dropped; full: everyone "
            "(quintile mode).",
        ),
        8,
    )
    lay.add(
        timeseries(
            "Rescoring coverage: customers in the last pass",
            [
                q(
                    f"max by (kind) (rfm_rescore_last_examined_customers{{{J}}})",
                    "examined {{kind}}",
                ),
                q(
                    f"max by (kind) (rfm_rescore_last_rescored_customers{{{J}}})",
                    "rescored {{kind}}",
                ),
            ],
        ),
        8,
    )
    lay.add(
        timeseries(
            "Share of customers examined by the last pass",
            [
                q(
                    f"max by (kind) (rfm_rescore_last_examined_customers{{{J}}}) "
                    f"/ scalar(sum({_SEGMENTS}))",
                    "{{kind}}",
                )
            ],
            unit="percentunit",
            description="Due passes look only at customers whose recency score is due to "
            "drop; full passes at everyone.",
        ),
        8,
    )
    lay.add(
        stat(
            "Since last successful pass",
            q(f"time() - max(rfm_rescore_last_success_timestamp_seconds{{{J}}})"),
            unit="s",
            decimals=0,
            description="Alert RfmRescoringOverdue fires above 10 minutes.",
            steps=thresholds((None, "green"), (300, "orange"), (600, "red")),
        ),
        6,
        6,
    )
    lay.add(
        stat(
            "Failed passes, last hour",
            q(or_zero(f'sum(increase(rfm_rescore_passes_total{{{J},result="failed"}}[1h]))')),
            decimals=0,
            steps=thresholds((None, "green"), (1, "red")),
        ),
        6,
        6,
    )
    lay.add(
        timeseries(
            "Passes by result",
            [
                q(
                    f"sum by (kind, result) (increase(rfm_rescore_passes_total{{{J}}}[{RATE}]))",
                    "{{kind}} {{result}}",
                )
            ],
        ),
        6,
        6,
    )
    lay.add(
        timeseries(
            "Score writes by cause",
            [
                q(
                    f"sum by (cause) (rate(rfm_customers_rescored_total{{{J}}}[{RATE}]))",
                    "{{cause}}",
                )
            ],
            unit="ops",
            description="order: after an order event; recency / rescore: by the periodic job.",
        ),
        6,
        6,
    )
    top = {
        "type": "custom",
        "name": "top_segment",
        "label": "Top segment",
        "description": "The segment 'high value' means: high_value (default rules) or "
        "champions (classic rules).",
        "query": "high_value,champions",
        "current": {"selected": True, "text": "high_value", "value": "high_value"},
        "options": [
            {"selected": True, "text": "high_value", "value": "high_value"},
            {"selected": False, "text": "champions", "value": "champions"},
        ],
        "includeAll": False,
        "multi": False,
        "hide": 0,
    }
    return dashboard(
        "rfm-segments",
        "rfm-stream / Segments",
        "Customers per segment, transitions between segments, and the rescoring job.",
        lay,
        variables(top),
    )


# --------------------------------------------------------------------------- output

DASHBOARDS = {"pipeline-health.json": pipeline_health, "segments.json": segments}


def render(build: Callable[[], Json]) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--out", type=Path, default=HERE, help="directory of the JSON files")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = args.out / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run python dashboards/generate.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
