"""A fault scenario from start to verdict: its servers, workers and published events, and
the final comparison with the batch oracle (``Scenario.verify``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import redis

from state.keys import Keys
from state.model import MS_PER_DAY, iso_utc
from stream.topics import ensure_topics
from tests.faults.common import (
    FAST_GROUP,
    STARTED_WORKERS,
    FaultRun,
    PacedPublisher,
    header,
    now_ms,
    produce_records,
    scoring_context,
    validation_rules,
    wait_for,
)
from tests.support.checks import assert_changes_complete, assert_state_matches, redis_profiles
from tests.support.harness import (
    Worker,
    outbox_backlog,
    read_topic,
    rfm_env,
    run_cli,
    settings_of,
)
from tests.support.oracle import BatchResult, fold
from tests.support.state_reads import all_profiles


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
        self.keys = Keys(self.settings.redis.prefix)
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
        n = produce_records(self.bootstrap, self.settings.kafka.orders_topic, records)
        self.published.extend(v for _, v in records)
        return n

    def paced(
        self, records: Sequence[tuple[bytes | None, bytes | None]], chunk: int, interval: float
    ) -> PacedPublisher:
        """A started background publisher; the records count as published from now on."""
        publisher = PacedPublisher(
            self.bootstrap, self.settings.kafka.orders_topic, records, chunk, interval
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
        return outbox_backlog(self.redis_url, self.settings.redis.prefix)

    def relay_locks(self) -> list[bytes]:
        return list(self.redis.scan_iter(match=f"{self.settings.redis.prefix}:relay-lock:*"))

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
        head = f"{self.settings.kafka.orders_topic}:".encode()
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
        records = read_topic(self.bootstrap, self.settings.kafka.changes_topic)
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
        records = read_topic(self.bootstrap, self.settings.kafka.dlq_topic, timeout=30)
        by_source: dict[str, tuple[bytes | None, list[tuple[str, bytes]]]] = {}
        repeats = 0
        for record in records:
            source = header(record, "rfm.dlq.source")
            assert source and source.startswith(f"{self.settings.kafka.orders_topic}:"), record
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
    held = Counter(s.segment for s in all_profiles(r, keys).values() if s and s.segment)
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
