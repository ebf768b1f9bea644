"""A fault scenario from start to verdict: its servers, workers and published events, and
the comparison with the independent oracle (``Scenario.verify``, tests/support/checks.py):
first the state and change chains as the order path left them, then after a final
``rfm-stream rescore --as-of T``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from state.keys import Keys
from stream.topics import ensure_topics
from tests.faults.common import (
    FAST_GROUP,
    STARTED_WORKERS,
    FaultRun,
    PacedPublisher,
    header,
    now_ms,
    produce_records,
    wait_for,
)
from tests.reference import MS_PER_DAY, Config, History, fold
from tests.reference.records import iso
from tests.support.checks import Step, check_order_path, check_rescored, rescore
from tests.support.harness import (
    Worker,
    outbox_backlog,
    read_topic,
    rfm_env,
    settings_of,
)
from tests.support.state_reads import applied_offsets
from tests.support.stored import stored_profiles


@dataclass
class Verdict:
    oracle: History
    as_of_ms: int
    stats: dict[str, int]
    order_path: Step  # before the final rescore
    rescored: Step  # after it
    change_repeats: int
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
        return applied_offsets(
            self.redis, self.settings.kafka.orders_topic, self.settings.redis.prefix
        )

    # -- the oracle

    @property
    def config(self) -> Config:
        """The oracle's configuration, from the same environment the workers get."""
        return Config.from_env(self.env)

    def oracle(
        self,
        values: Iterable[bytes | None] | None = None,
        extra_outcomes: dict[str, int] | None = None,
    ) -> History:
        history = fold(self.published if values is None else values, self.config, now_ms())
        for outcome, n in (extra_outcomes or {}).items():
            history.outcomes[outcome] += n
        return history

    def verify(
        self,
        run: FaultRun,
        *,
        oracle: History | None = None,
        as_of_ms: int | None = None,
        expect_change_duplicates: bool | None = False,
        superseded_allowed: bool = False,
    ) -> Verdict:
        """The end of every scenario (all workers stopped): accounting, then state and
        change chains as the order path left them, then a final rescore and the same at its
        as_of, then dead letters; all against the oracle. Records ``run`` either way."""
        history = oracle or self.oracle()
        run.published = len(self.published)
        stats = self.stats()
        run.accounted = sum(v for k, v in stats.items() if k != "redelivered")
        run.extra.setdefault("redelivered", stats.get("redelivered", 0))
        try:
            verdict = self._check(
                run, history, stats, as_of_ms, expect_change_duplicates, superseded_allowed
            )
            run.ok = True
            return verdict
        finally:
            run.record()

    def _check(
        self,
        run: FaultRun,
        history: History,
        stats: dict[str, int],
        as_of_ms: int | None,
        expect_change_duplicates: bool | None,
        superseded_allowed: bool,
    ) -> Verdict:
        # Nothing in flight: no relay holds an outbox (all workers are stopped by now).
        wait_for(lambda: not self.relay_locks(), 40, "relay locks released")
        run.extra["outbox_backlog_at_end"] = self.outbox_backlog()

        # 1. What the order path left, before any rescoring pass repairs anything.
        before = check_order_path(
            self.env, self.redis_url, history, superseded_allowed=superseded_allowed
        )
        _take_figures(run, before)
        assert {k: v for k, v in stats.items() if k != "redelivered"} == {
            k: v for k, v in history.outcomes.items() if v
        }, f"outcome counts {stats} differ from the oracle's {dict(history.outcomes)}"
        before.state.assert_ok("before the final rescore")
        before.chains.assert_ok("before the final rescore")
        assert run.extra["outbox_backlog_at_end"] == 0, "changes left in the outbox"

        # 2. A final rescore as of T, and everything against the oracle at T.
        as_of = as_of_ms if as_of_ms is not None else history.clock_ms + MS_PER_DAY
        rescore(self.env, iso(as_of))
        assert self.outbox_backlog() == 0, "outbox not empty after the final rescore"
        after = check_rescored(
            self.env, self.redis_url, history, as_of, superseded_allowed=superseded_allowed
        )
        _take_figures(run, after, state=False)
        after.state.assert_ok(f"rescored as of {iso(as_of)}")
        after.chains.assert_ok(f"rescored as of {iso(as_of)}")

        repeats = after.chains.repeats
        if expect_change_duplicates is True:
            assert repeats > 0, "expected repeated change events, found none"
        elif expect_change_duplicates is False:
            assert repeats == 0, f"{repeats} repeated change events"
        run.extra["change_events"] = after.changes.records

        dead, dead_dups = self.check_dead_letters(history)
        run.extra["dead_letters"] = dead
        run.extra["dead_letter_duplicates"] = dead_dups
        return Verdict(history, as_of, stats, before, after, repeats, dead, dead_dups)

    def check_dead_letters(self, oracle: History) -> tuple[int, int]:
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


def _take_figures(run: FaultRun, step: Step, state: bool = True) -> None:
    """Per customer (from the order path's state: a rescore changes no order or spend) and
    per event id (from the latest read of the change topic)."""
    if state:
        run.lost_customers = len(set(step.state.lost))
        run.doubled_customers = len(set(step.state.doubled))
        run.wrong_customers = len({w[0] for w in step.state.wrong})
        run.unscored_customers = len(step.state.unscored)
        run.stale_customers = len(step.state.stale)
    else:
        run.extra["wrong_after_rescore"] = len({w[0] for w in step.state.wrong})
    chains = step.chains
    run.lost_changes = len(chains.lost)
    run.doubled_changes = len(chains.doubled)
    run.change_repeats = chains.repeats
    run.out_of_order_customers = len({c for c, _ in chains.out_of_order})
    if chains.superseded or chains.recomputed:
        run.extra["superseded_changes"] = chains.superseded
        run.extra["recomputed_changes"] = chains.recomputed


def customers_as_of(env: dict[str, str], as_of_ms: int) -> set[str]:
    """The customers last scored as of ``as_of_ms`` (``rfm-stream export``)."""
    return {cid for cid, s in stored_profiles(env).items() if s.as_of_ms == as_of_ms}


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
