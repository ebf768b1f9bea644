"""Writes to customer state: the two atomic steps of the hot path.

1. ``apply_orders``: one Lua call per batch applies every event (or counts it as a duplicate
   or dead letter) and records the input offsets it covered.
2. ``write_scores``: one Lua call writes scores computed in Python, compare-and-set on the
   version each was computed from, and queues segment changes in the outbox.

A crash between the two leaves the customers in the dirty set, so whoever runs next
rescores them; nothing depends on Kafka redelivering the events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from state.keys import Keys
from state.model import CustomerState, OrderEvent, Rejection, ScoreWrite
from state.reads import to_states
from state.scripts import register


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed Kafka record after validation."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    parsed: OrderEvent | Rejection


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets [start, first) of a partition were never applied; fill them first."""

    partition: int
    start: int
    first: int


class GapError(Exception):
    def __init__(self, gap: Gap) -> None:
        super().__init__(f"partition {gap.partition}: offsets {gap.start}..{gap.first - 1} missing")
        self.gap = gap


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcomes: list[str]  # per record: applied, duplicate, redelivered or dlq:<reason>
    touched: list[str]  # customer ids whose state changed
    clock_ms: int  # the event clock after this batch
    states: list[CustomerState] = field(default_factory=list)  # touched, as left by the batch


class StateStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._apply = register(redis, "apply_orders")
        self._write = register(redis, "write_scores")
        self._quiet = register(redis, "rescore_quiet")

    async def apply_orders(
        self, topic: str, records: Sequence[InputRecord], floors: Mapping[int, int] | None = None
    ) -> ApplyResult:
        """Raises GapError, having applied nothing, when a partition's records start after
        the next offset Redis expects (and after its floor, if one is given)."""
        keys = self.keys
        firsts: dict[str, int] = {}
        for rec in records:
            firsts.setdefault(str(rec.partition), rec.offset)
        meta = {
            "topic": topic,
            "outbox": keys.outbox_prefix,
            "firsts": firsts,
            "floors": {str(p): o for p, o in (floors or {}).items() if str(p) in firsts},
        }
        args: list[bytes | str] = [orjson.dumps(meta)]
        for rec in records:
            args.extend(self._event_args(rec))
        reply = await self._apply(
            keys=[keys.offsets, keys.stats, keys.clock, keys.dirty], args=args
        )
        if reply[0] == b"gap":
            partition, start = int(reply[1]), int(reply[2])
            raise GapError(Gap(partition, start, firsts[str(partition)]))
        outcomes, touched, clock, flat = reply
        ids = [t.decode() for t in touched]
        return ApplyResult(
            outcomes=[o.decode() for o in outcomes],
            touched=ids,
            clock_ms=int(clock),
            states=[s for s in to_states(ids, flat) if s is not None],
        )

    def _event_args(self, rec: InputRecord) -> tuple[bytes, bytes, bytes]:
        event = rec.parsed
        key = rec.key or b""
        if isinstance(event, Rejection):
            desc = [rec.partition, rec.offset, "reject", event.reason, event.message]
            return orjson.dumps(desc), rec.value or b"", key
        desc = [
            rec.partition,
            rec.offset,
            event.kind,
            self.keys.customer(event.customer_id),
            event.customer_id,
            event.order_id,
            str(event.amount_minor),
            str(event.occurred_ms),
            event.refund_id or "",
        ]
        # A purchase can only be applied or be a duplicate: its bytes are never dead-lettered.
        value = b"" if event.kind == "purchase" else rec.value or b""
        return orjson.dumps(desc), value, key

    async def write_scores(self, writes: Sequence[ScoreWrite]) -> list[bool]:
        if not writes:
            return []
        keys = self.keys
        args: list[bytes | str] = [keys.outbox_prefix]
        for w in writes:
            entry = [
                keys.customer(w.customer_id),
                w.customer_id,
                w.expected_version,
                w.scores,
                w.segment,
                w.due_ms,
                w.partition,
            ]
            args.append(orjson.dumps(entry))
            args.append(w.change)
        reply = await self._write(keys=[keys.segments, keys.due, keys.dirty], args=args)
        return [bool(r) for r in reply]

    async def rescore_quiet(self, keys: Sequence[bytes], as_of_ms: int, spec: bytes) -> list[bytes]:
        """Rescore in Redis the customers whose segment stays; returns the others' keys."""
        if not keys:
            return []
        head = len(self.keys.customer_pattern()) - 1  # "P:c:{"
        reply = await self._quiet(
            keys=[self.keys.due, self.keys.dirty, *keys], args=[head, str(as_of_ms), spec]
        )
        return list(reply)

    async def rewind_offset(self, topic: str, partition: int, offset: int) -> None:
        """Forget that offsets after ``offset`` were applied: the partition was recreated."""
        await self.redis.hset(self.keys.offsets, f"{topic}:{partition}", offset)
