"""A rescoring pass that moves orders out of the window and deletes order records past the
retention, SIGKILLed midway (a fault point that exits like SIGKILL, no cleanup), then run
again: it ends in the same state as the same pass never interrupted, run on a copy of the
store taken before it (every key under another prefix), customer by customer, record by
record, change by change; no segment change is lost or doubled (the oracle's verdict,
change chains read back from the topic). A rerun that emitted its changes again is caught
(mutation-checked: changes forced on every rescore fail the comparison of the topics).

Windows of 30 days (retention 60), the event clock; the pass as of 120 days after the last
event: nearly every window changes, and the watermark (the least partition's latest event)
puts months of order records past the retention.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import redis

from rfm_dev.shop import ShopProfile, generate_history
from state.keys import Keys
from state.model import MS_PER_DAY, iso_utc
from tests.faults.common import START, FaultRun
from tests.faults.scenario import Scenario, customers_as_of
from tests.support.checks import read_changes
from tests.support.harness import run_cli
from tests.support.stored import stored_profiles

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=2_000, orders=6_000, start_ms=START, end_ms=START + 400 * MS_PER_DAY, seed=3030
)
WINDOW = {"RFM_WINDOW_DAYS": "30"}
EXIT_AT_FAULT = 137


def order_records(r: redis.Redis, keys: Keys) -> set[bytes]:
    """Every order record the store holds (``<id>\\x1f<order>``), refund marks apart."""
    found: set[bytes] = set()
    for key in r.scan_iter(match=f"{keys.prefix}:o:{{*", count=1000):
        found.update(f for f in r.hkeys(key) if f.count(b"\x1f") == 1)
    return found


def clone(r: redis.Redis, source: str, target: str) -> int:
    """Every key of prefix ``source`` copied under prefix ``target`` (the values never name
    the prefix, so the copy is the same store): the uninterrupted pass's starting point."""
    copied = 0
    for key in r.scan_iter(match=f"{source}:*", count=1000):
        r.restore(target + key.decode()[len(source) :], 0, r.dump(key), replace=True)
        copied += 1
    return copied


def test_window_pass_killed_midway_ends_as_an_uninterrupted_one(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path, **WINDOW)
    sc.publish(list(generate_history(PROFILE)))
    worker = sc.worker().start()
    try:
        sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    oracle = sc.oracle()
    as_of = oracle.clock_ms + 120 * MS_PER_DAY
    r = sc.redis
    records_before = order_records(r, sc.keys)

    # The uninterrupted pass, on a copy of the store with its own change topic.
    assert clone(r, sc.keys.prefix, "whole") > 0
    whole_env = {
        **sc.env,
        "RFM_REDIS_PREFIX": "whole",
        "RFM_CHANGES_TOPIC": f"{topic_prefix}whole.changes",
        "RFM_SNAPSHOT_TOPIC": f"{topic_prefix}whole.snapshots",
    }
    whole_keys = Keys("whole")
    assert order_records(r, whole_keys) == records_before
    done = run_cli(whole_env, "rescore", "--as-of", iso_utc(as_of))
    assert done.returncode == 0, done.stderr[-2000:]
    records_whole = order_records(r, whole_keys)
    deleted = records_before - records_whole
    assert len(deleted) > len(records_before) // 4, "the pass should delete many records"

    # The same pass killed after its first chunk, then run again.
    customers = {c for c, state in oracle.customers.items() if state.live_orders()}
    crashed = run_cli(
        {**sc.env, "RFM_TEST_FAULTS": "rescore_midway=exit"},
        "rescore",
        "--as-of",
        iso_utc(as_of),
    )
    assert crashed.returncode == EXIT_AT_FAULT, crashed.stderr[-2000:]
    reached = customers_as_of(sc.env, as_of)
    assert 0 < len(reached) < len(customers), f"not killed midway: {len(reached)} rescored"
    records_after_kill = order_records(r, sc.keys)
    assert records_whole < records_after_kill < records_before, (
        "the killed pass should have deleted some records due, not all"
    )
    rerun = run_cli(sc.env, "rescore", "--as-of", iso_utc(as_of))
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    # Same state as the uninterrupted pass: every profile as exported, every record kept.
    assert order_records(r, sc.keys) == records_whole
    after_kill, after_whole = stored_profiles(sc.env), stored_profiles(whole_env)
    assert set(after_kill) == set(after_whole)
    differing = [c for c in after_kill if after_kill[c] != after_whole[c]]
    assert differing == [], f"{len(differing)} profiles differ, e.g. {differing[:3]}"

    # The same changes, once each: the killed pass's and the rerun's together are the
    # uninterrupted pass's, at most one a customer.
    def rescore_changes(topic: str) -> Counter[tuple[str, str | None, str | None]]:
        changes = read_changes(kafka_bootstrap, topic)
        return Counter(
            (cid, c["previous_segment"], c["segment"])
            for cid, chain in changes.by_customer.items()
            for c in chain
            if c["cause"] == "rescore"
        )

    killed_changes = rescore_changes(sc.settings.kafka.changes_topic)
    assert killed_changes == rescore_changes(whole_env["RFM_CHANGES_TOPIC"])
    assert killed_changes and max(Counter(c for c, _, _ in killed_changes.elements()).values()) == 1

    # And the oracle's verdict at T: state, change chains in topic order, dead letters.
    run = FaultRun("window_pass_killed_midway")
    run.extra.update(
        order_records_before=len(records_before),
        deleted_by_the_pass=len(deleted),
        left_after_kill=len(records_after_kill),
        customers_reached_before_kill=len(reached),
    )
    sc.verify(run, oracle=oracle, as_of_ms=as_of)
