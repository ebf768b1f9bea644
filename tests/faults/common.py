"""Shared parts of the fault-injection scenarios.

Every scenario publishes a known, deterministic set of events, injects its fault, and ends
with ``Scenario.verify``: the input accounting (per outcome equal to the independent
oracle's fold of the published events, tests/reference), the state and change chains as
the order path left them (before any rescoring pass), then a final
``rfm-stream rescore --as-of T`` and the same against the oracle at T, and the dead
letters (tests/support/checks.py).

Each scenario's figures go into a ``FaultRun`` that is appended as one JSON line to the file
named by ``RFM_FAULT_REPORT`` (if set), so the docs can be filled from a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support.harness import Worker

START = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)
# Group timings short enough that a SIGKILLed member is evicted in seconds, not tens of them.
FAST_GROUP = {
    "RFM_SESSION_TIMEOUT": "4",
    "RFM_HEARTBEAT_INTERVAL": "0.5",
    "RFM_REBALANCE_TIMEOUT": "3",
}
MAX_REQUEST = 4 * 1024 * 1024
FIXED_KEYS = (
    "offsets",
    "stats",
    "clock",
    "partition-clocks",
    "seq-floor",
    "erasures",
    "dirty",
    "due-hours",
    "segment-codes",
    "layout",
    "segments",
    "quintiles",
    "rescore",
    "outboxes",
)


# Every worker a scenario started, so the suite's fixture can kill what a failed test left.
STARTED_WORKERS: list[Worker] = []


def kill_leftover_workers() -> int:
    """SIGKILL workers still running after a test (only ever ours); returns how many."""
    killed = 0
    while STARTED_WORKERS:
        worker = STARTED_WORKERS.pop()
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()
            killed += 1
    return killed


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------- figures


@dataclass
class FaultRun:
    """One scenario's figures. Nothing is netted out: ``lost_customers`` are customers with
    fewer orders or less spend than the oracle (or missing), ``doubled_customers`` with
    more (or unknown to it), ``wrong_customers`` otherwise different; ``lost_changes`` are
    segment changes a customer's chain misses, ``doubled_changes`` an event id seen again
    with other content or two changes numbered alike, ``change_repeats`` identical repeats
    (harmless). Every one but the repeats must be 0 (``tests/support/checks.py``)."""

    scenario: str
    published: int = 0
    accounted: int = 0  # applied + duplicate + dead-lettered, as rfm:stats counts them
    lost_customers: int = 0
    doubled_customers: int = 0
    wrong_customers: int = 0
    unscored_customers: int = 0  # live orders, never scored
    stale_customers: int = 0  # scored as of a time before one of their purchases
    lost_changes: int = 0
    doubled_changes: int = 0
    change_repeats: int = 0
    out_of_order_customers: int = 0
    recovery_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ok: bool = False

    def record(self) -> None:
        path = os.environ.get("RFM_FAULT_REPORT")
        line = {
            "scenario": self.scenario,
            "published": self.published,
            "accounted": self.accounted,
            "lost_customers": self.lost_customers,
            "doubled_customers": self.doubled_customers,
            "wrong_customers": self.wrong_customers,
            "unscored_customers": self.unscored_customers,
            "stale_customers": self.stale_customers,
            "lost_changes": self.lost_changes,
            "doubled_changes": self.doubled_changes,
            "change_repeats": self.change_repeats,
            "out_of_order_customers": self.out_of_order_customers,
            "recovery_seconds": (
                None if self.recovery_seconds is None else round(self.recovery_seconds, 2)
            ),
            "ok": self.ok,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **self.extra,
        }
        print(f"\nfault figures: {json.dumps(line, default=str)}")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(line, default=str) + "\n")


# ---------------------------------------------------------------------------- publishing


async def _send_all(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> None:
    futures = [await producer.send(topic, value, key=key) for key, value in records]
    await asyncio.gather(*futures)


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=MAX_REQUEST
    )


def produce_records(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> int:
    """Publish in this order, acks=all; unlike the harness, payloads up to 4 MiB pass."""

    async def go() -> None:
        producer = _producer(bootstrap)
        await producer.start()
        try:
            await _send_all(producer, topic, records)
        finally:
            await producer.stop()

    asyncio.run(go())
    return len(records)


def produce_record_batch(
    bootstrap: str, topic: str, partition: int, records: Sequence[tuple[bytes, bytes]]
) -> None:
    """Publish these records as ONE Kafka record batch on one partition, so a consumer
    fetches all of them or none: a test knows they reach the worker in a single batch."""

    async def go() -> None:
        producer = _producer(bootstrap)
        await producer.start()
        try:
            batch = producer.create_batch()
            for key, value in records:
                assert batch.append(key=key, value=value, timestamp=None) is not None, (
                    "records do not fit in one record batch"
                )
            await (await producer.send_batch(batch, topic, partition=partition))
        finally:
            await producer.stop()

    asyncio.run(go())


class PacedPublisher(threading.Thread):
    """Publishes records in chunks with a pause between them, so events keep flowing while
    a scenario kills, starts and stops workers; ``finish()`` publishes the rest at once."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
        chunk: int,
        interval: float,
    ) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.records = bootstrap, topic, records
        self.chunk, self.interval = chunk, interval
        self.sent = 0
        self.error: BaseException | None = None
        self._rush = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # re-raised by finish()
            self.error = exc

    async def _run(self) -> None:
        producer = _producer(self.bootstrap)
        await producer.start()
        try:
            for i in range(0, len(self.records), self.chunk):
                part = self.records[i : i + self.chunk]
                await _send_all(producer, self.topic, part)
                self.sent = i + len(part)
                if not self._rush.is_set():
                    await asyncio.sleep(self.interval)
        finally:
            await producer.stop()

    def finish(self, timeout: float = 120) -> None:
        self._rush.set()
        self.join(timeout)
        if self.error is not None:
            raise self.error
        assert not self.is_alive(), "publisher did not finish"
        assert self.sent == len(self.records), (self.sent, len(self.records))


# ---------------------------------------------------------------------------- observing


def http_get(worker: Worker, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a worker's web endpoint; (0, b"") when nothing answers."""
    url = f"http://127.0.0.1:{worker.env['RFM_WEB_PORT']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except OSError:
        return 0, b""


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    worker: Worker | None = None,
    poll: float = 0.05,
) -> float:
    """Seconds it took until ``predicate()`` held; AssertionError with the log tail if never."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(poll)
    tail = f"\nworker log:\n{worker.log_tail()}" if worker else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")


def kafka_committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """Committed offsets (next to consume) of a consumer group; -1 where none."""

    async def go() -> dict[int, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            out = {}
            for p in range(partitions):
                offset = await consumer.committed(TopicPartition(topic, p))
                out[p] = -1 if offset is None else int(offset)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(go())


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None
