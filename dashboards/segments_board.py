"""The "rfm-stream / Segments" dashboard: customers per segment, transitions between
segments, and the rescoring job."""

from __future__ import annotations

from dashboards.grafana import (
    RATE,
    J,
    Json,
    Layout,
    bargauge,
    dashboard,
    or_zero,
    q,
    quantiles,
    stat,
    table,
    thresholds,
    timeseries,
    variables,
)

TOP = "$top_segment"  # the segment the "top segment" panels follow: a template variable

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
