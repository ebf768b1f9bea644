"""Scenario 5: a rescoring pass killed midway and then rerun; and rescoring passes at once
(the worker's periodic job every second plus ``rfm-stream rescore``) while orders are
applied. Every change is emitted once, every pass's own figures agree with the state it
found and with the change topic, and no contradictory state is left behind.

Passes score and write inside Redis, one atomic script per chunk of customers, so a pass
can lose no write to a concurrent writer: a lost compare-and-set would show as a pass
reporting fewer customers rescored than examined, and as fewer changes on the topic than
the passes counted. Both are asserted to be impossible here.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY, iso_utc
from tests.faults.common import START, FaultRun
from tests.faults.scenario import Scenario, customers_as_of
from tests.support.checks import Changes, read_changes
from tests.support.harness import run_cli
from tests.support.stored import stored_profiles

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=3_000, orders=5_000, start_ms=START, end_ms=START + 400 * MS_PER_DAY, seed=505
)
EXIT_AT_FAULT = 137
_CLI_PASS = re.compile(
    r"^rescored (\d+) of (\d+) customers as of (\S+): "
    r"(\d+) segment changes; (\d+) records published$"
)
_DUE_PASS = re.compile(
    r"rescoring pass \(due\) as of (\d+): (\d+) examined, (\d+) rescored, (\d+) changes"
)


def _cli_pass(stdout: str) -> tuple[int, int, int, int]:
    """(rescored, examined, changes, published) as ``rfm-stream rescore`` prints them."""
    found = _CLI_PASS.match(stdout.strip())
    assert found, stdout
    rescored, examined, _, changes, published = found.groups()
    return int(rescored), int(examined), int(changes), int(published)


def _rescore_changes(changes: Changes) -> Counter[str]:
    """Customers with a change of cause ``rescore`` on the topic, and how many each."""
    return Counter(
        cid for cid, chain in changes.by_customer.items() for c in chain if c["cause"] == "rescore"
    )


def test_rescore_killed_midway_then_rerun(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    events = list(generate_history(PROFILE))
    sc.publish(events)
    worker = sc.worker().start()
    try:
        sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    oracle = sc.oracle()
    everyone = stored_profiles(sc.env)
    # Customers with an order left (others have no scores, hence no as_of).
    customers = {c for c, state in oracle.customers.items() if state.live_orders()}
    assert len(customers) >= 2_500
    # Far enough after the last event that most customers change segment.
    as_of = oracle.clock_ms + 120 * MS_PER_DAY
    killed = run_cli(
        {**sc.env, "RFM_TEST_FAULTS": "rescore_midway=exit"}, "rescore", "--as-of", iso_utc(as_of)
    )
    assert killed.returncode == EXIT_AT_FAULT, killed.stderr[-2000:]
    done_before = customers_as_of(sc.env, as_of)
    assert 0 < len(done_before) < len(customers), f"not killed midway: {len(done_before)}"
    pending = sc.outbox_backlog()
    assert pending > 0, "the killed pass should have left changes in the outbox"
    assert not _rescore_changes(read_changes(kafka_bootstrap, sc.settings.kafka.changes_topic))

    started = time.monotonic()
    rerun = run_cli(sc.env, "rescore", "--as-of", iso_utc(as_of))
    seconds = time.monotonic() - started
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    rescored, examined, changes, published = _cli_pass(rerun.stdout)
    assert customers_as_of(sc.env, as_of) == customers

    # The rerun examined every customer there is and wrote every one (nothing lost to a
    # concurrent writer, nothing failed); it published what the killed pass had queued
    # and its own changes, nothing else.
    assert examined == len(everyone), (examined, len(everyone))
    assert rescored == examined
    assert changes <= rescored
    assert published == pending + changes, (published, pending, changes)
    # On the topic: one rescore change per customer at most (the same as_of twice changes
    # nothing the second time); the killed pass's are those of the customers it reached,
    # the rerun's those of the others.
    by_customer = _rescore_changes(read_changes(kafka_bootstrap, sc.settings.kafka.changes_topic))
    assert max(by_customer.values()) == 1
    assert sum(1 for c in by_customer if c in done_before) == pending
    assert sum(1 for c in by_customer if c not in done_before) == changes

    run = FaultRun("rescore_killed_midway", recovery_seconds=seconds)
    run.extra.update(
        customers=len(customers),
        rescored_before_kill=len(done_before),
        outbox_left=pending,
        rerun=dict(rescored=rescored, examined=examined, changes=changes, published=published),
    )
    sc.verify(run, oracle=oracle, as_of_ms=as_of)


def test_periodic_and_cli_rescoring_at_once_while_orders_flow(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_RESCORE_INTERVAL="1")
    events = list(generate_history(PROFILE))
    first, rest = events[: len(events) // 3], events[len(events) // 3 :]
    sc.publish(first)
    worker = sc.worker().start()
    outputs: list[tuple[int, str]] = []  # (customers before the pass, its output)
    failures: list[str] = []
    # A time after the last event of the whole stream: the CLI passes score ahead of the
    # event clock, the periodic job scores at it, the hot path at the latest order.
    as_of = sc.oracle(values=(v for _, v in events)).clock_ms + 60 * MS_PER_DAY
    try:
        sc.wait_accounted(worker, 120)
        at_start = len(stored_profiles(sc.env))
        publisher = sc.paced(rest, chunk=60, interval=0.3)

        def cli_passes() -> None:
            for _ in range(3):
                known = len(stored_profiles(sc.env))
                done = run_cli(sc.env, "rescore", "--as-of", iso_utc(as_of))
                if done.returncode == 0:
                    outputs.append((known, done.stdout))
                else:
                    failures.append(done.stderr[-2000:])
                time.sleep(2.0)

        cli = threading.Thread(target=cli_passes)
        cli.start()
        cli.join(180)
        publisher.join(120)  # all of it at the paced rate, under the periodic job
        publisher.finish()
        sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert not failures, failures
    assert len(outputs) == 3
    log = worker.log_path.read_text(errors="replace")
    periodic = [tuple(int(x) for x in m.groups()) for m in _DUE_PASS.finditer(log)]
    assert len(periodic) >= 3, "the periodic job should have run during the CLI passes"

    final = sc.oracle()
    everyone = len(stored_profiles(sc.env))
    passes = [(known, *_cli_pass(out)) for known, out in outputs]
    # Each pass examined every customer there was when it ran (customers only arrive), and
    # wrote every one: in Redis nothing is lost to the hot path or the other passes.
    for known, rescored, examined, changes, _ in passes:
        assert at_start <= known <= examined <= everyone, (at_start, known, examined, everyone)
        assert rescored == examined, passes
        assert changes <= rescored, passes
    assert [p[2] for p in passes] == sorted(p[2] for p in passes), passes
    for _, examined, rescored, changes in periodic:
        assert rescored == examined and changes <= rescored, periodic
    # Every change a pass counted is on the topic, once: the CLI passes' as cause rescore,
    # the periodic job's as cause recency (before the final rescore of verify()).
    topic = read_changes(kafka_bootstrap, sc.settings.kafka.changes_topic)
    causes = topic.causes
    assert causes["rescore"] == sum(p[3] for p in passes), (causes, passes)
    assert causes["recency"] == sum(p[3] for p in periodic), (causes, periodic)
    assert {
        c["as_of"] for chain in topic.by_customer.values() for c in chain if c["cause"] == "rescore"
    } == {iso_utc(as_of)}

    run = FaultRun("concurrent_rescoring")
    run.extra.update(
        periodic_passes=len(periodic),
        periodic_changes=sum(p[3] for p in periodic),
        cli_passes=[o.strip() for _, o in outputs],
        changes_by_cause=dict(causes),
    )
    sc.verify(run, oracle=final, as_of_ms=as_of)
