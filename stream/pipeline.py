"""One batch of order records: validate -> apply -> score -> (outbox).

The pipeline never raises on a bad event or a transient failure: bad events become dead
letters, transient Redis failures are retried until Redis answers, and a bug in the batched
apply is isolated to the event that trips it (stream/isolation.py). Scoring a batch overlaps
applying the next (``submit``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from state.hooks import NO_FAULTS, FaultHooks
from state.model import OrderEvent, now_ms
from state.rescorer import PassResult, Rescorer
from state.store import ApplyResult, Gap, GapError, InputRecord, StateStore
from stream import metrics
from stream.gaps import GapFiller
from stream.isolation import IsolatingApplier, count_redis_error
from stream.retry import retry_transient
from stream.validation import ValidationRules, parse_order

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None  # broker timestamp, for latency metrics


@dataclass(frozen=True, slots=True)
class BatchReport:
    applied: ApplyResult
    scored: PassResult
    records: Sequence[InputRecord]


def report_failures(result: PassResult, cause: str) -> None:
    """Customers a script could not score are a bug or corrupt state: loud, counted, named."""
    if result.failed:
        metrics.SCORING_FAILURES.labels(cause).inc(len(result.failed))
        log.error(
            "%d customers could not be scored (corrupt state or a bug; left as they were), e.g. %s",
            len(result.failed),
            ", ".join(repr(c) for c in result.failed[:5]),
        )


class OrderPipeline:
    def __init__(
        self,
        topic: str,
        rules: ValidationRules,
        store: StateStore,
        rescorer: Rescorer,
        clock: str,
        gaps: GapFiller | None = None,
        hooks: FaultHooks = NO_FAULTS,
    ) -> None:
        self.topic = topic
        self.hooks = hooks
        self.rules = rules
        self.store = store
        self.rescorer = rescorer
        self.clock = clock
        self.next_offsets: dict[int, int] = {}  # partition -> next offset to process, for lag
        self.gaps = gaps
        self.lock = asyncio.Lock()
        # partition -> high watermark the consumer last saw (set by the faust app)
        self.highwater: Callable[[int], int | None] | None = None
        # partition -> offsets below this are handled (after a gap was filled)
        self.floors: dict[int, int] = {}
        self._scoring: asyncio.Future[BatchReport] | None = None
        self.applier = IsolatingApplier(store, topic, self.floors, hooks)

    async def process(self, records: Sequence[RawRecord]) -> BatchReport:
        """Apply a batch and score it."""
        return await (await self.submit(records))

    async def submit(self, records: Sequence[RawRecord]) -> asyncio.Future[BatchReport]:
        """Apply a batch; return once it is applied, with its scoring under way.

        Scoring batch N (Python) then overlaps applying batch N+1 (Redis). Scoring stays in
        batch order, one batch at a time; a customer that batch N+1 changes again fails
        batch N's compare-and-set and is scored with N+1. Acknowledging a batch once it is
        applied is safe: its customers stay in the dirty set until scored, and a worker
        sweeps that set when it starts.
        """
        # One batch or gap fill at a time: a fill must apply its offsets before anything later.
        async with self.lock:
            return await self._submit(records)

    async def settle(self) -> None:
        """Wait for the scoring in flight (before shutdown, and between batches).

        Scoring retries transient failures itself; what it raises is a bug, raised here so
        the worker stops (its customers are still dirty, a restart scores them)."""
        if self._scoring is not None:
            await asyncio.wait([self._scoring])
            self._scoring.result()

    async def fill_committed_gaps(self, group_id: str, partitions: Iterable[int]) -> int:
        """Catch up partitions whose committed offsets are ahead of Redis; returns records."""
        if self.gaps is None:
            return 0
        async with self.lock:
            applied = await self.rescorer.reader.applied_offsets(self.topic)
            found = await self.gaps.committed_gaps(group_id, applied, partitions)
            before = self.gaps.filled
            for gap in found:
                await self._fill(gap)
            return self.gaps.filled - before

    async def _fill(self, gap: Gap) -> None:
        assert self.gaps is not None
        # Scoring still in flight was computed before the refill; let it land first, so the
        # re-announcement below is the last word.
        await self.settle()
        refilled: set[str] = set()

        async def apply(records: Sequence[Any]) -> None:
            report = await self._process(
                [RawRecord(r.partition, r.offset, r.key, r.value, r.timestamp) for r in records]
            )
            refilled.update(report.applied.touched)

        await self.gaps.fill(gap, self.floors, apply)
        if refilled:
            # Changes published from the lost state may contradict the recomputed ones:
            # re-announce every refilled customer so their latest event tells the truth.
            as_of = now_ms() if self.clock == "wall" else await self._event_clock()
            await retry_transient(
                lambda: self.rescorer.rescore_touched(
                    sorted(refilled), as_of, "rescore", announce=True
                ),
                "re-announcing refilled customers",
            )

    async def _event_clock(self) -> int:
        return await self.rescorer.reader.clock_ms() or now_ms()

    async def _process(self, records: Sequence[RawRecord]) -> BatchReport:
        return await (await self._submit(records))

    async def _submit(self, records: Sequence[RawRecord]) -> asyncio.Future[BatchReport]:
        started = time.perf_counter()
        now = now_ms()
        inputs = [
            InputRecord(
                r.partition, r.offset, r.key, r.value, parse_order(r.value, self.rules, now)
            )
            for r in records
        ]
        with metrics.REDIS_SECONDS.labels("apply_orders").time():
            applied = await self._apply(inputs)
            if "redelivered" in applied.outcomes and self.highwater is not None:
                applied = await self._unless_recreated(inputs, applied)
        self.hooks.hit("after_apply")
        as_of = now if self.clock == "wall" else applied.clock_ms
        await self.settle()
        self._scoring = asyncio.ensure_future(
            self._score_batch(records, inputs, applied, as_of, started)
        )
        return self._scoring

    async def _score_batch(
        self,
        records: Sequence[RawRecord],
        inputs: Sequence[InputRecord],
        applied: ApplyResult,
        as_of: int,
        started: float,
    ) -> BatchReport:
        with metrics.REDIS_SECONDS.labels("write_scores").time():
            scored = await self._score(applied, as_of)
        self.hooks.hit("after_score")
        self._observe(records, inputs, applied, scored, started)
        return BatchReport(applied=applied, scored=scored, records=inputs)

    async def _unless_recreated(
        self, inputs: Sequence[InputRecord], applied: ApplyResult
    ) -> ApplyResult:
        """Records taken for redeliveries may be new records of a recreated partition (a
        broker that lost its data, a topic deleted and created again): if the partition's
        log now ends before the offset Redis applied last, it cannot be the same log."""
        assert self.highwater is not None
        stored = await self.rescorer.reader.applied_offsets(self.topic)
        recreated = set()
        for rec, outcome in zip(inputs, applied.outcomes, strict=True):
            highwater = self.highwater(rec.partition)
            last = stored.get(rec.partition, -1)
            if outcome == "redelivered" and highwater is not None and highwater <= last:
                recreated.add(rec.partition)
        if not recreated:
            return applied
        for partition in sorted(recreated):
            first = min(r.offset for r in inputs if r.partition == partition)
            log.error(
                "%s partition %d ends at offset %s but offset %d was applied before: the "
                "topic was recreated or the broker lost its data; applying its records as new",
                self.topic,
                partition,
                self.highwater(partition),
                stored[partition],
            )
            metrics.PARTITIONS_RECREATED.inc()
            await self.store.rewind_offset(self.topic, partition, first - 1)
        again = [r for r in inputs if r.partition in recreated]
        redone = iter((await self._apply(again)).outcomes)
        outcomes = [
            next(redone) if r.partition in recreated else o
            for r, o in zip(inputs, applied.outcomes, strict=True)
        ]
        touched = list(dict.fromkeys([*applied.touched, *self._touched_by(again)]))
        clock = max(applied.clock_ms, await self._event_clock())
        return ApplyResult(outcomes=outcomes, touched=touched, clock_ms=clock)

    @staticmethod
    def _touched_by(records: Sequence[InputRecord]) -> list[str]:
        return [r.parsed.customer_id for r in records if isinstance(r.parsed, OrderEvent)]

    async def _apply(self, inputs: Sequence[InputRecord]) -> ApplyResult:
        while True:
            try:
                return await self.applier.apply(inputs)
            except GapError as exc:
                if self.gaps is None:
                    raise
                await self._fill(exc.gap)

    async def _score(self, applied: ApplyResult, as_of: int) -> PassResult:
        touched = applied.touched
        try:
            return await retry_transient(
                lambda: self.rescorer.rescore_touched(touched, as_of, "order"),
                "scoring a batch",
                on_retry=count_redis_error("write_scores"),
            )
        except Exception:
            # The customers stay in the dirty set; the periodic sweep scores them later.
            log.exception("scoring %d customers failed; left for the next sweep", len(touched))
            return PassResult(as_of_ms=as_of, examined=len(touched))

    def _observe(
        self,
        records: Sequence[RawRecord],
        inputs: Sequence[InputRecord],
        applied: ApplyResult,
        scored: PassResult,
        started: float,
    ) -> None:
        metrics.BATCHES.labels(self.topic).inc()
        metrics.count_outcomes(self.topic, applied.outcomes)
        metrics.count_transitions(scored.transitions)
        metrics.CUSTOMERS_RESCORED.labels("order").inc(scored.rescored)
        report_failures(scored, "order")
        metrics.CONSUMED_TO_APPLIED.observe(time.perf_counter() - started)
        wall = now_ms()
        event_ages: list[float] = []
        publish_ages: list[float] = []
        for raw, rec, outcome in zip(records, inputs, applied.outcomes, strict=True):
            if outcome != "applied":
                continue
            if isinstance(rec.parsed, OrderEvent):
                event_ages.append(max(0, wall - rec.parsed.occurred_ms) / 1000)
            if raw.timestamp_ms:
                publish_ages.append(max(0, wall - raw.timestamp_ms) / 1000)
        for raw in records:
            self.next_offsets[raw.partition] = raw.offset + 1
        metrics.observe_all(metrics.EVENT_TO_APPLIED, event_ages)
        metrics.observe_all(metrics.PUBLISH_TO_APPLIED, publish_ages)
