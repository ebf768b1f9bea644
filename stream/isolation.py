"""Applying a batch so that a bug loses nothing: retry, then isolate, then dead-letter.

Transient Redis failures are retried until Redis answers. If the batched apply still fails
(a bug tripped by some event), the batch is applied one event at a time, so only the event
that trips it is dead-lettered (reason ``internal_error``). If even the dead letter cannot be
written, the process stops hard without acknowledging anything, so the events are delivered
again after a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from state.hooks import NO_FAULTS, FaultHooks
from state.model import OrderEvent, Rejection
from state.store import ApplyResult, GapError, InputRecord, StateStore
from stream import metrics
from stream.retry import retry_transient

log = logging.getLogger(__name__)
EXIT_UNRECOVERABLE = 70


def count_redis_error(operation: str) -> Callable[[BaseException], None]:
    def count(exc: BaseException) -> None:
        metrics.REDIS_ERRORS.labels(operation, type(exc).__name__).inc()

    return count


class IsolatingApplier:
    def __init__(
        self,
        store: StateStore,
        topic: str,
        floors: dict[int, int],
        hooks: FaultHooks = NO_FAULTS,
    ) -> None:
        self.store = store
        self.topic = topic
        self.floors = floors  # shared with the pipeline: offsets below are handled
        self.hooks = hooks

    async def apply(self, inputs: Sequence[InputRecord]) -> ApplyResult:
        """Raises only GapError (Redis lost writes: the caller refills and retries)."""
        try:
            return await retry_transient(
                lambda: self._apply_checked(inputs),
                "applying a batch",
                on_retry=count_redis_error("apply_orders"),
            )
        except GapError:
            raise
        except Exception:
            log.exception("batch apply failed; isolating the event that fails")
        outcomes: list[str] = []
        touched: list[str] = []
        clock = 0
        for rec in inputs:
            one = await self._apply_one(rec)
            outcomes.extend(one.outcomes)
            touched.extend(t for t in one.touched if t not in touched)
            clock = max(clock, one.clock_ms)
        return ApplyResult(outcomes=outcomes, touched=touched, clock_ms=clock)

    async def _apply_checked(self, inputs: Sequence[InputRecord]) -> ApplyResult:
        self.hooks.hit_order(r.parsed.order_id for r in inputs if isinstance(r.parsed, OrderEvent))
        return await self.store.apply_orders(self.topic, inputs, self.floors, with_states=False)

    async def _apply_one(self, rec: InputRecord) -> ApplyResult:
        # The batch passed the gap check; holes inside it (transaction markers) are not gaps.
        self.floors[rec.partition] = max(self.floors.get(rec.partition, 0), rec.offset)
        try:
            return await retry_transient(lambda: self._apply_checked([rec]), "applying an event")
        except Exception as exc:
            log.exception("event at %s:%d:%d fails to apply", self.topic, rec.partition, rec.offset)
            failed = InputRecord(
                rec.partition,
                rec.offset,
                rec.key,
                rec.value,
                Rejection("internal_error", f"processing failed: {type(exc).__name__}: {exc}"),
            )
        try:
            return await retry_transient(
                lambda: self.store.apply_orders(self.topic, [failed]), "dead-lettering an event"
            )
        except Exception:
            log.critical("cannot even dead-letter an event; stopping without acknowledging it")
            logging.shutdown()
            os._exit(EXIT_UNRECOVERABLE)
