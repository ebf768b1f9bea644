"""Recency decay over time: ``rescore --as-of``, the periodic due pass, and its scope.

Real broker, Redis and ``rfm-stream worker`` processes; the state is read back through the
operator's CLI, Redis and the segment-change topic. Recency decay is driven by
``rescore --as-of`` and by the event clock, never by sleeping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from state.model import MS_PER_DAY, iso_utc
from tests.support.harness import outbox_empty, rfm_env, run_cli, settings_of, wait_until
from tests.support.scoring_helpers import (
    KEYS,
    change_chains,
    export,
    history,
    ms,
    passes_as_of,
    profile,
    publish_and_settle,
    purchase,
    raw_state,
    running_worker,
    segment_sizes,
)
from tests.support.state_reads import due_times

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- rescore --as-of


def test_rescore_as_of_decays_recency(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Bought on day 0; a rescore as of day 45 moves R 5 -> 4, in classic a new segment."""
    env = rfm_env(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        tmp_path,
        RFM_CLOCK="event",
        RFM_WINDOW_DAYS="0",  # recency alone decides who is due (tests/integration/test_windows.py)
        RFM_SCORING="thresholds",
        RFM_SEGMENTS="classic",
    )
    settings = settings_of(env)
    events = [
        purchase("n1", "n1-o", 1 / 24, 5_000),  # R5 F1: new -> promising
        *history("c1", 2 / 24, 8, 80_000),  # R5 F4: champions -> loyal
        *history("p1", 3 / 24, 2, 15_000),  # R5 F2: potential_loyalist either way
        purchase("k1", "k1-o", 20, 5_000),  # 25 days at day 45: stays new
    ]
    as_of = ms(45.5)
    with running_worker(env, tmp_path / "worker.log") as worker:
        publish_and_settle(kafka_bootstrap, settings, redis_url, worker, events, 0)
        before = export(env)
        assert {c: (p["r"], p["segment"]) for c, p in before.items()} == {
            "n1": (5, "new"),
            "c1": (5, "champions"),
            "p1": (5, "potential_loyalist"),
            "k1": (5, "new"),
        }
        # while the worker runs, as an operator would
        done = run_cli(env, "rescore", "--as-of", iso_utc(as_of))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(
            f"rescored 4 of 4 customers as of {iso_utc(as_of)}: 2 segment changes;"
        ), done.stdout
        after = export(env)
        wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)

    assert {
        c: (p["recency_days"], p["r"], p["f"], p["m"], p["segment"], p["as_of"])
        for c, p in after.items()
    } == {
        "n1": (45, 4, 1, 1, "promising", iso_utc(as_of)),
        "c1": (45, 4, 4, 4, "loyal", iso_utc(as_of)),
        "p1": (45, 4, 2, 2, "potential_loyalist", iso_utc(as_of)),
        "k1": (25, 5, 1, 1, "new", iso_utc(as_of)),
    }
    assert segment_sizes(env) == {"promising": 1, "loyal": 1, "potential_loyalist": 1, "new": 1}
    # the next drop is indexed for the periodic job: R4 until 60 days, R5 until 30 days
    assert raw_state(redis_url, "n1")[2] == ms(1 / 24) + 61 * MS_PER_DAY
    assert raw_state(redis_url, "k1")[2] == ms(20) + 31 * MS_PER_DAY

    chains = change_chains(kafka_bootstrap, settings.kafka.changes_topic)
    for cid, previous, segment in (("n1", "new", "promising"), ("c1", "champions", "loyal")):
        last = chains[cid][-1]
        assert (last["previous_segment"], last["segment"], last["cause"]) == (
            previous,
            segment,
            "rescore",
        ), cid
        assert (last["r"], last["recency_days"], last["as_of"]) == (4, 45, iso_utc(as_of))
        assert all(c["cause"] == "order" for c in chains[cid][:-1]), cid
    for cid in ("p1", "k1"):
        assert all(c["cause"] == "order" for c in chains[cid]), cid


# --------------------------------------------------------------------------- periodic job


def test_periodic_due_pass_follows_the_event_clock(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Old purchases, then a purchase 100 days later moves the event clock; the periodic due
    pass (every second) rescores the customers whose R dropped, cause "recency"."""
    env = rfm_env(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        tmp_path,
        RFM_CLOCK="event",
        RFM_WINDOW_DAYS="0",  # recency alone decides who is due (tests/integration/test_windows.py)
        RFM_SCORING="thresholds",
        RFM_SEGMENTS="classic",
        RFM_RESCORE_INTERVAL="1",
    )
    settings = settings_of(env)
    r = redis.Redis.from_url(redis_url)
    with running_worker(env, tmp_path / "worker.log") as worker:
        n = publish_and_settle(
            kafka_bootstrap,
            settings,
            redis_url,
            worker,
            [
                purchase("a", "a-o", 0, 5_000),  # R5 F1: new
                *history("b", 0, 4, 50_000),  # R5 F3: potential_loyalist
            ],
            0,
        )
        # clock at day 0; "l" bought 300 days earlier: R is 1 already and can drop no further
        n = publish_and_settle(
            kafka_bootstrap, settings, redis_url, worker, [purchase("l", "l-o", -300, 5_000)], n
        )
        assert profile(redis_url, "l")["r"] == 1
        assert due_times(r, KEYS) == {"a": ms(31), "b": ms(31)}  # "l" is never due
        l_before = raw_state(redis_url, "l")

        n = publish_and_settle(
            kafka_bootstrap, settings, redis_url, worker, [purchase("z", "z-o", 100, 5_000)], n
        )
        wait_until(
            lambda: profile(redis_url, "a")["r"] == 2 and profile(redis_url, "b")["r"] == 2,
            30,
            "the periodic due pass to rescore a and b as of day 100",
            worker,
        )
        wait_until(lambda: outbox_empty(redis_url), 30, "outbox relayed", worker)
        # an R=1 customer is never due, so passes as of day 100 left it alone
        assert raw_state(redis_url, "l") == l_before
        assert profile(redis_url, "l")["as_of"] == ms(0)

    for cid, f in (("a", 1), ("b", 3)):
        assert profile(redis_url, cid) == {
            "r": 2,
            "f": f,
            "m": 1 if cid == "a" else 3,
            "recency_days": 100,
            "as_of": ms(100),
        }
    # R2 until 120 days; "l" is never due
    assert due_times(r, KEYS) == {"a": ms(121), "b": ms(121), "z": ms(131)}

    chains = change_chains(kafka_bootstrap, settings.kafka.changes_topic)
    expected = {"a": ("new", "hibernating"), "b": ("potential_loyalist", "at_risk")}
    for cid, (previous, segment) in expected.items():
        last = chains[cid][-1]
        assert (last["previous_segment"], last["segment"], last["cause"]) == (
            previous,
            segment,
            "recency",
        ), (cid, chains[cid])
        assert (last["r"], last["recency_days"], last["as_of"]) == (2, 100, iso_utc(ms(100)))
        assert [c["cause"] for c in chains[cid]].count("recency") == 1, chains[cid]
    assert all(c["cause"] == "order" for c in chains["l"] + chains["z"])


# --------------------------------------------------------------------------- incremental


def test_due_pass_rewrites_only_due_customers(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """After a due pass, customers whose R cannot change yet keep their as_of and version."""
    env = rfm_env(
        kafka_bootstrap,
        redis_url,
        topic_prefix,
        tmp_path,
        RFM_CLOCK="event",
        RFM_WINDOW_DAYS="0",  # recency alone decides who is due (tests/integration/test_windows.py)
        RFM_SCORING="thresholds",
        RFM_SEGMENTS="default",
        RFM_RESCORE_INTERVAL="1",
    )
    settings = settings_of(env)
    with running_worker(env, tmp_path / "worker.log") as worker:
        # clock to day 50 first, then customers scored as of day 50
        n = publish_and_settle(
            kafka_bootstrap,
            settings,
            redis_url,
            worker,
            [purchase("anchor", "anchor-o", 50, 5_000)],
            0,
        )
        n = publish_and_settle(
            kafka_bootstrap,
            settings,
            redis_url,
            worker,
            [
                purchase("due", "due-o", 10, 5_000),  # 40 d: R4 until day 70, due at day 71
                purchase("later", "later-o", 45, 5_000),  # 5 d: R5 until day 75, due at day 76
                purchase("gone", "gone-o", -200, 5_000),  # R1: never due
            ],
            n,
        )
        r = redis.Redis.from_url(redis_url)
        assert due_times(r, KEYS) == {
            "anchor": ms(81),
            "due": ms(71),
            "later": ms(76),
        }
        snapshot = {cid: raw_state(redis_url, cid) for cid in ("due", "later", "gone", "anchor")}
        assert all(profile(redis_url, c)["as_of"] == ms(50) for c in snapshot)

        # the clock moves to day 71, the very instant "due" drops to R3: only it is due
        publish_and_settle(
            kafka_bootstrap,
            settings,
            redis_url,
            worker,
            [purchase("mover", "mover-o", 71, 5_000)],
            n,
        )
        wait_until(
            lambda: profile(redis_url, "due")["as_of"] == ms(71),
            30,
            "the periodic due pass to rescore 'due' as of day 71",
            worker,
        )
        # let a few more passes run as of day 71: they must not touch anyone else either
        first_pass_done = raw_state(redis_url, "due")
        wait_until(
            lambda: passes_as_of(worker, ms(71)) >= 3,
            15,
            "three periodic passes as of day 71",
            worker,
        )
        assert raw_state(redis_url, "due") == first_pass_done

    assert profile(redis_url, "due") == {
        "r": 3,
        "f": 1,
        "m": 1,
        "recency_days": 61,
        "as_of": ms(71),
    }
    assert raw_state(redis_url, "due")[2] == ms(10) + 91 * MS_PER_DAY
    for cid in ("later", "gone", "anchor"):
        assert raw_state(redis_url, cid) == snapshot[cid], cid
        assert profile(redis_url, cid)["as_of"] == ms(50), cid
    assert profile(redis_url, "later")["recency_days"] == 5  # as of day 50, not recomputed
    chain = change_chains(kafka_bootstrap, settings.kafka.changes_topic)["due"]
    assert [(c["segment"], c["cause"]) for c in chain] == [("new", "order"), ("general", "recency")]
