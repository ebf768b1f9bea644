"""Erasing one customer: everything Redis holds about them, and the event that says so.

The atomic part (profile, order records, counters, the ``erased`` change in the outbox) is
``state/lua/forget.lua``. The customer's entries in the due lists are swept afterwards, one
list per command: a list can hold a million entries, and sweeping them all inside the
script would stop Redis for every other client meanwhile. Until the sweep is done an entry
is harmless: every reader of a due list skips a customer whose profile is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from state.keys import Keys, bucket_of
from state.scripts import register

SWEEP_LISTS_PER_ROUND = 200


@dataclass(frozen=True, slots=True)
class Erasure:
    customer_id: str
    found: bool
    previous_segment: str | None  # the segment the erased event moves them out of
    sequence: int  # change number of the erased event (0 when no profile existed)
    partition: int  # the outbox the erased event waits in
    order_records: int  # order records and refund marks deleted
    due_entries: int  # due-list entries removed


class Eraser:
    def __init__(
        self, redis: Redis, keys: Keys, currency: str, exponent: int, window_days: int
    ) -> None:
        self.redis, self.keys = redis, keys
        self.currency, self.exponent, self.window_days = currency, exponent, window_days
        self._forget = register(redis, "forget")

    async def forget(self, customer_id: str, as_of_ms: int) -> Erasure:
        keys, bucket = self.keys, bucket_of(customer_id)
        found, previous, seq, partition, records = await self._forget(
            keys=[
                keys.profiles(bucket),
                keys.orders(bucket),
                keys.dirty,
                keys.segment_codes,
                keys.segments,
                keys.outboxes,
                keys.seq_floor,
                keys.erasures,
            ],
            args=[
                customer_id,
                str(as_of_ms),
                keys.outbox_prefix,
                self.currency,
                self.exponent,
                self.window_days,
            ],
        )
        removed = await self._sweep_due_lists(f"{bucket}:{customer_id}")
        return Erasure(
            customer_id=customer_id,
            found=bool(found),
            previous_segment=cast(bytes, previous).decode() or None,
            sequence=int(seq),
            partition=int(partition),
            order_records=int(records),
            due_entries=removed,
        )

    async def _sweep_due_lists(self, entry: str) -> int:
        hours = cast(list[bytes], await self.redis.zrange(self.keys.due_hours, 0, -1))
        removed = 0
        for i in range(0, len(hours), SWEEP_LISTS_PER_ROUND):
            pipe = self.redis.pipeline(transaction=False)
            for hour in hours[i : i + SWEEP_LISTS_PER_ROUND]:
                pipe.lrem(self.keys.due(int(hour)), 0, entry)
            removed += sum(int(n) for n in await pipe.execute())
        return removed
