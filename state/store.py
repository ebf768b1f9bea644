"""Writes to customer state: the two atomic steps of the hot path.

1. ``apply_orders``: one Lua call per batch applies every event (or counts it as a duplicate
   or dead letter) and records the input offsets it covered.
2. ``rescore_ids_in_redis``: one Lua call scores the touched customers, writes scores and
   segments and queues segment changes in the outbox (``write_scores`` does the same for
   scores computed in Python, compare-and-set on the version each was computed from).

A crash between the two leaves the customers in the dirty set, so whoever runs next
rescores them; nothing depends on Kafka redelivering the events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson
from redis.asyncio import Redis

from state.keys import Keys, bucket_of
from state.model import CustomerState, History, OrderEvent, Rejection, ScoreWrite, now_ms
from state.reads import to_states
from state.scripts import register

MAX_MS = 2**62  # later than any event time


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


@dataclass(frozen=True, slots=True)
class DueChunk:
    """What one due_take call read: (hour, list length) pairs and the due customers."""

    hours: list[tuple[int, int]]
    ids: list[str]


WriteResult = Literal["written", "changed", "failed"]
WRITE_RESULTS: dict[int, WriteResult] = {1: "written", 0: "changed", -1: "failed"}


@dataclass(frozen=True, slots=True)
class InRedis:
    """What rescore_in_redis.lua did, and the due lists it read (a due pass)."""

    examined: int
    changes: int
    partitions: set[int]
    transitions: Counter[tuple[str | None, str | None]]  # (previous, new) -> how many
    hours: list[tuple[int, int]]
    failed: list[str] = field(default_factory=list)  # state the script could not score


class StateStore:
    def __init__(self, redis: Redis, keys: Keys, history: History | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.history = history or History()
        self._apply = register(redis, "apply_orders")
        self._write = register(redis, "write_scores")
        self._rescore = register(redis, "rescore_in_redis")
        self._due_take = register(redis, "due_take")
        self._due_retire = register(redis, "due_retire")

    async def apply_orders(
        self,
        topic: str,
        records: Sequence[InputRecord],
        floors: Mapping[int, int] | None = None,
        with_states: bool = True,
    ) -> ApplyResult:
        """Raises GapError, having applied nothing, when a partition's records start after
        the next offset Redis expects (and after its floor, if one is given). The touched
        customers' profiles come back only ``with_states`` (the hot path scores in Redis)."""
        keys, history = self.keys, self.history
        firsts: dict[str, int] = {}
        for rec in records:
            firsts.setdefault(str(rec.partition), rec.offset)
        meta: dict[str, object] = {
            "topic": topic,
            "outbox": keys.outbox_prefix,
            "firsts": firsts,
            "floors": {str(p): o for p, o in (floors or {}).items() if str(p) in firsts},
            "states": with_states,
            "window_days": history.window_days,
            "retention_ms": history.retention_ms,
        }
        # The script dead-letters an event older than the retention by this clock (too_old),
        # so it gets the bytes of every event it may dead-letter.
        too_old_before: int | None = None
        if history.retention_days > 0:
            if history.event_clock:
                too_old_before = MAX_MS  # the event clock is only known in the script
            else:
                meta["now"] = now = now_ms()
                too_old_before = now - history.retention_ms + 1
        args: list[bytes | str] = [orjson.dumps(meta)]
        for rec in records:
            args.extend(self._event_args(rec, too_old_before))
        reply = await self._apply(
            keys=[
                keys.offsets,
                keys.stats,
                keys.clock,
                keys.dirty,
                keys.segment_codes,
                keys.layout,
                keys.outboxes,
                keys.seq_floor,
                keys.partition_clocks,
            ],
            args=args,
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
            states=[s for s in to_states(ids, flat) if s is not None] if with_states else [],
        )

    def _event_args(
        self, rec: InputRecord, too_old_before: int | None
    ) -> tuple[bytes, bytes, bytes]:
        event = rec.parsed
        key = rec.key or b""
        if isinstance(event, Rejection):
            desc = [rec.partition, rec.offset, "reject", event.reason, event.message]
            return orjson.dumps(desc), rec.value or b"", key
        bucket = bucket_of(event.customer_id)
        desc = [
            rec.partition,
            rec.offset,
            event.kind,
            self.keys.profiles(bucket),
            self.keys.orders(bucket),
            event.customer_id,
            event.order_id,
            str(event.amount_minor),
            str(event.occurred_ms),
            event.refund_id or "",
        ]
        # A purchase can only be applied, be a duplicate or be too old: its bytes are only
        # sent where it may be dead-lettered.
        may_be_too_old = too_old_before is not None and event.occurred_ms < too_old_before
        value = b"" if event.kind == "purchase" and not may_be_too_old else rec.value or b""
        return orjson.dumps(desc), value, key

    async def write_scores(self, writes: Sequence[ScoreWrite]) -> list[WriteResult]:
        """Per write: ``written``, ``changed`` (compare-and-set lost) or ``failed`` (the
        customer's stored state could not be read: left as it was)."""
        if not writes:
            return []
        keys = self.keys
        args: list[bytes | str] = [keys.outbox_prefix, keys.due_head]
        for w in writes:
            bucket = bucket_of(w.customer_id)
            entry = [
                keys.profiles(bucket),
                bucket,
                w.customer_id,
                w.expected_version,
                w.scores,
                w.segment,
                w.due_ms,
                w.as_of_ms,
            ]
            args.append(orjson.dumps(entry))
            args.append(w.change)
        reply = await self._write(
            keys=[keys.segments, keys.dirty, keys.due_hours, keys.segment_codes, keys.outboxes],
            args=args,
        )
        return [WRITE_RESULTS[int(r)] for r in reply]

    async def rescore_buckets(
        self,
        as_of_ms: int,
        cause: str,
        spec: bytes,
        buckets: Sequence[bytes],
        clock_ms: int | None = None,
    ) -> InRedis:
        """Rescore every customer of these buckets in Redis (rescore_in_redis.lua);
        order records are past the retention by ``clock_ms`` (default: ``as_of_ms``)."""
        if not buckets:
            return InRedis(0, 0, set(), Counter(), [])
        return await self._in_redis(
            as_of_ms, cause, spec, list(buckets), ["buckets"], clock_ms=clock_ms
        )

    async def rescore_ids_in_redis(
        self, as_of_ms: int, cause: str, spec: bytes, ids: Sequence[str], announce: bool = False
    ) -> InRedis:
        """Rescore these customers in Redis (rescore_in_redis.lua); ``announce`` queues a
        change for each even where the segment stays."""
        if not ids:
            return InRedis(0, 0, set(), Counter(), [])
        buckets = [self.keys.profiles_of(cid).encode() for cid in ids]
        return await self._in_redis(
            as_of_ms, cause, spec, buckets, ["ids", *ids], announce=announce
        )

    async def rescore_due(
        self, as_of_ms: int, cause: str, spec: bytes, after: int | None, limit: int
    ) -> InRedis:
        """Rescore in Redis the due customers of the due lists after hour ``after``."""
        tail = ["due", self.keys.profiles_head, "-inf" if after is None else str(after), str(limit)]
        return await self._in_redis(as_of_ms, cause, spec, [], tail)

    async def _in_redis(
        self,
        as_of_ms: int,
        cause: str,
        spec: bytes,
        buckets: list[bytes],
        tail: list[str],
        *,
        clock_ms: int | None = None,
        announce: bool = False,
    ) -> InRedis:
        keys = self.keys
        call: dict[str, object] = {"orders_head": keys.orders_head, "announce": announce}
        if self.history.event_clock:
            call["watermark_key"] = keys.partition_clocks  # the script reads it
        else:
            clock = as_of_ms if clock_ms is None else clock_ms
            call["prune_before"] = self.history.prune_before(clock)
        reply = await self._rescore(
            keys=[
                keys.dirty,
                keys.due_hours,
                keys.segment_codes,
                keys.segments,
                keys.outboxes,
                *buckets,
            ],
            args=[
                str(as_of_ms),
                keys.due_head,
                keys.outbox_prefix,
                cause,
                spec,
                orjson.dumps(call),
                *tail,
            ],
        )
        examined, changes, partitions, flat, hours, lengths, failed = reply
        transitions: Counter[tuple[str | None, str | None]] = Counter()
        for i in range(0, len(flat), 3):
            transitions[(flat[i].decode() or None, flat[i + 1].decode() or None)] += flat[i + 2]
        return InRedis(
            examined=int(examined),
            changes=int(changes),
            partitions={int(p) for p in partitions},
            transitions=transitions,
            hours=_hours(hours, lengths),
            failed=[cid.decode() for cid in failed],
        )

    async def due_take(self, as_of_ms: int, after: int | None, limit: int) -> DueChunk:
        keys = self.keys
        hours, lengths, flat = await self._due_take(
            keys=[keys.due_hours],
            args=[
                as_of_ms,
                keys.due_head,
                keys.profiles_head,
                "-inf" if after is None else after,
                limit,
            ],
        )
        return DueChunk(
            hours=_hours(hours, lengths),
            ids=[cid.decode() for cid in flat[1::2]],
        )

    async def due_retire(
        self, as_of_ms: int, hours: Sequence[tuple[int, int]], unwritten: Sequence[str]
    ) -> int:
        """Drop the due lists read (hour, length when read), once their customers are
        rescored; lists the ``unwritten`` customers again first (see due_retire.lua)."""
        keys = self.keys
        args: list[str | int] = [as_of_ms, keys.due_head, keys.profiles_head, len(hours)]
        for hour, length in hours:
            args.extend((hour, length))
        for cid in unwritten:
            args.extend((bucket_of(cid), cid))
        return int(await self._due_retire(keys=[keys.due_hours], args=args))

    async def rewind_offset(self, topic: str, partition: int, offset: int) -> None:
        """Forget that offsets after ``offset`` were applied: the partition was recreated."""
        await self.redis.hset(self.keys.offsets, f"{topic}:{partition}", offset)


def _hours(hours: Sequence[bytes], lengths: Sequence[int]) -> list[tuple[int, int]]:
    """The due lists a script read: (hour, length when read)."""
    return [(int(h), int(n)) for h, n in zip(hours, lengths, strict=True)]
