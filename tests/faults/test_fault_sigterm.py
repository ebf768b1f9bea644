"""README, "Nothing is lost": on SIGTERM the batch in hand is finished before faust
acknowledges it (docs/reliability.md, "How it holds together" 2).

The worker is caught with a batch in hand: Redis is paused for writes (CLIENT PAUSE WRITE,
which holds every script call), the batch arrives as one Kafka record batch, and the test
waits until the worker's apply script is seen blocked in Redis. SIGTERM then lands while
nothing of the batch can have been applied. Once Redis resumes, the worker must apply the
whole batch, commit its offsets, and exit 0: the committed offset equals the applied one,
so a worker started afterwards would redeliver nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from rfm_dev.shop import ShopProfile, history_events
from state.model import MS_PER_DAY
from tests.conftest import RedisFactory
from tests.faults.common import (
    START,
    http_get,
    kafka_committed,
    produce_record_batch,
    wait_for,
)
from tests.faults.scenario import Scenario
from tests.reference import expected
from tests.support.state_reads import has_order, read_profiles

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=15, orders=45, start_ms=START, end_ms=START + 30 * MS_PER_DAY, seed=909
)
BATCH = 45  # records, all in one Kafka record batch and so in one worker batch


def _blocked_scripts(client: Any) -> list[dict[str, Any]]:
    """Clients whose script call waits on the pause, with the size of its arguments."""
    return [
        c
        for c in client.client_list()
        if "b" in c.get("flags", "") and c.get("cmd") in ("evalsha", "eval")
    ]


def test_sigterm_with_a_batch_in_hand_finishes_and_commits_it(
    kafka_bootstrap: str, private_redis: RedisFactory, topic_prefix: str, tmp_path: Path
) -> None:
    server = private_redis()  # paused below: no other test may share it
    sc = Scenario(kafka_bootstrap, server.url, topic_prefix, tmp_path, RFM_PARTITIONS="1")
    topic, group = sc.settings.kafka.orders_topic, sc.settings.kafka.app_id
    records = [(e.key, e.value) for e in history_events(PROFILE)][:BATCH]
    assert len(records) == BATCH

    worker = sc.worker().start()
    proc = worker.proc
    assert proc is not None
    try:
        wait_for(lambda: http_get(worker, "/readyz")[0] == 200, 60, "worker ready", worker)
        time.sleep(1.0)  # the start-up sweep and the relay's first rounds are done
        admin = sc.redis
        assert sc.accounted() == 0
        admin.client_pause(20_000, all=False)  # WRITE: every script call waits
        try:
            produce_record_batch(kafka_bootstrap, topic, 0, records)
            sc.published.extend(v for _, v in records)
            # The batch's apply script carries every record: far more argument bytes than
            # the relay's lock scripts.
            wait_for(
                lambda: any(int(c["argv-mem"]) > 2000 for c in _blocked_scripts(admin)),
                15,
                "the batch's apply script blocked in Redis",
                worker,
            )
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.5)
            assert proc.poll() is None, "the worker left with its batch in hand"
            assert sc.accounted() == 0, "applied while Redis was paused?"
        finally:
            admin.client_unpause()
        proc.wait(30)
    finally:
        code = worker.stop(5)
    assert code == 0, worker.log_tail()

    # The whole batch applied, each event once: outcomes and every customer's orders and
    # spend as a batch fold of the records gives them ...
    oracle = sc.oracle()
    stats = sc.stats()
    assert stats == {k: v for k, v in oracle.outcomes.items() if v}
    assert sum(stats.values()) == BATCH
    states = read_profiles(sc.redis, sorted(oracle.customers), sc.keys)
    profiles = expected(oracle, sc.config, oracle.clock_ms)
    for cid, customer in oracle.customers.items():
        state, want = states[cid], profiles[cid]
        assert state is not None, cid
        assert (state.orders, state.spend_minor) == (want.orders, want.spend_minor), cid
        for order_id in customer.orders:
            assert has_order(sc.redis, cid, order_id, sc.keys), (cid, order_id)
    # ... and acknowledged: the group's committed offset is the one after the last applied,
    # so a worker started now would redeliver nothing.
    assert sc.applied_offsets() == {0: BATCH - 1}
    assert kafka_committed(kafka_bootstrap, group, topic, 1) == {0: BATCH}
