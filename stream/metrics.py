"""Prometheus metrics of a worker: the one place that names them.

Names start with ``rfm_``, carry their unit, and take only low-cardinality labels (topic,
partition, outcome, reason, segment): never a customer id. Updates are per batch, not per
event, so the hot path pays for a few counter increments per thousand events.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
EVENT_AGE_BUCKETS = (0.1, 0.5, 1, 5, 30, 60, 300, 3600, 21600, 86400, 604800, 2592000)

INPUT_EVENTS = Counter(
    "rfm_input_events_total",
    "Input events by outcome: applied, duplicate, dead_lettered, or redelivered (an offset "
    "applied before, seen again after a restart or rebalance)",
    ["topic", "outcome"],
)
DEAD_LETTERS = Counter(
    "rfm_dead_letters_total", "Input events dead-lettered, by reason", ["topic", "reason"]
)
BATCHES = Counter("rfm_batches_total", "Batches of input events processed", ["topic"])
EVENT_TO_APPLIED = Histogram(
    "rfm_event_to_applied_seconds",
    "From an event's occurred_at to its state update (large for backfills)",
    buckets=EVENT_AGE_BUCKETS,
)
PUBLISH_TO_APPLIED = Histogram(
    "rfm_publish_to_applied_seconds",
    "From the broker timestamp of an input record to its state update",
    buckets=LATENCY_BUCKETS,
)
CONSUMED_TO_APPLIED = Histogram(
    "rfm_consumed_to_applied_seconds",
    "From a batch being handed to the worker to its state update and scoring",
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "rfm_consumer_lag_messages",
    "Records not yet processed: partition high watermark minus next offset to process",
    ["topic", "partition"],
)
INPUT_PARTITIONS = Gauge(
    "rfm_input_partitions",
    "Partitions of the input topic by the broker's metadata (at start and every rebalance)",
    ["topic"],
)
INPUT_PARTITIONS_DIFFER = Gauge(
    "rfm_input_partitions_differ_from_setting",
    "1 when the input topic has another partition count than RFM_PARTITIONS says",
    ["topic"],
)
ASSIGNED_PARTITIONS = Gauge(
    "rfm_assigned_partitions", "Input partitions assigned to this worker", ["topic"]
)
PARTITIONS_RECREATED = Counter(
    "rfm_partitions_recreated_total",
    "Input partitions found shorter than what was applied (topic recreated, broker data lost)",
)
REBALANCES = Counter("rfm_rebalances_total", "Consumer-group rebalances this worker went through")
REDIS_SECONDS = Histogram(
    "rfm_redis_call_seconds",
    "Redis calls of the hot path and the jobs",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
REDIS_ERRORS = Counter(
    "rfm_redis_errors_total", "Failed Redis calls (each retry counts)", ["operation", "error"]
)
RESCORE_PASSES = Counter(
    "rfm_rescore_passes_total", "Rescoring passes by kind and result", ["kind", "result"]
)
RESCORE_SECONDS = Histogram(
    "rfm_rescore_pass_seconds",
    "Duration of a rescoring pass",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
RESCORE_EXAMINED = Gauge(
    "rfm_rescore_last_examined_customers", "Customers examined by the last pass", ["kind"]
)
RESCORE_RESCORED = Gauge(
    "rfm_rescore_last_rescored_customers", "Customers rescored by the last pass", ["kind"]
)
RESCORE_LAST_SUCCESS = Gauge(
    "rfm_rescore_last_success_timestamp_seconds", "When the last pass succeeded", ["kind"]
)
CUSTOMERS_RESCORED = Counter(
    "rfm_customers_rescored_total", "Customer score writes by cause", ["cause"]
)
SCORING_FAILURES = Counter(
    "rfm_scoring_failures_total",
    "Customers whose stored state could not be scored (corrupt, or a bug); they keep their "
    "last scores",
    ["cause"],
)
SEGMENT_CUSTOMERS = Gauge(
    "rfm_segment_customers", "Customers per segment (read from Redis)", ["segment"]
)
SEGMENT_TRANSITIONS = Counter(
    "rfm_segment_transitions_total",
    "Segment changes written, from and to ('none' = no segment)",
    ["from_segment", "to_segment"],
)
OUTBOX_PUBLISHED = Counter(
    "rfm_outbox_published_total", "Records relayed from the outbox to Kafka", ["kind"]
)
OUTBOX_BACKLOG = Gauge("rfm_outbox_backlog_records", "Records waiting in the outbox")
CUSTOMERS_ERASED = Gauge(
    "rfm_customers_erased", "Customers erased so far with rfm-stream forget (read from Redis)"
)
OUTBOX_PUBLISH_SECONDS = Histogram(
    "rfm_outbox_publish_seconds",
    "Publishing one chunk of outbox records until acked",
    buckets=LATENCY_BUCKETS,
)
BUILD = Info("rfm_build", "Version and configuration of this worker")

# The query API (``rfm-stream serve``) is its own process with its own /metrics: its
# registry holds only these, so it never shows a worker's series at zero.
API_REGISTRY = CollectorRegistry()
API_REQUESTS = Counter(
    "rfm_api_requests_total",
    "Query API requests by route template (never a customer id) and HTTP status",
    ["route", "status"],
    registry=API_REGISTRY,
)
API_SECONDS = Histogram(
    "rfm_api_request_seconds",
    "Query API request latency by route template, until the last byte (streams included)",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=API_REGISTRY,
)


def count_outcomes(topic: str, outcomes: Iterable[str]) -> None:
    tally = Tally(outcomes)
    for outcome, n in tally.items():
        if outcome.startswith("dlq:"):
            INPUT_EVENTS.labels(topic, "dead_lettered").inc(n)
            DEAD_LETTERS.labels(topic, outcome[4:]).inc(n)
        else:
            INPUT_EVENTS.labels(topic, outcome).inc(n)


def count_transitions(transitions: Mapping[tuple[str | None, str | None], int]) -> None:
    """``transitions``: (previous, new) segment -> how many customers moved so."""
    for (before, after), n in transitions.items():
        SEGMENT_TRANSITIONS.labels(before or "none", after or "none").inc(n)


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, with one increment per bucket touched.

    prometheus_client has no bulk observe, and one lock round per value per event was 4% of
    the worker's CPU. This adds to the same counters ``observe`` keeps (a value goes to the
    first bucket whose upper bound is >= it), so the exported series are the same.
    """
    if not values:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    for bucket, n in zip(histogram._buckets, counts, strict=True):
        if n:
            bucket.inc(n)
    histogram._sum.inc(sum(values))
