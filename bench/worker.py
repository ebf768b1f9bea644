"""Step 2: ``rfm-stream worker`` end to end (consumed -> applied -> committed), 1 or 2 of them.

The orders are published before the workers start, so the broker is never the limit; the
workers are started together so they join the consumer group in the same round. "Applied"
is read from Redis (``rfm:stats``: applied + duplicate + dlq:*), polled every 20 ms, and the
run counts as done once the group's committed offsets reach the end of every partition.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import commandstats as redis_stats
from bench import profile
from bench.env import (
    PARTITIONS,
    ROOT,
    Produced,
    Stack,
    accounted,
    committed,
    cpu_seconds,
    flush,
    stack_cpu,
    sync_redis,
)
from rfm_dev.embedded import free_port

POLL_S = 0.02


def worker_env(stack: Stack, topic: str, group: str, workdir: Path) -> dict[str, str]:
    """Product defaults except what must be private to this run."""
    return {
        "RFM_KAFKA_BOOTSTRAP": stack.bootstrap,
        "RFM_REDIS_URL": stack.redis_url,
        "RFM_ORDERS_TOPIC": topic,
        "RFM_DLQ_TOPIC": f"{group}.dlq",
        "RFM_CHANGES_TOPIC": f"{group}.changes",
        "RFM_APP_ID": group,
        "RFM_PARTITIONS": str(PARTITIONS),
        "RFM_RESCORE_INTERVAL": "3600",  # no periodic pass in the middle of a measurement
        "RFM_DATA_DIR": str(workdir / "data"),
        "RFM_WEB_PORT": str(free_port()),
    }


def start_worker(env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli.main", "worker"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def log_tail(workdir: Path, lines: int = 30) -> str:
    path = workdir / "worker.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def measure(
    stack: Stack,
    topic: str,
    produced: Produced,
    workers: int,
    workdir: Path,
    profile_to: Path | None = None,
    commandstats: bool = False,
) -> dict[str, Any]:
    """``commandstats``: CONFIG RESETSTAT before the workers start, INFO commandstats once
    every event is applied (``result["commandstats"]``, bench/commandstats.py)."""
    flush(stack.redis_url)
    group = f"bench-worker-{workers}"
    dirs = [workdir / f"{group}-{i}" for i in range(workers)]
    redis_cpu_at_reset = None
    if commandstats:
        redis_stats.reset(stack.redis_url)
        redis_cpu_at_reset = _redis_cpu(stack)
    procs = [start_worker(worker_env(stack, topic, group, d), d) for d in dirs]
    try:
        result = _watch(stack, procs, dirs, produced, profile_to, redis_cpu_at_reset)
        result["committed_after_s"] = _wait_committed(stack, group, topic, produced, result)
    finally:
        for proc in procs:
            stop_worker(proc)
    result.update(workers=workers, pids=[p.pid for p in procs], logs=[str(d) for d in dirs])
    return result


def _watch(
    stack: Stack,
    procs: list[subprocess.Popen[bytes]],
    dirs: list[Path],
    produced: Produced,
    profile_to: Path | None,
    redis_cpu_at_reset: float | None = None,
) -> dict[str, Any]:
    client = sync_redis(stack.redis_url)
    total = produced.total
    deadline = time.monotonic() + 120 + total / 500
    started = time.monotonic()
    samples: list[tuple[float, int]] = []
    cpu: dict[str, float] = {}
    spy = None
    try:
        while not samples or samples[-1][1] < total:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers stalled or died; log:\n{log_tail(dirs[0])}")
            n = accounted(client)
            if n:
                if not samples:
                    cpu = stack_cpu(stack, [p.pid for p in procs])
                    if profile_to is not None:
                        spy = profile.start(procs[0].pid, profile_to)
                samples.append((time.monotonic(), n))
            time.sleep(POLL_S)
    finally:
        client.close()
        profile.stop(spy)
    now = stack_cpu(stack, [p.pid for p in procs])
    spent = {k: v - cpu.get(k, 0.0) for k, v in now.items()}
    out = _rates(samples, total)
    if redis_cpu_at_reset is not None:  # since the reset: start-up and the bench's polls too
        redis_cpu = now.get("redis", 0.0) - redis_cpu_at_reset
        stats = redis_stats.read(stack.redis_url)
        out["commandstats"] = redis_stats.summarise(stats, total, redis_cpu)
    out["first_applied_after_s"] = round(samples[0][0] - started, 2)
    out["cpu_s_per_1000_events"] = {
        k: round(v / max(total - samples[0][1], 1) * 1000, 4) for k, v in spent.items()
    }
    out["cpu_cores_busy"] = {k: round(v / max(out["seconds"], 1e-9), 2) for k, v in spent.items()}
    if profile_to is not None and spy is not None:
        out["profile"] = profile.summarise(profile_to, out["seconds"])
    return out


def _redis_cpu(stack: Stack) -> float:
    return cpu_seconds(stack.redis.popen.pid) if stack.redis.popen is not None else 0.0


def _rates(samples: list[tuple[float, int]], total: int) -> dict[str, Any]:
    """First-to-last applied rate, and the steady rate between 10 % and 90 % applied."""
    (t0, n0), (t1, _) = samples[0], samples[-1]
    seconds = t1 - t0
    lo = next(s for s in samples if s[1] >= total * 0.1)
    hi = next(s for s in samples if s[1] >= total * 0.9)
    steady = (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else 0.0
    return {
        "events": total,
        "seconds": round(seconds, 3),
        "events_per_s": round((total - n0) / seconds, 1) if seconds > 0 else 0.0,
        "steady_events_per_s": round(steady, 1),
    }


def _wait_committed(
    stack: Stack, group: str, topic: str, produced: Produced, result: dict[str, Any]
) -> float:
    """Seconds from the last event applied until every partition's offset is committed."""
    start = time.monotonic()
    offsets: dict[int, int] = {}
    while time.monotonic() - start < 60:
        offsets = asyncio.run(committed(stack.bootstrap, group, topic, produced.ends))
        if all(offsets.get(p, -1) >= end for p, end in produced.ends.items()):
            return round(time.monotonic() - start, 2)
        time.sleep(0.1)
    result["uncommitted"] = {p: [offsets.get(p), e] for p, e in produced.ends.items()}
    return -1.0
