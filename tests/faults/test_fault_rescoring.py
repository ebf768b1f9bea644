"""Scenario 5: a rescoring pass killed midway and then rerun; and two rescoring passes at
once (the worker's periodic job every second plus ``rfm-stream rescore``) while orders are
applied. Every change is emitted, and no contradictory state is left behind."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from state.model import MS_PER_DAY, iso_utc
from stream.shop import ShopProfile, generate_history
from tests.faults.common import START, FaultRun
from tests.faults.scenario import Scenario, customers_as_of
from tests.support.harness import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=3_000, orders=5_000, start_ms=START, end_ms=START + 400 * MS_PER_DAY, seed=505
)
EXIT_AT_FAULT = 137
_RESCORED = re.compile(r"rescored (\d+) of (\d+) customers .*: (\d+) segment changes")


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
    # Customers with an order left (others have no scores, hence no as_of).
    customers = sorted(c for c, state in oracle.customers.items() if state.live_orders())
    assert len(customers) >= 2_500
    # Far enough after the last event that most customers change segment.
    as_of = oracle.clock_ms + 120 * MS_PER_DAY
    killed = run_cli(
        {**sc.env, "RFM_TEST_FAULTS": "rescore_midway=exit"}, "rescore", "--as-of", iso_utc(as_of)
    )
    assert killed.returncode == EXIT_AT_FAULT, killed.stderr[-2000:]
    done_before = len(customers_as_of(sc.env, as_of))
    assert 0 < done_before < len(customers), f"not killed midway: {done_before} rescored"
    pending = sc.outbox_backlog()
    assert pending > 0, "the killed pass should have left changes in the outbox"

    started = time.monotonic()
    rerun = run_cli(sc.env, "rescore", "--as-of", iso_utc(as_of))
    seconds = time.monotonic() - started
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert customers_as_of(sc.env, as_of) == set(customers)

    run = FaultRun("rescore_killed_midway", recovery_seconds=seconds)
    run.extra.update(
        customers=len(customers), rescored_before_kill=done_before, outbox_left=pending
    )
    run.extra["rerun_output"] = rerun.stdout.strip()
    sc.verify(run, oracle=oracle, as_of_ms=as_of)


def test_periodic_and_cli_rescoring_at_once_while_orders_flow(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_RESCORE_INTERVAL="1")
    events = list(generate_history(PROFILE))
    first, rest = events[: len(events) // 3], events[len(events) // 3 :]
    sc.publish(first)
    worker = sc.worker().start()
    outputs: list[str] = []
    failures: list[str] = []
    # A time after the last event of the whole stream: the CLI passes score ahead of the
    # event clock, the periodic job scores at it, the hot path at the latest order.
    as_of = sc.oracle(values=(v for _, v in events)).clock_ms + 60 * MS_PER_DAY
    try:
        sc.wait_accounted(worker, 120)
        publisher = sc.paced(rest, chunk=60, interval=0.3)

        def cli_passes() -> None:
            for _ in range(3):
                done = run_cli(sc.env, "rescore", "--as-of", iso_utc(as_of))
                (outputs if done.returncode == 0 else failures).append(
                    done.stdout if done.returncode == 0 else done.stderr[-2000:]
                )
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
    periodic = log.count("rescoring pass (due)")
    assert periodic >= 3, "the periodic job should have run during the CLI passes"

    final = sc.oracle()
    run = FaultRun("concurrent_rescoring")
    run.extra.update(periodic_passes=periodic, cli_passes=[o.strip() for o in outputs])
    # A CAS-lost write is dropped, never written over newer state: fewer rescored than seen.
    counts = [tuple(int(x) for x in m.groups()) for m in map(_RESCORED.search, outputs) if m]
    run.extra["cli_rescored_examined_changes"] = counts
    sc.verify(run, oracle=final, as_of_ms=as_of)
