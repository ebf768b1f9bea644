"""Both segment presets end to end: hand-computed scores and segments in thresholds mode.

Real broker, Redis and ``rfm-stream worker`` processes; the state is read back through the
operator's CLI (``customer``, ``segments``) and the segment-change topic.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import redis

from state.model import iso_utc
from tests.support.harness import outbox_empty, rfm_env, settings_of, wait_until
from tests.support.scoring_helpers import (
    KEYS,
    Event,
    cancel,
    change_chains,
    customer_profiles,
    history,
    ms,
    publish_and_settle,
    purchase,
    refund,
    running_worker,
    segment_sizes,
)

pytestmark = pytest.mark.integration


# The event clock is pinned at day 200 by a first purchase, so every other customer's recency
# is 200 - (last purchase day). Bounds: R 30/60/90/120 days, F 2/4/7/10 orders,
# M 100/400/700/1000 USD. Several customers sit exactly on a bound.
CLOCK_DAY = 200
PRESET_EVENTS: list[Event] = [
    *history("hv", 195, 7, 70_000),  # 5 d, 7 orders, 700.00 (M bound)
    *history("ly", 140, 10, 200_000),  # 60 d (R bound), 10 orders (F bound)
    *history("pl", 160, 2, 15_000),
    *history("pr", 155, 1, 3_000),
    *history("gn", 130, 4, 30_000),
    *history("as", 120, 1, 2_000),
    *history("ar", 100, 7, 100_000),  # 7 orders (F bound), 1000.00 (M bound)
    *history("cl", 85, 12, 30_000),
    *history("dm", 50, 3, 50_000),
    *history("lo", 0, 1, 1_000),
    # rf: 800.00 over 7 orders, then 101.00 refunded: 699.00, just under the M=4 bound
    *history("rf", 190, 7, 80_000),
    refund("rf", "rf-o6", 191, 10_100, "rf-r1"),
    # cx: the latest order is cancelled, so recency falls back to day 170: 30 d (R bound)
    purchase("cx", "cx-a", 150, 10_000),
    purchase("cx", "cx-b", 170, 10_000),
    purchase("cx", "cx-c", 180, 10_000),
    cancel("cx", "cx-c", 181),
]
SENTINEL = [purchase("s0", "s0-o", CLOCK_DAY, 5_000)]

# customer -> (recency_days, r, f, m, orders, spend, last purchase day, default, classic)
PRESET_EXPECTED: dict[str, tuple[int, int, int, int, int, str, int, str, str]] = {
    "s0": (0, 5, 1, 1, 1, "50.00", 200, "new", "new"),
    "hv": (5, 5, 4, 4, 7, "700.00", 195, "high_value", "champions"),
    "ly": (60, 4, 5, 5, 10, "2000.00", 140, "high_value", "loyal"),
    "pl": (40, 4, 2, 2, 2, "150.00", 160, "new", "potential_loyalist"),
    "pr": (45, 4, 1, 1, 1, "30.00", 155, "new", "promising"),
    "gn": (70, 3, 3, 2, 4, "300.00", 130, "general", "need_attention"),
    "as": (80, 3, 1, 1, 1, "20.00", 120, "general", "about_to_sleep"),
    "ar": (100, 2, 4, 5, 7, "1000.00", 100, "at_risk", "at_risk"),
    "cl": (115, 2, 5, 2, 12, "300.00", 85, "dormant", "cannot_lose"),
    "dm": (150, 1, 2, 3, 3, "500.00", 50, "dormant", "hibernating"),
    "lo": (200, 1, 1, 1, 1, "10.00", 0, "lost", "hibernating"),
    "rf": (10, 5, 4, 3, 7, "699.00", 190, "general", "champions"),
    "cx": (30, 5, 2, 2, 2, "200.00", 170, "new", "potential_loyalist"),
}


@pytest.mark.parametrize("preset", ["default", "classic"])
def test_thresholds_mode_hand_computed_segments(
    preset: str, kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        tmp_path,
        RFM_CLOCK="event",
        RFM_SCORING="thresholds",
        RFM_SEGMENTS=preset,
    )
    settings = settings_of(env)
    with running_worker(env, tmp_path / "worker.log") as worker:
        n = publish_and_settle(kafka_bootstrap, settings, redis_url, worker, SENTINEL, 0)
        publish_and_settle(kafka_bootstrap, settings, redis_url, worker, PRESET_EVENTS, n)
        wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)

    column = 7 if preset == "default" else 8
    expected_segment = {cid: exp[column] for cid, exp in PRESET_EXPECTED.items()}
    # the hand-built set exercises most of each preset
    assert len(set(expected_segment.values())) >= (6 if preset == "default" else 10)

    profiles = customer_profiles(env, sorted(PRESET_EXPECTED))
    for cid, (days, r, f, m, orders, spend, last_day, *_) in PRESET_EXPECTED.items():
        got = profiles[cid]
        assert got["customer_id"] == cid
        assert (got["recency_days"], got["r"], got["f"], got["m"]) == (days, r, f, m), cid
        assert (got["orders"], got["spend"], got["currency"]) == (orders, spend, "USD"), cid
        assert got["last_purchase_at"] == iso_utc(ms(last_day)), cid
        assert got["segment"] == expected_segment[cid], cid
        assert got["as_of"] == iso_utc(ms(CLOCK_DAY)), cid

    assert segment_sizes(env) == dict(Counter(expected_segment.values()))

    chains = change_chains(kafka_bootstrap, settings.kafka.changes_topic)
    assert set(chains) == set(PRESET_EXPECTED)
    for cid, chain in chains.items():
        assert chain[-1]["segment"] == expected_segment[cid], (cid, chain)
        assert {c["cause"] for c in chain} == {"order"}, cid
    assert redis.Redis.from_url(redis_url).hgetall(KEYS.stats) == {
        b"applied": str(len(SENTINEL) + len(PRESET_EVENTS)).encode()
    }
