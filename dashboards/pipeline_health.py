"""The "rfm-stream / Pipeline health" dashboard: throughput, lag, latency, dead letters,
Redis, workers, the outbox and the query API."""

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

    lay.row("Query API")
    lay.add(
        timeseries(
            "Query API requests by route and status",
            [
                q(
                    or_zero(
                        f"sum by (route, status) (rate(rfm_api_requests_total{{{J}}}[{RATE}]))"
                    ),
                    "{{route}} {{status}}",
                )
            ],
            unit="reqps",
            stack=True,
            description="rfm-stream serve, scraped on its own /metrics (RFM_API_PORT): "
            "requests by route template and HTTP status (401: bad tokens, 5xx: see its log). "
            "Zero when no API is scraped.",
        ),
        12,
    )
    lay.add(
        timeseries(
            "Query API latency by route",
            [
                q(
                    or_zero(
                        f"histogram_quantile({p}, sum by (le, route) "
                        f"(rate(rfm_api_request_seconds_bucket{{{J}}}[{RATE}])))"
                    ),
                    f"p{round(p * 100)} {{{{route}}}}",
                )
                for p in (0.5, 0.99)
            ],
            unit="s",
            description="Until the last byte; a streamed segment counts its whole walk.",
        ),
        12,
    )
    return dashboard(
        "rfm-pipeline-health",
        "rfm-stream / Pipeline health",
        "Throughput, lag, latency, dead letters, Redis, workers and the outbox.",
        lay,
        variables(),
    )
