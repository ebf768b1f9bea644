"""Quintile scoring end to end: a full ``rescore`` matches quintiles of the population.

Real broker, Redis and ``rfm-stream worker`` processes; the state is read back through the
operator's CLI (``export``, ``segments``) and the segment-change topic, and compared with
an independent fold of the same events.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from state.model import iso_utc
from tests.reference import Config, expected, fold
from tests.support.harness import outbox_empty, rfm_env, run_cli, settings_of, wait_until
from tests.support.scoring_helpers import (
    Event,
    cancel,
    change_chains,
    export,
    history,
    ms,
    publish_and_settle,
    purchase,
    running_worker,
    segment_sizes,
)

pytestmark = pytest.mark.integration


# (customer, last purchase day, orders, total cents): small spends and few orders, so the
# thresholds would put nearly everyone at F/M 1-2, while quintiles spread them over 1..5.
# Many ties on purpose: equal values must get equal scores.
QUINTILE_POPULATION: list[tuple[str, int, int, int]] = [
    ("q01", 100, 1, 1_000),
    ("q02", 100, 1, 1_000),
    ("q03", 100, 2, 2_000),
    ("q04", 99, 1, 1_500),
    ("q05", 99, 3, 2_000),
    ("q06", 98, 1, 2_500),
    ("q07", 95, 2, 3_000),
    ("q08", 95, 2, 3_000),
    ("q09", 95, 4, 3_000),
    ("q10", 90, 1, 4_000),
    ("q11", 90, 5, 4_500),
    ("q12", 80, 1, 500),
    ("q13", 80, 2, 5_000),
    ("q14", 70, 3, 5_000),
    ("q15", 70, 3, 6_000),
    ("q16", 60, 6, 7_000),
    ("q17", 50, 1, 7_000),
    ("q18", 40, 2, 8_000),
    ("q19", 40, 2, 8_000),
    ("q20", 30, 6, 9_500),
]
QUINTILE_EVENTS: list[Event] = [
    ev for cid, last, n, cents in QUINTILE_POPULATION for ev in history(cid, last, n, cents)
]
# qx: every order cancelled, so not scorable and not part of the population
QUINTILE_EVENTS += [purchase("qx", "qx-o", 90, 90_000), cancel("qx", "qx-o", 91)]
QUINTILE_AS_OF = ms(101.5)  # mid-day: recency is whole days, floored


def test_quintiles_rescore_matches_population_quintiles(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        tmp_path,
        RFM_CLOCK="event",
        RFM_SCORING="quintiles",
        RFM_SEGMENTS="default",
    )
    settings = settings_of(env)
    with running_worker(env, tmp_path / "worker.log") as worker:
        publish_and_settle(kafka_bootstrap, settings, redis_url, worker, QUINTILE_EVENTS, 0)
        wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)
    before = export(env)  # scored on the hot path (thresholds until a first full pass)

    done = run_cli(env, "rescore", "--as-of", iso_utc(QUINTILE_AS_OF))
    assert done.returncode == 0, done.stderr
    after = export(env)

    # the independent expectation (tests/reference): fold the same events, quintiles over
    # the scorable ones, from the same settings the worker got
    config = Config.from_env(env)
    oracle = fold((v for _, v in QUINTILE_EVENTS), config, ms(400))
    population = {cid for cid, c in oracle.customers.items() if c.live_orders()}
    assert population == {cid for cid, *_ in QUINTILE_POPULATION}
    ids = sorted(population)
    profiles = expected(oracle, config, QUINTILE_AS_OF)

    assert set(after) == population | {"qx"}
    for cid in ids:
        want, got = profiles[cid], after[cid]
        assert (got["recency_days"], got["r"], got["f"], got["m"]) == (
            want.recency_days,
            want.r,
            want.f,
            want.m,
        ), cid
        assert (got["orders"], got["segment"]) == (want.orders, want.segment), cid
        assert got["as_of"] == iso_utc(QUINTILE_AS_OF), cid
    assert (after["qx"]["orders"], after["qx"]["r"], after["qx"]["segment"]) == (0, None, None)

    # equal values got equal scores, and the scores really are spread by rank
    for value, score in (("recency_days", "r"), ("orders", "f"), ("spend", "m")):
        seen: dict[Any, set[int]] = defaultdict(set)
        for cid in ids:
            seen[after[cid][value]].add(after[cid][score])
        assert all(len(scores) == 1 for scores in seen.values()), (value, dict(seen))
        assert len({after[cid][score] for cid in ids}) >= 3, score
    assert any(after[c]["m"] != before[c]["m"] for c in ids), "quintiles equal thresholds?"

    # every segment the rescore moved was published with cause "rescore"
    moved = {c for c in ids if after[c]["segment"] != before[c]["segment"]}
    assert moved
    assert done.stdout.strip() == (
        f"rescored {len(after)} of {len(after)} customers as of {iso_utc(QUINTILE_AS_OF)}: "
        f"{len(moved)} segment changes; {len(moved)} records published"
    )
    assert segment_sizes(env) == dict(Counter(p.segment for p in profiles.values() if p.segment))
    chains = change_chains(kafka_bootstrap, settings.kafka.changes_topic)
    for cid in ids:
        last = chains[cid][-1]
        assert last["segment"] == after[cid]["segment"], cid
        if cid in moved:
            assert last["cause"] == "rescore", cid
            assert last["previous_segment"] == before[cid]["segment"], cid
            assert (last["r"], last["f"], last["m"]) == tuple(after[cid][k] for k in "rfm")
            assert last["as_of"] == iso_utc(QUINTILE_AS_OF), cid
        else:
            assert all(c["cause"] == "order" for c in chains[cid]), cid
