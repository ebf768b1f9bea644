"""F and M over a rolling window (``RFM_WINDOW_DAYS``), through a real broker, worker and
Redis, against the independent oracle (tests/reference): a generated history with refunds,
cancels and late events, published out of time order, for windows of 0, 30 and 365 days,
rescored at several times, among them times at which orders leave the window between two
passes; every customer's window and lifetime values, scores and segment, and its chain of
segment changes read back from the topic."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.reference import Config, fold
from tests.reference.events import Event, parse_event
from tests.reference.records import iso
from tests.support.checks import check_order_path, check_rescored, rescore
from tests.support.harness import (
    Worker,
    accounted,
    outbox_empty,
    produce,
    rfm_env,
    run_cli,
    settings_of,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
PROFILE = ShopProfile(
    customers=1_500, orders=6_000, start_ms=START, end_ms=START + 420 * MS_PER_DAY, seed=1717
)


@pytest.mark.parametrize(
    ("window_days", "scoring"),
    [(0, "thresholds"), (30, "thresholds"), (365, "thresholds"), (30, "quintiles")],
)
def test_windows_equal_the_batch_computation(
    window_days: int,
    scoring: str,
    kafka_bootstrap: str,
    redis_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    env = rfm_env(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        tmp_path,
        RFM_CLOCK="event",
        RFM_WINDOW_DAYS=str(window_days),
        RFM_SCORING=scoring,
    )
    settings = settings_of(env)
    events = list(generate_history(PROFILE))
    config = Config.from_env(env)
    parsed = [parse_event(v, config, START + 500 * MS_PER_DAY) for _, v in events]
    times = [e.occurred_ms for e in parsed if isinstance(e, Event)]
    assert any(b < a for a, b in pairwise(times)), "events should not arrive in time order"
    produce(kafka_bootstrap, settings.kafka.orders_topic, events)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: accounted(redis_url) == len(events), 240, "all events accounted", worker)
        wait_until(lambda: outbox_empty(redis_url), 60, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    assert (config.window_days, config.retention_days) == (
        settings.scoring.window_days,
        settings.scoring.retention_days,
    )
    history = fold([v for _, v in events], config, START + 500 * MS_PER_DAY)
    kinds = {e.kind for e in parsed if isinstance(e, Event)}
    assert kinds == {"purchase", "refund", "cancel"}, kinds
    clock = history.clock_ms

    before = check_order_path(env, redis_url, history)
    before.state.assert_ok("the order path")
    before.chains.assert_ok("the order path")

    # Passes one after the other: between the second and the third, and the third and the
    # fourth, orders leave a 30-day window (and R drops), without any new event.
    previous_changes = before.changes.records
    for as_of in (
        clock - 10 * MS_PER_DAY,  # before the event clock: exact (inside the retention)
        clock + MS_PER_DAY,
        clock + 20 * MS_PER_DAY,
        clock + 45 * MS_PER_DAY,
        clock + 200 * MS_PER_DAY,
    ):
        rescore(env, iso(as_of))
        after = check_rescored(env, redis_url, history, as_of)
        after.state.assert_ok(f"rescored as of {iso(as_of)}")
        after.chains.assert_ok(f"rescored as of {iso(as_of)}")
        assert after.changes.records >= previous_changes
        previous_changes = after.changes.records
    causes = after.changes.causes
    assert causes["rescore"] > 0, causes

    if window_days:
        # A window that starts before the retention horizon cannot be scored exactly. (The
        # horizon is measured by the watermark, the least partition's latest event time,
        # a few days before the event clock here: the margin covers that.)
        early = clock - (settings.scoring.retention_days - window_days + 10) * MS_PER_DAY
        refused = run_cli(env, "rescore", "--as-of", iso(early))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "retention horizon" in refused.stderr
