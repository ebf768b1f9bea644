"""Rescoring customers: by id (after orders), by due time (recency) and in full passes.

Two routes with one result (tests/integration/test_rescore_in_redis.py): in Redis
(``rescore_in_redis.lua``: read, score, write and queue the change event in one atomic
step) for the known scorers, the hot path and the passes; or here (``state.changes``), read
first and written back with compare-and-set, for announcements after lost writes and any
other scorer. Either way the hot path, the periodic job and ``rfm-stream rescore`` can all
run at once: a result computed from stale state is never written.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from redis.asyncio import Redis

from state.cancellation import raise_if_cancelled
from state.changes import Cause, ScoringContext, plan_write, scoring_spec
from state.hooks import NO_FAULTS, FaultHooks
from state.keys import BUCKETS, Keys
from state.model import CustomerState, History
from state.population import Population, PopulationCounter
from state.reads import StateReader
from state.scoring import QuintileBoundaries, QuintileScorer, Scorer
from state.scripts import register
from state.segments import SegmentRules
from state.store import InRedis, StateStore

BATCH = 1000
BUCKETS_PER_CALL = 64  # ~1,000 customers a script call at a million customers
T = TypeVar("T")  # what one script call over a chunk of buckets returns


@dataclass
class PassResult:
    as_of_ms: int
    examined: int = 0
    rescored: int = 0
    changes: int = 0
    seconds: float = 0.0
    kind: str = "due"
    partitions: set[int] = field(default_factory=set)  # outboxes that got changes
    transitions: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # not written: changed meanwhile
    # Not written: their stored state could not be scored (corrupt, or a bug). They keep
    # their last scores; a full pass or their next order tries them again.
    failed: list[str] = field(default_factory=list)

    def add(self, other: PassResult) -> None:
        self.examined += other.examined
        self.rescored += other.rescored
        self.changes += other.changes
        self.partitions |= other.partitions
        self.transitions.update(other.transitions)
        self.lost.extend(other.lost)
        self.failed.extend(other.failed)


class ScoringContexts:
    """Builds the scoring context; in quintile mode from the boundaries stored by the last
    full pass (thresholds until the first pass has run)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        mode: str,
        thresholds_scorer: Scorer,
        rules: SegmentRules,
        currency: str,
        exponent: int,
        history: History | None = None,
    ) -> None:
        self.redis, self.keys, self.mode = redis, keys, mode
        self.history = history or History()
        self._thresholds = ScoringContext(
            thresholds_scorer, rules, currency, exponent, self.history
        )
        self._cached: tuple[bytes, ScoringContext] | None = None
        self._register = register(redis, "register_segments")
        self._registered = False

    async def current(self) -> ScoringContext:
        if not self._registered:
            names = sorted(set(self._thresholds.rules.table) - {""})
            keys = self.keys
            await self._register(keys=[keys.segment_codes, keys.layout, keys.offsets], args=names)
            self._registered = True
        if self.mode != "quintiles":
            return self._thresholds
        raw = cast(bytes | None, await self.redis.get(self.keys.quintiles))
        if raw is None:
            return self._thresholds
        if self._cached is None or self._cached[0] != raw:
            scorer = QuintileScorer(QuintileBoundaries.from_json(raw))
            self._cached = (raw, self.with_scorer(scorer))
        return self._cached[1]

    def with_scorer(self, scorer: Scorer) -> ScoringContext:
        t = self._thresholds
        return ScoringContext(scorer, t.rules, t.currency, t.exponent, t.history)


class Rescorer:
    def __init__(
        self,
        store: StateStore,
        reader: StateReader,
        contexts: ScoringContexts,
        hooks: FaultHooks = NO_FAULTS,
    ) -> None:
        self.store, self.reader, self.contexts = store, reader, contexts
        self.hooks = hooks
        self.enumerate_from_keys = BUCKETS  # Redis keys from which passes list buckets
        self.population = PopulationCounter(
            store.redis, store.history.window_days, store.keys.orders_head
        )

    async def rescore_ids(
        self,
        ids: Sequence[str],
        as_of_ms: int,
        cause: Cause,
        context: ScoringContext | None = None,
        announce: bool = False,
    ) -> PassResult:
        if not ids:
            return PassResult(as_of_ms=as_of_ms)
        states = [s for s in await self.reader.customers(ids) if s is not None]
        return await self.rescore_states(states, as_of_ms, cause, context, announce)

    async def rescore_states(
        self,
        states: Sequence[CustomerState],
        as_of_ms: int,
        cause: Cause,
        context: ScoringContext | None = None,
        announce: bool = False,
    ) -> PassResult:
        """Score states just read (by a script that already returned them): a state that
        has changed since is left alone by the compare-and-set write."""
        result = PassResult(as_of_ms=as_of_ms, examined=len(states))
        if not states:
            return result
        ctx = context or await self.contexts.current()
        if ctx.history.window_days > 0:
            # plan_write scores whole histories; windows are only scored in Redis.
            raise ValueError("the Python scoring route knows no window: RFM_WINDOW_DAYS=0")
        writes = [plan_write(s, ctx, as_of_ms, cause, announce) for s in states]
        written = await self.store.write_scores(writes)
        for state, w, outcome in zip(states, writes, written, strict=True):
            if outcome == "changed":
                result.lost.append(state.customer_id)
            elif outcome == "failed":
                result.failed.append(state.customer_id)
            else:
                result.rescored += 1
                if w.change:
                    result.changes += 1
                    result.partitions.add(w.partition)
                    result.transitions[(state.segment, w.segment or None)] += 1
        return result

    async def rescore_touched(
        self, ids: Sequence[str], as_of_ms: int, cause: Cause = "order", announce: bool = False
    ) -> PassResult:
        """Customers whose orders changed: scored in Redis when the scorer allows
        (rescore_in_redis.lua, no read back, nothing to lose to a compare-and-set), else
        here. Same result either way (tests/integration/test_rescore_in_redis.py).
        ``announce`` queues a change for each even where the segment stays."""
        ctx = await self.contexts.current()
        spec = scoring_spec(ctx)
        if spec is None:
            return await self.rescore_ids(ids, as_of_ms, cause, ctx, announce)
        done = await self.store.rescore_ids_in_redis(as_of_ms, cause, spec, ids, announce)
        return _result(as_of_ms, done)

    async def sweep_dirty(self, as_of: Callable[[], Awaitable[int]]) -> PassResult:
        """Rescore customers an earlier process changed but did not get to score."""
        total = PassResult(as_of_ms=0, kind="dirty")
        for _ in range(10_000):
            raise_if_cancelled()
            ids = await self.reader.dirty_ids(BATCH)
            if not ids:
                break
            total.as_of_ms = await as_of()
            step = await self.rescore_touched(ids, total.as_of_ms, "order")
            total.add(step)
            if step.rescored == 0:
                break  # all lost to concurrent writers, who will score them
        return total

    async def due_pass(self, as_of_ms: int, in_redis: bool = True) -> PassResult:
        """Rescore only customers whose R score can have dropped by ``as_of``."""
        started = time.perf_counter()
        total = PassResult(as_of_ms=as_of_ms, kind="due")
        ctx = await self.contexts.current()
        spec = scoring_spec(ctx) if in_redis else None
        seen: set[str] = set()
        after: int | None = None
        while True:
            raise_if_cancelled()  # redis-py can drop one (state/cancellation.py)
            if spec is None:
                chunk = await self.store.due_take(as_of_ms, after, BATCH)
                ids = [i for i in chunk.ids if i not in seen]
                seen.update(ids)
                step = await self.rescore_ids(ids, as_of_ms, "recency", ctx)
                hours = chunk.hours
            else:
                done = await self.store.rescore_due(as_of_ms, "recency", spec, after, BATCH)
                step, hours = _result(as_of_ms, done), done.hours
            if not hours:
                break
            after = hours[-1][0]
            total.add(step)
            await self.store.due_retire(as_of_ms, hours, step.lost)
            self.hooks.hit("rescore_midway")
        total.seconds = time.perf_counter() - started
        return total

    async def full_pass(
        self,
        as_of_ms: int,
        cause: Cause = "rescore",
        in_redis: bool = True,
        clock_ms: int | None = None,
    ) -> PassResult:
        """Rescore everyone; in quintile mode first recompute the boundaries. ``in_redis``
        scores in Redis (rescore_in_redis.lua) instead of here, with the same result
        (tests/integration/test_rescore_in_redis.py). ``clock_ms`` (default ``as_of_ms``)
        is the clock the order retention is measured by, for a pass as of another time."""
        started = time.perf_counter()
        total = PassResult(as_of_ms=as_of_ms, kind="full")
        ctx = await self.contexts.current()
        if self.contexts.mode == "quintiles":
            ctx = await self._recompute_quintiles(as_of_ms)
        spec = scoring_spec(ctx) if in_redis else None
        if spec is None:
            async for ids in self.reader.scan_customer_ids(BATCH):
                total.add(await self.rescore_ids(ids, as_of_ms, cause, ctx))
                self.hooks.hit("rescore_midway")
        else:
            await self._buckets_in_redis(as_of_ms, cause, spec, total, clock_ms)
        total.seconds = time.perf_counter() - started
        return total

    async def _buckets_in_redis(
        self, as_of_ms: int, cause: Cause, spec: bytes, total: PassResult, clock_ms: int | None
    ) -> None:
        def take(done: InRedis) -> None:
            total.add(_result(as_of_ms, done))
            self.hooks.hit("rescore_midway")

        await self._each_chunk(
            lambda buckets: self.store.rescore_buckets(as_of_ms, cause, spec, buckets, clock_ms),
            take,
        )

    async def _each_chunk(
        self, call: Callable[[list[bytes]], Awaitable[T]], take: Callable[[T], None]
    ) -> None:
        """One script call per chunk of buckets, the next one sent before the last reply
        is read: Redis runs them one after the other either way, but it need not wait while
        this process reads replies (at 200,000 customers Redis was busy 4.0 s and Python
        1.8 s of a 5.7 s pass, never at the same time). Two calls never interleave: each is
        one script, which Redis runs whole."""
        in_flight: list[asyncio.Future[T]] = []
        try:
            async for buckets in self._bucket_chunks():
                raise_if_cancelled()  # redis-py can drop one (state/cancellation.py)
                in_flight.append(asyncio.ensure_future(call(buckets)))
                if len(in_flight) > 1:
                    take(await in_flight.pop(0))
            while in_flight:
                take(await in_flight.pop(0))
        finally:
            for unread in in_flight:
                unread.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _bucket_chunks(self) -> AsyncIterator[list[bytes]]:
        """Every profile bucket, BUCKETS_PER_CALL at a time. A large store lists them all
        by number, not by SCAN: SCAN's replies, queued behind the script running, left Redis
        idle until the next call came (2,053 SCAN calls at a million customers); a missing
        bucket costs a script about a microsecond, but 1,024 calls cost an empty store ~1 s,
        so a store with fewer keys than buckets is scanned."""
        if await self.store.redis.dbsize() < self.enumerate_from_keys:
            async for found in self.reader.scan_buckets(BUCKETS_PER_CALL):
                yield found
            return
        keys = self.store.keys
        for lo in range(0, BUCKETS, BUCKETS_PER_CALL):
            numbers = range(lo, min(lo + BUCKETS_PER_CALL, BUCKETS))
            yield [keys.profiles(n).encode() for n in numbers]

    async def _recompute_quintiles(self, as_of_ms: int) -> ScoringContext:
        population = Population()
        await self._each_chunk(
            lambda buckets: self.population.count(as_of_ms, buckets), population.add
        )
        if not population.size:
            return await self.contexts.current()
        boundaries = population.boundaries()
        await self.store.redis.set(self.store.keys.quintiles, boundaries.to_json())
        return self.contexts.with_scorer(QuintileScorer(boundaries))


def _result(as_of_ms: int, done: InRedis) -> PassResult:
    return PassResult(
        as_of_ms=as_of_ms,
        examined=done.examined,
        rescored=done.examined - len(done.failed),
        changes=done.changes,
        partitions=done.partitions,
        transitions=done.transitions,
        failed=done.failed,
    )
