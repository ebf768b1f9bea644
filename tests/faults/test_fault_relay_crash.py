"""Scenario 6: the outbox relay dies after publishing to Kafka and before deleting the
outbox entries. A clean restart publishes them again: the changes topic then holds repeats
with the same event_id and identical content, and nothing is missing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.faults.common import START, FaultRun
from tests.faults.scenario import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=600, orders=2_000, start_ms=START, end_ms=START + 200 * MS_PER_DAY, seed=606
)
EXIT_AT_FAULT = 137


def test_relay_killed_between_publish_and_delete(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    sc = Scenario(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    events = list(generate_history(PROFILE))
    sc.publish(events)

    crashing = sc.worker("relay-crash", RFM_TEST_FAULTS="relay_published=exit").start()
    assert crashing.proc is not None
    try:
        assert crashing.proc.wait(90) == EXIT_AT_FAULT, crashing.log_tail()
    finally:
        crashing.kill()
    assert "fault point relay_published: exiting now" in crashing.log_path.read_text(
        errors="replace"
    )
    left = sc.outbox_backlog()
    assert left > 0, "the published entries should still be in the outbox"

    worker = sc.worker("clean").start()
    started = time.monotonic()
    try:
        sc.wait_accounted(worker, 120)
        relayed = sc.wait_relayed(worker, 90)
        recovery = time.monotonic() - started
    finally:
        assert worker.stop() == 0, worker.log_tail()

    run = FaultRun("relay_killed_after_publish", recovery_seconds=recovery)
    run.extra.update(outbox_left_at_crash=left, outbox_drained_after_s=round(relayed, 2))
    verdict = sc.verify(run, expect_change_duplicates=True)
    # Repeats are what the dead relay had published and not deleted, nothing else.
    assert verdict.change_repeats <= left
