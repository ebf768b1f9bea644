"""Shared parts of the fault-injection scenarios.

Every scenario publishes a known, deterministic set of events, injects its fault, and ends
with ``Scenario.verify``: the input accounting (applied + duplicate + dead-lettered =
published, per outcome equal to a batch fold of the published events), a final
``rfm-stream rescore --as-of T``, the state of every customer against the batch result,
the chain of segment changes on the topic (deduplicated by event_id) and the dead letters.

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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from state.changes import ScoringContext
from state.keys import Keys
from state.model import MS_PER_DAY, iso_utc
from state.scoring import ThresholdScorer
from state.segments import load_segment_rules
from stream.settings import Settings
from stream.topics import ensure_topics
from stream.validation import ValidationRules
from tests.support.checks import assert_changes_complete, assert_state_matches, redis_profiles
from tests.support.harness import Worker, read_topic, rfm_env, run_cli, settings_of
from tests.support.oracle import BatchResult, fold

START = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)
# Group timings short enough that a SIGKILLed member is evicted in seconds, not tens of them.
FAST_GROUP = {
    "RFM_SESSION_TIMEOUT": "4",
    "RFM_HEARTBEAT_INTERVAL": "0.5",
    "RFM_REBALANCE_TIMEOUT": "3",
}
MAX_REQUEST = 4 * 1024 * 1024
FIXED_KEYS = ("offsets", "stats", "clock", "dirty", "due", "segments", "quintiles", "rescore")


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
    """One scenario's figures; ``lost`` and ``doubled`` count input events and must be 0."""

    scenario: str
    published: int = 0
    lost: int = 0
    doubled: int = 0
    recovery_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ok: bool = False

    def record(self) -> None:
        path = os.environ.get("RFM_FAULT_REPORT")
        line = {
            "scenario": self.scenario,
            "published": self.published,
            "lost": self.lost,
            "doubled": self.doubled,
            "recovery_seconds": (
                None if self.recovery_seconds is None else round(self.recovery_seconds, 2)
            ),
            "ok": self.ok,
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


def scoring_context(settings: Settings) -> ScoringContext:
    return ScoringContext(
        ThresholdScorer(settings.thresholds),
        load_segment_rules(settings.segments),
        settings.currency,
        settings.exponent,
    )


def validation_rules(settings: Settings) -> ValidationRules:
    """The rules the worker validates with (stream.runtime builds them the same way)."""
    return ValidationRules(
        currencies=settings.currencies, max_future_skew_ms=int(settings.max_future_skew * 1000)
    )


# ---------------------------------------------------------------------------- scenario


@dataclass
class Verdict:
    oracle: BatchResult
    as_of_ms: int
    stats: dict[str, int]
    change_duplicates: int
    changes: int
    dead_letters: int
    dead_letter_duplicates: int


class Scenario:
    """One scenario: its topics, consumer group, Redis, the events it published, workers."""

    def __init__(
        self,
        kafka_bootstrap: str,
        redis_url: str,
        topic_prefix: str,
        workdir: Path,
        *,
        client_url: str | None = None,
        **extra_env: str,
    ) -> None:
        self.bootstrap = kafka_bootstrap
        # The test's own Redis clients use client_url when given (e.g. with a CA for TLS).
        self.redis_url = client_url or redis_url
        self.workdir = workdir
        self.env = rfm_env(
            kafka_bootstrap,
            redis_url,
            topic_prefix,
            workdir,
            **{"RFM_CLOCK": "event", "RFM_BATCH_SIZE": "200", **FAST_GROUP, **extra_env},
        )
        self.settings = settings_of(self.env)
        self.keys = Keys(self.settings.redis_prefix)
        self.published: list[bytes | None] = []
        self._workers = 0
        # Topics with the configured partitions before anything is published (a producer
        # would otherwise auto-create the input topic with the broker's default).
        asyncio.run(ensure_topics(self.settings))

    # -- clients and events

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def publish(self, records: Sequence[tuple[bytes | None, bytes | None]]) -> int:
        n = produce_records(self.bootstrap, self.settings.orders_topic, records)
        self.published.extend(v for _, v in records)
        return n

    def paced(
        self, records: Sequence[tuple[bytes | None, bytes | None]], chunk: int, interval: float
    ) -> PacedPublisher:
        """A started background publisher; the records count as published from now on."""
        publisher = PacedPublisher(
            self.bootstrap, self.settings.orders_topic, records, chunk, interval
        )
        self.published.extend(v for _, v in records)
        publisher.start()
        return publisher

    def worker(self, name: str | None = None, **extra_env: str) -> Worker:
        self._workers += 1
        log = self.workdir / f"{name or f'worker{self._workers}'}.log"
        worker = Worker({**self.env, **extra_env}, log)
        STARTED_WORKERS.append(worker)
        return worker

    def stats(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self.keys.stats))
        return {k.decode(): int(v) for k, v in raw.items()}

    def accounted(self) -> int:
        return sum(v for k, v in self.stats().items() if k != "redelivered")

    def outbox_backlog(self) -> int:
        r = self.redis
        return sum(int(r.xlen(self.keys.outbox(p))) for p in range(self.settings.partitions))

    def relay_locks(self) -> list[bytes]:
        return list(self.redis.scan_iter(match=f"{self.settings.redis_prefix}:relay-lock:*"))

    def wait_accounted(self, worker: Worker | None, timeout: float = 120) -> float:
        total = len(self.published)
        return wait_for(
            lambda: self.accounted() >= total,
            timeout,
            f"all {total} events accounted (at {self.accounted()})",
            worker,
        )

    def wait_relayed(self, worker: Worker | None, timeout: float = 60) -> float:
        return wait_for(lambda: self.outbox_backlog() == 0, timeout, "outbox relayed", worker)

    def applied_offsets(self) -> dict[int, int]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self.keys.offsets))
        head = f"{self.settings.orders_topic}:".encode()
        return {int(k[len(head) :]): int(v) for k, v in raw.items() if k.startswith(head)}

    # -- the oracle

    def oracle(
        self,
        values: Iterable[bytes | None] | None = None,
        extra_outcomes: dict[str, int] | None = None,
    ) -> BatchResult:
        result = fold(
            self.published if values is None else values,
            validation_rules(self.settings),
            now_ms(),
        )
        for outcome, n in (extra_outcomes or {}).items():
            result.outcomes[outcome] += n
        return result

    def verify(
        self,
        run: FaultRun,
        *,
        oracle: BatchResult | None = None,
        as_of_ms: int | None = None,
        expect_change_duplicates: bool | None = False,
        superseded_allowed: bool = False,
    ) -> Verdict:
        """The end of every scenario (all workers stopped): accounting, rescore, state,
        changes and dead letters against the batch result. Records ``run`` either way."""
        oracle = oracle or self.oracle()
        run.published = len(self.published)
        stats = self.stats()
        accounted = sum(v for k, v in stats.items() if k != "redelivered")
        run.lost = max(0, run.published - accounted)
        run.doubled = max(0, accounted - run.published)
        run.extra.setdefault("redelivered", stats.get("redelivered", 0))
        try:
            verdict = self._check(
                run, oracle, stats, as_of_ms, expect_change_duplicates, superseded_allowed
            )
            run.ok = True
            return verdict
        finally:
            run.record()

    def _check(
        self,
        run: FaultRun,
        oracle: BatchResult,
        stats: dict[str, int],
        as_of_ms: int | None,
        expect_change_duplicates: bool | None,
        superseded_allowed: bool = False,
    ) -> Verdict:
        assert run.lost == 0 and run.doubled == 0, (run.published, stats)
        assert {k: v for k, v in stats.items() if k != "redelivered"} == {
            k: v for k, v in oracle.outcomes.items() if v
        }, "outcome counts differ from the batch fold"

        # Nothing stuck: no relay holds an outbox (all workers are stopped by now).
        wait_for(lambda: not self.relay_locks(), 40, "relay locks released")
        as_of = as_of_ms if as_of_ms is not None else oracle.clock_ms + MS_PER_DAY
        done = run_cli(self.env, "rescore", "--as-of", iso_utc(as_of))
        assert done.returncode == 0, done.stderr[-3000:]
        assert self.outbox_backlog() == 0, "outbox not empty after the final rescore"

        ctx = scoring_context(self.settings)
        assert_state_matches(self.redis_url, oracle, ctx, as_of)
        assert_segment_counts_consistent(self.redis_url, self.keys)

        expected = oracle.expected(ctx, as_of)
        records = read_topic(self.bootstrap, self.settings.changes_topic)
        strangers = {orjson.loads(r.value)["customer_id"] for r in records} - set(expected)
        assert not strangers, f"changes for customers the events never named: {strangers}"
        duplicates = assert_changes_complete(
            self.redis_url,
            records,
            {c: cast(str | None, e[-1]) for c, e in expected.items()},
            superseded_allowed=superseded_allowed,
        )
        if expect_change_duplicates is True:
            assert duplicates > 0, "expected repeated change events, found none"
        elif expect_change_duplicates is False:
            assert duplicates == 0, f"{duplicates} repeated change events"
        run.extra["change_events"] = len(records)
        run.extra["change_duplicates"] = duplicates

        dead, dead_dups = self.check_dead_letters(oracle)
        run.extra["dead_letters"] = dead
        run.extra["dead_letter_duplicates"] = dead_dups
        return Verdict(oracle, as_of, stats, duplicates, len(records), dead, dead_dups)

    def check_dead_letters(self, oracle: BatchResult) -> tuple[int, int]:
        """One dead letter per rejected input (dedupe by source), each with a reason and
        message; repeats of one source must be identical. Returns (distinct, repeats)."""
        expected = Counter({k[4:]: v for k, v in oracle.outcomes.items() if k.startswith("dlq:")})
        total = sum(expected.values())
        records = read_topic(self.bootstrap, self.settings.dlq_topic, timeout=30)
        by_source: dict[str, tuple[bytes | None, list[tuple[str, bytes]]]] = {}
        repeats = 0
        for record in records:
            source = header(record, "rfm.dlq.source")
            assert source and source.startswith(f"{self.settings.orders_topic}:"), record
            assert header(record, "rfm.dlq.reason"), record
            assert header(record, "rfm.dlq.message"), record
            content = (record.value, sorted(record.headers))
            if source in by_source:
                assert by_source[source] == content, f"dead letter {source} differs on repeat"
                repeats += 1
            by_source[source] = content
        got = Counter(dict(headers)["rfm.dlq.reason"].decode() for _, headers in by_source.values())
        assert got == expected, f"dead letters {dict(got)} != {dict(expected)}"
        assert len(by_source) == total
        return total, repeats


def assert_segment_counts_consistent(redis_url: str, keys: Keys) -> None:
    """P:segments agrees with the segment held by every customer hash."""
    r = redis.Redis.from_url(redis_url)
    held: Counter[str] = Counter()
    for key in r.scan_iter(match=keys.customer_pattern(), count=1000, _type="hash"):
        segment = cast(bytes | None, r.hget(key, "g"))
        if segment:
            held[segment.decode()] += 1
    raw = cast(dict[bytes, bytes], r.hgetall(keys.segments))
    counted = {k.decode(): int(v) for k, v in raw.items() if int(v) != 0}
    assert counted == dict(held), f"segment counters {counted} != customers {dict(held)}"


def profiles_with_as_of(redis_url: str, customer_ids: Sequence[str], as_of_ms: int) -> int:
    """How many of these customers were last scored as of ``as_of_ms``."""
    return sum(
        1
        for s in redis_profiles(redis_url, customer_ids).values()
        if s is not None and s.as_of_ms == as_of_ms
    )


def snapshot(redis_url: str, prefix: str = "rfm") -> dict[bytes, Any]:
    """Every key of ours with its full content, for byte-for-byte comparisons."""
    r = redis.Redis.from_url(redis_url)
    out: dict[bytes, Any] = {}
    for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        kind = cast(bytes, r.type(key))
        if kind == b"hash":
            out[key] = ("hash", r.hgetall(key))
        elif kind == b"string":
            out[key] = ("string", r.get(key))
        elif kind == b"set":
            out[key] = ("set", r.smembers(key))
        elif kind == b"zset":
            out[key] = ("zset", r.zrange(key, 0, -1, withscores=True))
        elif kind == b"stream":
            out[key] = ("stream", r.xrange(key))
        else:
            out[key] = (kind.decode(), None)
    return out
