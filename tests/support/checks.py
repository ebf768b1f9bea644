"""The end-to-end verdict against the independent oracle (tests/reference), in two steps.

1. **The order path, before any rescoring pass** (``check_order_path``): every customer
   with a live order has been scored, and each customer's stored values equal the oracle's
   at that customer's own stored ``as_of`` (with thresholds scoring, a customer's scores
   depend only on its orders and the as_of); the chain of its segment changes, in topic
   order, ends in its stored segment. Nothing has repaired the state yet.
2. **After ``rfm-stream rescore --as-of T``** (``check_rescored``): every customer equals
   the oracle at T, segment sizes agree, and the chains end in the rescored segments.

Segment changes are checked in TOPIC order (``read_changes``): each customer's records are
on one partition, which a consumer reads in offset order. Deduplicated by ``event_id``
keeping the first occurrence (what a consumer that deduplicates keeps), the sequence
numbers must be 1, 2, ... n with no gap and never going back, each ``previous_segment``
must be the segment before it, n must be the change count the store holds, and the last
segment the stored one (``check_chains``).

Figures are per customer and per event id, never totals that could cancel out:
customers with fewer orders or less spend than the oracle (lost), with more (doubled), or
otherwise different (wrong); changes a chain misses (lost), an event id seen again with
other content or two changes numbered alike (doubled), and identical repeats (repeats,
harmless by the README's contract).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson
import redis
from aiokafka.structs import ConsumerRecord

from tests.reference import MS_PER_DAY, Config, Expected, History, expected, fold
from tests.reference.records import iso
from tests.support.harness import read_topic, run_cli
from tests.support.state_reads import change_counts
from tests.support.stored import (
    Stored,
    Values,
    expected_values,
    segment_sizes,
    stored_profiles,
)

Change = dict[str, Any]


# ------------------------------------------------------------------------ the change topic


@dataclass
class Changes:
    """The change topic as a consumer that deduplicates by ``event_id`` sees it."""

    by_customer: dict[str, list[Change]] = field(default_factory=dict)  # topic order
    records: int = 0
    repeats: int = 0  # identical records again (same event_id, same bytes)
    # An event id seen again with other content: (first, later).
    conflicting: list[tuple[Change, Change]] = field(default_factory=list)
    split: list[str] = field(default_factory=list)  # customers on more than one partition

    @property
    def causes(self) -> Counter[str]:
        return Counter(c["cause"] for chain in self.by_customer.values() for c in chain)


def collect_changes(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Changes:
    """``records`` as ``read_topic`` returns them: each partition in offset order."""
    out = Changes(records=len(records))
    first: dict[str, tuple[bytes, Change]] = {}
    chains: dict[str, list[Change]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in records:
        change: Change = orjson.loads(record.value)
        cid = change["customer_id"]
        assert record.key == cid.encode(), ("record key is not the customer id", record)
        partitions[cid].add(record.partition)
        seen = first.get(change["event_id"])
        if seen is None:
            first[change["event_id"]] = (record.value, change)
            chains[cid].append(change)
        elif seen[0] == record.value:
            out.repeats += 1
        else:
            out.conflicting.append((seen[1], change))
    out.by_customer = dict(chains)
    out.split = sorted(cid for cid, ps in partitions.items() if len(ps) > 1)
    return out


def read_changes(bootstrap: str, topic: str) -> Changes:
    return collect_changes(read_topic(bootstrap, topic))


@dataclass
class ChainReport:
    customers: int = 0
    lost: list[tuple[str, int]] = field(default_factory=list)  # (customer, sequence) missing
    doubled: list[Any] = field(default_factory=list)  # conflicting ids; numbers given twice
    out_of_order: list[tuple[str, list[int]]] = field(default_factory=list)  # topic order
    broken: list[tuple[str, Change, Any]] = field(default_factory=list)  # bad link
    wrong_end: list[tuple[str, Change | None, str | None]] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    repeats: int = 0
    superseded: int = 0  # renumbered changes after Redis lost writes (allowed there only)
    recomputed: int = 0  # an id again with other scores after lost writes (allowed there only)

    def problems(self) -> dict[str, Any]:
        found = {
            "lost changes": self.lost,
            "doubled changes": self.doubled,
            "customers out of order": self.out_of_order,
            "broken links": self.broken,
            "chains not ending in the stored segment": self.wrong_end,
            "customers on several partitions": self.split,
        }
        return {what: items for what, items in found.items() if items}

    def assert_ok(self, when: str) -> None:
        problems = self.problems()
        assert not problems, f"{when}: " + "; ".join(
            f"{len(items)} {what}, e.g. {items[:3]}" for what, items in problems.items()
        )


def check_chains(
    changes: Changes,
    stored: Mapping[str, tuple[str | None, int]],
    *,
    superseded_allowed: bool = False,
) -> ChainReport:
    """Every customer's chain in topic order against ``stored``: customer -> (segment,
    change count) as the store holds them.

    ``superseded_allowed`` (Redis lost acknowledged writes): changes published from the
    lost state are numbered again from the state Redis came back with, so a chain may step
    back to a number it has used, once that step links to the change numbered just below
    it, and an id may come again with other scores (as_of differs) for the same step. The
    numbers must still leave no gap, and the customer's LATEST record in topic order must
    carry the stored change count and segment: what a consumer keeping the latest event
    per customer holds is true."""
    report = ChainReport(customers=len(stored), split=list(changes.split))
    report.repeats = changes.repeats
    for first, later in changes.conflicting:
        same_step = all(
            first[k] == later[k] for k in ("customer_id", "sequence", "previous_segment", "segment")
        )
        if superseded_allowed and same_step:
            report.recomputed += 1
        else:
            report.doubled.append(("same event_id, other content", first, later))
    strangers = sorted(set(changes.by_customer) - set(stored))
    report.wrong_end.extend((cid, changes.by_customer[cid][-1], None) for cid in strangers)
    for cid, (segment, count) in stored.items():
        chain = changes.by_customer.get(cid, [])
        if superseded_allowed:
            _check_superseded(report, cid, chain, segment, count)
        else:
            _check_strict(report, cid, chain, segment, count)
    return report


def _check_strict(
    report: ChainReport, cid: str, chain: list[Change], segment: str | None, count: int
) -> None:
    numbers = [c["sequence"] for c in chain]
    if any(b <= a for a, b in pairwise(numbers)):
        report.out_of_order.append((cid, numbers))
    given = Counter(numbers)
    report.doubled.extend(
        ("two changes numbered alike", cid, n) for n, times in given.items() if times > 1
    )
    top = max([count, *numbers])
    report.lost.extend((cid, n) for n in range(1, top + 1) if n not in given)
    if top > count:  # numbers the store never gave
        beyond = range(count + 1, top + 1)
        report.doubled.extend(("beyond the stored count", cid, n) for n in beyond)
    previous = None
    for change in chain:
        if change["previous_segment"] != previous:
            report.broken.append((cid, change, previous))
        previous = change["segment"]
    last = chain[-1] if chain else None
    if previous != segment:
        report.wrong_end.append((cid, last, segment))


def _check_superseded(
    report: ChainReport, cid: str, chain: list[Change], segment: str | None, count: int
) -> None:
    segments_at: dict[int, set[str | None]] = defaultdict(set)  # sequence -> segments seen
    segments_at[0].add(None)
    before: Change | None = None
    for change in chain:
        n = change["sequence"]
        if before is not None and n == before["sequence"] + 1:
            if change["previous_segment"] != before["segment"]:
                report.broken.append((cid, change, before["segment"]))
        elif before is None or n <= before["sequence"]:
            # the first change, or numbering again from an older state: it must link to a
            # change published with the number below it
            if change["previous_segment"] not in segments_at[n - 1]:
                report.broken.append((cid, change, sorted(map(str, segments_at[n - 1]))))
            if before is not None:
                report.superseded += 1
        else:
            report.out_of_order.append((cid, [c["sequence"] for c in chain]))
        segments_at[n].add(change["segment"])
        before = change
    given = {c["sequence"] for c in chain}
    report.lost.extend((cid, n) for n in range(1, count + 1) if n not in given)
    last_number = before["sequence"] if before else 0
    last_segment = before["segment"] if before else None
    if (last_number, last_segment) != (count, segment):
        report.wrong_end.append((cid, before, segment))


# ------------------------------------------------------------------------ customer state


@dataclass
class StateReport:
    customers: int = 0
    lost: list[str] = field(default_factory=list)  # fewer orders or less spend, or missing
    doubled: list[str] = field(default_factory=list)  # more orders or more spend, or unknown
    wrong: list[tuple[str, Values | None, Values | None]] = field(default_factory=list)
    unscored: list[str] = field(default_factory=list)  # live orders, never scored
    # RFM_CLOCK=event: scored as of a time before one of its purchases, so not by the
    # scoring that followed that purchase (as_of, latest purchase)
    stale: list[tuple[str, int, int]] = field(default_factory=list)
    not_at: list[tuple[str, int | None]] = field(default_factory=list)  # as_of is not T

    def problems(self) -> dict[str, Any]:
        found = {
            "customers lost orders or spend": self.lost,
            "customers doubled orders or spend": self.doubled,
            "customers differ from the oracle (expected, stored)": self.wrong,
            "customers with live orders never scored": self.unscored,
            "customers scored before one of their purchases (as_of, purchase)": self.stale,
            "customers not scored as of the pass": self.not_at,
        }
        return {what: items for what, items in found.items() if items}

    def assert_ok(self, when: str) -> None:
        problems = self.problems()
        assert not problems, f"{when}: " + "; ".join(
            f"{len(items)} {what}, e.g. {items[:3]}" for what, items in problems.items()
        )


def compare_state(
    stored: Mapping[str, Stored], history: History, config: Config, as_of_ms: int | None
) -> StateReport:
    """Stored profiles against the oracle: at ``as_of_ms``, or (None) at each customer's
    own stored ``as_of``. Scores are compared only where they are a function of the
    customer alone (thresholds scoring, or one as_of for everyone).

    At its own as_of, with RFM_CLOCK=event, a customer must also have been scored after its
    latest purchase was applied: the event clock the order path scores at is never earlier
    than any event applied, so an as_of before one of the customer's purchases means its
    scores come from before that purchase (whatever their values)."""
    report = StateReport(customers=len(history.customers))
    groups: dict[int | None, list[str]] = defaultdict(list)
    for cid in history.customers:
        if cid not in stored:
            report.lost.append(cid)
            continue
        own = stored[cid].as_of_ms
        groups[own if as_of_ms is None else as_of_ms].append(cid)
        if as_of_ms is not None and own != as_of_ms and history.customers[cid].live_orders():
            report.not_at.append((cid, own))
    report.doubled.extend(sorted(set(stored) - set(history.customers)))
    scores_comparable = as_of_ms is not None or config.scoring == "thresholds"
    stale_possible = as_of_ms is None and config.clock == "event"
    for when, ids in groups.items():
        part = History(customers={cid: history.customers[cid] for cid in ids})
        predicted = expected(part, config, history.clock_ms if when is None else when)
        for cid in ids:
            latest = max(o.occurred_ms for o in history.customers[cid].orders.values())
            _compare_one(report, cid, predicted[cid], stored[cid], when, scores_comparable)
            if when is not None and stale_possible and when < latest:
                report.stale.append((cid, when, latest))
    return report


def _compare_one(
    report: StateReport, cid: str, exp: Expected, got: Stored, when: int | None, scores: bool
) -> None:
    # Lifetime values: an order lost or doubled shows there whatever the window.
    lifetime = (got.lifetime_orders, got.lifetime_spend_minor)
    if lifetime[0] < exp.lifetime_orders or lifetime[1] < exp.lifetime_spend_minor:
        report.lost.append(cid)
    if lifetime[0] > exp.lifetime_orders or lifetime[1] > exp.lifetime_spend_minor:
        report.doubled.append(cid)
    if when is None:  # never scored
        if exp.lifetime_orders:
            report.unscored.append(cid)
        return
    want, have = expected_values(exp), got.values()
    if not scores:
        want, have = want[:6], have[:6]
    if want != have:
        report.wrong.append((cid, want, have))


# ------------------------------------------------------------------------ the two steps


@dataclass
class Step:
    state: StateReport
    chains: ChainReport
    changes: Changes
    stored: dict[str, Stored]


def _stored_chain_ends(
    redis_url: str, prefix: str, stored: Mapping[str, Stored]
) -> dict[str, tuple[str | None, int]]:
    counts = change_counts(redis.Redis.from_url(redis_url), sorted(stored), prefix)
    return {cid: (s.segment, counts[cid]) for cid, s in stored.items()}


def check_order_path(
    env: Mapping[str, str],
    redis_url: str,
    history: History,
    *,
    superseded_allowed: bool = False,
) -> Step:
    """Step 1, before any rescoring pass: what the order path (and the scenario's own
    passes) left. Reports only; ``Step.state.assert_ok`` / ``Step.chains.assert_ok``."""
    config = Config.from_env(env)
    stored = stored_profiles(env)
    changes = read_changes(env["RFM_KAFKA_BOOTSTRAP"], env["RFM_CHANGES_TOPIC"])
    state = compare_state(stored, history, config, None)
    ends = _stored_chain_ends(redis_url, env.get("RFM_REDIS_PREFIX", "rfm"), stored)
    chains = check_chains(changes, ends, superseded_allowed=superseded_allowed)
    return Step(state, chains, changes, stored)


def rescore(env: Mapping[str, str], as_of_iso: str) -> str:
    done = run_cli(env, "rescore", "--as-of", as_of_iso)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def check_rescored(
    env: Mapping[str, str],
    redis_url: str,
    history: History,
    as_of_ms: int,
    *,
    superseded_allowed: bool = False,
) -> Step:
    """Step 2, after ``rfm-stream rescore --as-of`` ``as_of_ms``: everyone equals the oracle
    at that time; segment sizes agree with the profiles; chains end in the new segments."""
    config = Config.from_env(env)
    stored = stored_profiles(env)
    state = compare_state(stored, history, config, as_of_ms)
    changes = read_changes(env["RFM_KAFKA_BOOTSTRAP"], env["RFM_CHANGES_TOPIC"])
    ends = _stored_chain_ends(redis_url, env.get("RFM_REDIS_PREFIX", "rfm"), stored)
    chains = check_chains(changes, ends, superseded_allowed=superseded_allowed)
    held = Counter(s.segment for s in stored.values() if s.segment)
    sizes = segment_sizes(env)
    assert sizes == dict(held), f"rfm-stream segments {sizes} != profiles {dict(held)}"
    return Step(state, chains, changes, stored)


def assert_matches_oracle(
    env: dict[str, str],
    redis_url: str,
    values: Sequence[bytes | None],
    now_ms: int,
    *,
    superseded_allowed: bool = False,
) -> History:
    """Both steps for the end-to-end tests outside the fault suite: fold the published
    values with the oracle, check the order path, rescore as of a day after the last
    event, and check again."""
    config = Config.from_env(env)
    history = fold(values, config, now_ms)
    before = check_order_path(env, redis_url, history, superseded_allowed=superseded_allowed)
    before.state.assert_ok("before rescoring")
    before.chains.assert_ok("before rescoring")
    as_of = history.clock_ms + MS_PER_DAY
    rescore(env, iso(as_of))
    after = check_rescored(env, redis_url, history, as_of, superseded_allowed=superseded_allowed)
    after.state.assert_ok(f"rescored as of {iso(as_of)}")
    after.chains.assert_ok(f"rescored as of {iso(as_of)}")
    return history
