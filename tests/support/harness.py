"""Drives real worker processes and real topics from tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from stream.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rfm_env(
    kafka_bootstrap: str, redis_url: str, prefix: str, workdir: Path, **extra: str
) -> dict[str, str]:
    """Settings for one test: its own topics, consumer group and data directory."""
    env = {
        "RFM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RFM_REDIS_URL": redis_url,
        "RFM_ORDERS_TOPIC": f"{prefix}orders",
        "RFM_DLQ_TOPIC": f"{prefix}orders.dlq",
        "RFM_CHANGES_TOPIC": f"{prefix}changes",
        "RFM_SNAPSHOT_TOPIC": f"{prefix}customer-segments",
        "RFM_APP_ID": f"{prefix}app",
        "RFM_PARTITIONS": "4",
        "RFM_RESCORE_INTERVAL": "3600",
        "RFM_DATA_DIR": str(workdir / "data"),
        "RFM_LOG_LEVEL": "info",
    }
    env.update(extra)
    return env


def settings_of(env: Mapping[str, str]) -> Settings:
    return load_settings(env=env)


def cli_command(env: Mapping[str, str]) -> list[str]:
    """``rfm-stream``, as an operator runs it; with ``RFM_TEST_FAULTS`` set, the development
    entry that arms those fault points (rfm_dev/fault_worker.py): ``rfm-stream`` itself
    never reads that variable."""
    module = "rfm_dev.fault_worker" if env.get("RFM_TEST_FAULTS") else "stream.cli.main"
    return [sys.executable, "-m", module]


class Worker:
    """``rfm-stream worker`` as a child process, as an operator would run it."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env, "RFM_WEB_PORT": str(free_port())}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*cli_command(self.env), "worker"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def run_cli(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command({**os.environ, **env}), *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, worker: Worker | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = f"\nworker log:\n{worker.log_tail()}" if worker else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")


def accounted(redis_url: str, prefix: str = "rfm") -> int:
    """Input events applied + duplicate + dead-lettered, as counted in Redis.

    Redeliveries of an offset already applied are the same events again, counted apart."""
    stats = redis.Redis.from_url(redis_url).hgetall(f"{prefix}:stats")
    return sum(int(v) for k, v in stats.items() if k != b"redelivered")


def outbox_backlog(redis_url: str, prefix: str = "rfm") -> int:
    """Records waiting in every outbox that exists (found by key, not by the settings)."""
    r = redis.Redis.from_url(redis_url)
    return sum(int(r.xlen(key)) for key in r.scan_iter(match=f"{prefix}:outbox:*", _type="stream"))


def outbox_empty(redis_url: str, prefix: str = "rfm") -> bool:
    return outbox_backlog(redis_url, prefix) == 0


async def _produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    n = 0
    try:
        futures = []
        for key, value in records:
            futures.append(await producer.send(topic, value, key=key))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    return asyncio.run(_produce(bootstrap, topic, records))


async def _read_to_end(
    bootstrap: str, topic: str, timeout: float
) -> list[ConsumerRecord[bytes, bytes]]:
    # Subscribed by name: its metadata is asked for by name (a full metadata request does
    # not always list a topic on the embedded broker after it restarted empty).
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: no partitions known within {timeout}s")
            await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        by_partition: dict[int, list[ConsumerRecord[bytes, bytes]]] = {p.partition: [] for p in tps}
        short = [tp for tp in tps if ends[tp] > 0]
        while short:
            if time.monotonic() > deadline:
                behind = {tp.partition: (await consumer.position(tp), ends[tp]) for tp in short}
                raise AssertionError(
                    f"{topic}: not read to its end offsets within {timeout}s "
                    f"(partition: (position, end)) {behind}"
                )
            got = await consumer.getmany(*short, timeout_ms=300)
            for tp, batch in got.items():
                by_partition[tp.partition].extend(batch)
            short = [tp for tp in short if await consumer.position(tp) < ends[tp]]
        for p in sorted(by_partition):
            out.extend(by_partition[p])
    finally:
        await consumer.stop()
    return out


def read_topic(
    bootstrap: str,
    topic: str,
    expect: int | None = None,
    timeout: float = 30,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic up to its end offsets as they are now, partition by partition
    in offset order (so each key's records in the order consumers see them). Fails loudly
    if the end is not reached in ``timeout`` or if fewer than ``expect`` records are there.
    Read after whatever publishes to it is done (the outbox relayed), not while it runs."""
    records = asyncio.run(_read_to_end(bootstrap, topic, timeout))
    if expect is not None:
        assert len(records) >= expect, f"{topic}: {len(records)} records, expected {expect}"
    return records
