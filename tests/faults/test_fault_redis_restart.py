"""Scenario 3: Redis (AOF) is killed while events flow and comes back 10 s later. The worker
pauses while Redis is away (/readyz says so), resumes on its own, and the result equals the
oracle's fold.

* ``always`` (appendfsync always): the AOF Redis comes back with holds every write the
  worker saw acknowledged (read from a copy of it taken at the kill), and no gap is re-read.
* ``everysec``: a SIGKILL of Redis alone loses nothing (the kernel still holds what Redis
  wrote; only a machine crash loses the last second), so the crash is emulated: Redis
  comes back from a copy of its AOF directory taken one second before the kill, while
  events flow. That copy is shown to lack acknowledged writes (its applied offsets are
  behind what Redis had applied at the kill), and the worker is shown to re-read exactly
  that gap from Kafka (its log names the offsets) and to end equal to the oracle, with
  every customer's latest change event true (docs/reliability.md, scenario 3b).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import orjson
import pytest
import redis

from rfm_dev.embedded import ServerProcess
from rfm_dev.shop import ShopProfile, generate_history
from state.model import MS_PER_DAY
from tests.conftest import RedisFactory
from tests.faults.common import START, FaultRun, http_get, wait_for
from tests.faults.scenario import Scenario
from tests.support.harness import free_port
from tests.support.state_reads import applied_offsets

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=1_000, orders=4_000, start_ms=START, end_ms=START + 250 * MS_PER_DAY, seed=303
)
DOWN_S = 10.0
CRASH_LOSES_S = 1.0  # how much older than the kill the AOF copy of the everysec crash is
_REREAD = re.compile(r"partition (\d+): offsets (\d+)\.\.(\d+) were consumed but are not in Redis")


def _redis_check(worker_readyz: tuple[int, bytes]) -> bool | None:
    status, body = worker_readyz
    if status == 0:
        return None
    return bool(orjson.loads(body)["checks"]["redis"])


def _aof_dir(server: ServerProcess) -> Path:
    return server.log_path.parent / "appendonlydir"  # --dir is the log's directory


def _offsets_in(
    aof: Path, private_redis: RedisFactory, tmp_path: Path, sc: Scenario
) -> dict[int, int]:
    """The applied offsets a Redis started from this AOF directory holds (a probe of our
    own on another port: the worker never sees it)."""
    port = free_port()
    shutil.copytree(aof, tmp_path / f"redis-{port}" / "appendonlydir")
    probe = private_redis(["--appendonly", "yes"], port=port)
    try:
        s = sc.settings
        return applied_offsets(
            redis.Redis.from_url(probe.url), s.kafka.orders_topic, s.redis.prefix
        )
    finally:
        probe.stop()


def _reread(log: str) -> dict[int, list[tuple[int, int]]]:
    ranges: dict[int, list[tuple[int, int]]] = {}
    for p, first, last in _REREAD.findall(log):
        ranges.setdefault(int(p), []).append((int(first), int(last)))
    return ranges


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
    crash_copy = tmp_path / "aof-as-a-crash-leaves-it"
    try:
        wait_for(lambda: http_get(worker, "/readyz")[0] == 200, 60, "worker ready", worker)
        time.sleep(10)  # events flow for a while
        if fsync == "everysec":
            shutil.copytree(_aof_dir(server), crash_copy)
            time.sleep(CRASH_LOSES_S)
        assert publisher.is_alive(), "events should still be flowing at the kill"
        at_kill = sc.applied_offsets()  # acknowledged to the worker; Redis holds at least these
        server.kill()
        if fsync == "everysec":
            shutil.rmtree(_aof_dir(server))
            shutil.copytree(crash_copy, _aof_dir(server))
        came_back_with = _offsets_in(_aof_dir(server), private_redis, tmp_path, sc)
        time.sleep(1.0)
        paused = _redis_check(http_get(worker, "/readyz", timeout=5))
        time.sleep(max(0.0, DOWN_S - 3.0))
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
        caught_up = wait_for(
            lambda: all(sc.applied_offsets().get(p, -1) >= o for p, o in at_kill.items()),
            60,
            "applied offsets back where they were at the kill",
            worker,
        )
        publisher.finish()
        sc.wait_accounted(worker, 120)
        sc.wait_relayed(worker, 60)
        assert worker.proc.poll() is None, "the worker should have survived the outage"
    finally:
        publisher.finish()
        assert worker.stop() == 0, worker.log_tail()

    lost = {p: o - came_back_with.get(p, -1) for p, o in at_kill.items()}
    reread = _reread(worker.log_path.read_text(errors="replace"))
    run = FaultRun(f"redis_restart_{fsync}", recovery_seconds=recovery)
    run.extra.update(
        down_seconds=DOWN_S,
        accounted_at_restart=at_restart,
        readyz_redis_while_down=paused,
        ready_again_seconds=round(ready_again, 2),
        offsets_at_kill=at_kill,
        offsets_lost_by_redis=lost,
        offsets_reread=reread,
        caught_up_seconds=round(caught_up, 2),
    )
    # everysec: changes published from writes Redis lost may be superseded (reliability.md)
    sc.verify(run, expect_change_duplicates=None, superseded_allowed=fsync == "everysec")
    assert paused is False, "/readyz should report Redis down during the outage"
    if fsync == "always":
        assert all(n <= 0 for n in lost.values()), ("fsync always lost writes", lost)
        assert not reread, ("nothing to re-read after fsync always", reread)
    else:
        assert sum(n for n in lost.values() if n > 0) > 0, ("the copy lost nothing", lost)
        for p, n in lost.items():
            if n <= 0:
                continue
            covered = {o for first, last in reread.get(p, []) for o in range(first, last + 1)}
            missing = set(range(came_back_with.get(p, -1) + 1, at_kill[p] + 1)) - covered
            assert not missing, (p, sorted(missing)[:10], reread.get(p))
