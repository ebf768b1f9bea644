"""Scenario 3: Redis (AOF with fsync ``always``, and with ``everysec``) is killed while
events flow and comes back 10 s later. The worker pauses while Redis is away (/readyz says
so), resumes on its own, and the result equals the batch fold. With ``everysec`` Redis may
come back without its last second of writes: the worker re-reads them from Kafka (the gap
between the group's committed offsets and the offsets Redis holds)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.conftest import RedisFactory
from tests.faults.common import START, FaultRun, http_get, wait_for
from tests.faults.scenario import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=1_000, orders=4_000, start_ms=START, end_ms=START + 250 * MS_PER_DAY, seed=303
)
DOWN_S = 10.0


def _redis_check(worker_readyz: tuple[int, bytes]) -> bool | None:
    status, body = worker_readyz
    if status == 0:
        return None
    return bool(orjson.loads(body)["checks"]["redis"])


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_redis_restart_while_events_flow(
    fsync: str,
    kafka_bootstrap: str,
    private_redis: RedisFactory,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    server = private_redis(["--appendonly", "yes", "--appendfsync", fsync])
    sc = Scenario(kafka_bootstrap, server.url, topic_prefix, tmp_path)
    events = list(generate_history(PROFILE))
    worker = sc.worker().start()
    publisher = sc.paced(events, chunk=50, interval=0.25)
    try:
        wait_for(lambda: http_get(worker, "/readyz")[0] == 200, 60, "worker ready", worker)
        time.sleep(10)  # events flow for a while
        assert publisher.is_alive(), "events should still be flowing at the kill"
        server.kill()
        time.sleep(1.0)
        paused = _redis_check(http_get(worker, "/readyz", timeout=5))
        time.sleep(DOWN_S - 1.0)
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        server.restart()
        at_restart = sc.accounted()
        recovery = wait_for(
            lambda: sc.accounted() > at_restart or sc.accounted() == len(events),
            90,
            "progress after the Redis restart",
            worker,
        )
        ready_again = wait_for(
            lambda: http_get(worker, "/readyz")[0] == 200, 60, "ready again", worker
        )
        publisher.finish()
        sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
        assert worker.proc.poll() is None, "the worker should have survived the outage"
    finally:
        publisher.finish()
        assert worker.stop() == 0, worker.log_tail()

    run = FaultRun(f"redis_restart_{fsync}", recovery_seconds=recovery)
    run.extra.update(
        down_seconds=DOWN_S,
        accounted_at_restart=at_restart,
        readyz_redis_while_down=paused,
        ready_again_seconds=round(ready_again, 2),
    )
    # everysec: changes published from writes Redis lost may be superseded (see reliability.md)
    sc.verify(run, expect_change_duplicates=None, superseded_allowed=fsync == "everysec")
    assert paused is False, "/readyz should report Redis down during the outage"
