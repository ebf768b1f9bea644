"""Grafana building blocks of the rfm-stream dashboards: targets, panels, layout, variables.

Conventions, so every panel works with any Prometheus that scrapes the workers:

* every panel and query uses the ``${datasource}`` template variable (type ``datasource``);
* every selector carries ``job=~"$job"`` (all jobs that expose ``rfm_build_info`` by default);
* gauges read from Redis (segment sizes, outbox backlog) are reported by every worker, so
  they are combined with ``max``, never ``sum``;
* counters that only exist after their first event (dead letters, Redis errors, failed
  passes, a transition out of a segment) end in ``or on() vector(0)``, so the panel shows a
  zero rather than "No data" on a healthy system.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 39  # Grafana 10.3 - 11.x
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
J = 'job=~"$job"'  # the job matcher every selector carries
RATE = "$__rate_interval"

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
