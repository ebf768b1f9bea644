"""Scoring modes end to end: both segment presets, quintiles, and recency decay over time.

Real broker, Redis and ``rfm-stream worker`` processes; the state is read back through the
operator's CLI (``customer``, ``segments``, ``export``) and the segment-change topic.
Recency decay is driven by ``rescore --as-of`` and by the event clock, never by sleeping.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from state.changes import ScoringContext
from state.keys import Keys
from state.model import MS_PER_DAY, iso_utc, recency_days
from state.scoring import QuintileBoundaries, QuintileScorer
from state.segments import load_segment_rules
from stream.runtime import Runtime
from stream.settings import Settings
from tests.support.harness import (
    Worker,
    accounted,
    outbox_empty,
    produce,
    read_topic,
    rfm_env,
    run_cli,
    settings_of,
    wait_until,
)
from tests.support.oracle import fold

pytestmark = pytest.mark.integration

DAY0 = datetime(2025, 1, 1, tzinfo=UTC)
KEYS = Keys()
Event = tuple[bytes, bytes]


# --------------------------------------------------------------------------- event builders


def ms(day: float) -> int:
    return int((DAY0 + timedelta(days=day)).timestamp() * 1000)


def at(day: float) -> str:
    return (DAY0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def event(**fields: object) -> Event:
    return str(fields["customer_id"]).encode(), orjson.dumps(fields)


def purchase(cid: str, oid: str, day: float, cents: int) -> Event:
    return event(order_id=oid, customer_id=cid, amount=money(cents), occurred_at=at(day))


def refund(cid: str, oid: str, day: float, cents: int, refund_id: str) -> Event:
    return event(
        type="refund",
        order_id=oid,
        customer_id=cid,
        amount=money(cents),
        refund_id=refund_id,
        occurred_at=at(day),
    )


def cancel(cid: str, oid: str, day: float) -> Event:
    return event(type="cancel", order_id=oid, customer_id=cid, occurred_at=at(day))


def history(cid: str, last_day: float, orders: int, total_cents: int) -> list[Event]:
    """``orders`` purchases one day apart ending on ``last_day``, summing to ``total_cents``."""
    each, rest = divmod(total_cents, orders)
    return [
        purchase(cid, f"{cid}-o{i}", last_day - (orders - 1 - i), each + (rest if i == 0 else 0))
        for i in range(orders)
    ]


# --------------------------------------------------------------------------- observations


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[Worker]:
    worker = Worker(env, log).start()
    try:
        yield worker
    finally:
        assert worker.stop() == 0, worker.log_tail()


def settled(redis_url: str, n_events: int) -> bool:
    """Every event applied and every touched customer scored (the dirty set is empty)."""
    dirty = redis.Redis.from_url(redis_url).scard(KEYS.dirty)
    return accounted(redis_url) == n_events and dirty == 0


def publish_and_settle(
    bootstrap: str,
    settings: Settings,
    redis_url: str,
    worker: Worker,
    events: Sequence[Event],
    total_so_far: int,
) -> int:
    produce(bootstrap, settings.orders_topic, events)
    total = total_so_far + len(events)
    wait_until(lambda: settled(redis_url, total), 60, f"{total} events applied and scored", worker)
    return total


def cli(env: dict[str, str], *args: str) -> str:
    done = run_cli(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def customer_profiles(env: dict[str, str], ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``rfm-stream customer ID`` for each id (a few at a time: each is its own process)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda cid: cli(env, "customer", cid), ids))
    return {cid: orjson.loads(out) for cid, out in zip(ids, outputs, strict=True)}


def export(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    rows = [orjson.loads(line) for line in cli(env, "export", "--format", "jsonl").splitlines()]
    by_id = {row["customer_id"]: row for row in rows}
    assert len(by_id) == len(rows), "a customer exported twice"
    return by_id


def segment_sizes(env: dict[str, str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for line in cli(env, "segments").splitlines():
        name, count = line.split()[:2]
        sizes[name] = int(count)
    total = sizes.pop("total")
    assert total == sum(sizes.values())
    return sizes


def change_chains(bootstrap: str, topic: str) -> dict[str, list[dict[str, Any]]]:
    """Segment changes per customer, deduplicated by event id, in sequence order; each chain
    must be unbroken (1, 2, 3 ...) and link previous_segment to the segment before it."""
    by_id: dict[str, dict[str, Any]] = {}
    for record in read_topic(bootstrap, topic):
        change = orjson.loads(record.value)
        assert by_id.setdefault(change["event_id"], change) == change
    chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for change in by_id.values():
        chains[change["customer_id"]].append(change)
    for cid, chain in chains.items():
        chain.sort(key=lambda c: c["sequence"])
        assert [c["sequence"] for c in chain] == list(range(1, len(chain) + 1)), cid
        previous = None
        for change in chain:
            assert change["previous_segment"] == previous, (cid, chain)
            previous = change["segment"]
    return dict(chains)


def passes_as_of(worker: Worker, as_of_ms: int) -> int:
    """How many periodic rescoring passes the worker has logged as of this instant."""
    return sum(
        1
        for line in worker.log_tail(400).splitlines()
        if "rescoring pass" in line and f"as of {as_of_ms}:" in line
    )


def raw_state(redis_url: str, cid: str) -> tuple[int, str | None, float | None]:
    """(version, scores field, due time) straight from Redis: the version moves on every
    write, so an unchanged version proves a customer was not rewritten."""
    r = redis.Redis.from_url(redis_url)
    version, scores = r.hmget(KEYS.customer(cid), ["v", "s"])
    assert version is not None, cid
    return int(version), scores.decode() if scores else None, r.zscore(KEYS.due, cid)


def profile(redis_url: str, cid: str) -> dict[str, int]:
    _, scores, _ = raw_state(redis_url, cid)
    assert scores, cid
    r, f, m, days, as_of = (int(x) for x in scores.split(","))
    return {"r": r, "f": f, "m": m, "recency_days": days, "as_of": as_of}


# --------------------------------------------------------------------------- 1. presets

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

    chains = change_chains(kafka_bootstrap, settings.changes_topic)
    assert set(chains) == set(PRESET_EXPECTED)
    for cid, chain in chains.items():
        assert chain[-1]["segment"] == expected_segment[cid], (cid, chain)
        assert {c["cause"] for c in chain} == {"order"}, cid
    assert redis.Redis.from_url(redis_url).hgetall(KEYS.stats) == {
        b"applied": str(len(SENTINEL) + len(PRESET_EVENTS)).encode()
    }


# --------------------------------------------------------------------------- 2. quintiles

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

    # the independent expectation: fold the same events, quintiles over the scorable ones
    rules = Runtime.build(settings).pipeline.rules
    oracle = fold((v for _, v in QUINTILE_EVENTS), rules, ms(400))
    population = {cid: c for cid, c in oracle.customers.items() if c.count > 0}
    assert set(population) == {cid for cid, *_ in QUINTILE_POPULATION}
    ids = sorted(population)
    boundaries = QuintileBoundaries.from_population(
        [recency_days(population[c].last or 0, QUINTILE_AS_OF) for c in ids],
        [population[c].count for c in ids],
        [population[c].spend for c in ids],
    )
    stored = redis.Redis.from_url(redis_url).get(KEYS.quintiles)
    assert stored is not None and QuintileBoundaries.from_json(stored) == boundaries
    ctx = ScoringContext(QuintileScorer(boundaries), load_segment_rules("default"), "USD", 2)
    expected = oracle.expected(ctx, QUINTILE_AS_OF)

    assert set(after) == set(population) | {"qx"}
    for cid in ids:
        _, _, orders, _, r, f, m, days, segment = expected[cid]
        got = after[cid]
        assert (got["recency_days"], got["r"], got["f"], got["m"]) == (days, r, f, m), cid
        assert (got["orders"], got["segment"]) == (orders, segment), cid
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
    assert segment_sizes(env) == dict(Counter(e[-1] for e in expected.values() if e[-1]))
    chains = change_chains(kafka_bootstrap, settings.changes_topic)
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


# --------------------------------------------------------------------------- 3a. rescore --as-of


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

    chains = change_chains(kafka_bootstrap, settings.changes_topic)
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


# --------------------------------------------------------------------------- 3b. periodic job


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
        assert r.zscore(KEYS.due, "a") == ms(31) and r.zscore(KEYS.due, "b") == ms(31)
        assert r.zscore(KEYS.due, "l") is None
        assert {m.decode() for m in r.zrange(KEYS.due, 0, -1)} == {"a", "b"}
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
        assert r.zscore(KEYS.due, cid) == ms(121)  # R2 until 120 days
    assert r.zscore(KEYS.due, "z") == ms(131)
    assert r.zscore(KEYS.due, "l") is None

    chains = change_chains(kafka_bootstrap, settings.changes_topic)
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


# --------------------------------------------------------------------------- 4. incremental


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
        assert {m.decode(): int(s) for m, s in r.zrange(KEYS.due, 0, -1, withscores=True)} == {
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
    chain = change_chains(kafka_bootstrap, settings.changes_topic)["due"]
    assert [(c["segment"], c["cause"]) for c in chain] == [("new", "order"), ("general", "recency")]
