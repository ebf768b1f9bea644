"""Read-only queries on customer state, for scoring, the CLI and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import cast

from redis.asyncio import Redis

from state.keys import Keys
from state.model import CustomerState
from state.scripts import register

# A profile as the scripts return it (state/lua/profile.lua, reply_profile): first and last
# purchase, orders, spend, version, partition, segment, seq, scores, due time, previous
# segment, segment since.
PROFILE_FIELDS = ("f", "l", "n", "$", "v", "p", "g", "q", "s", "due", "pg", "since")
WIDTH = len(PROFILE_FIELDS)


def _int(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


def to_state(customer_id: str, values: Sequence[bytes | None]) -> CustomerState | None:
    """Decode one profile of a script's reply; None when the customer does not exist."""
    first, last, orders, spend, version, partition, segment, seq, scores, due, pg, since = values
    if version is None:
        return None
    r = f = m = days = as_of = None
    if scores:
        r, f, m, days, as_of = (int(x) for x in scores.split(b","))
    return CustomerState(
        customer_id=customer_id,
        first_ms=_int(first),
        last_ms=_int(last),
        orders=int(orders or 0),
        spend_minor=int(spend or 0),
        version=int(version),
        partition=int(partition or 0),
        segment=segment.decode() if segment else None,
        seq=int(seq or 0),
        r=r,
        f=f,
        m=m,
        recency_days=days,
        as_of_ms=as_of,
        due_ms=_int(due),
        previous_segment=pg.decode() if pg else None,
        segment_since_ms=_int(since),
    )


def to_states(
    customer_ids: Sequence[str], flat: Sequence[bytes | None]
) -> list[CustomerState | None]:
    """Decode a script's flat reply of ``WIDTH`` fields per customer."""
    return [to_state(cid, flat[i * WIDTH : (i + 1) * WIDTH]) for i, cid in enumerate(customer_ids)]


WINDOW_WIDTH = WIDTH + 3  # read_customers.lua: the profile, then window days, orders, spend


def with_windows(
    customer_ids: Sequence[str], flat: Sequence[bytes | None]
) -> list[CustomerState | None]:
    """Decode read_customers.lua's reply: each profile with its stored window."""
    states: list[CustomerState | None] = []
    for i, cid in enumerate(customer_ids):
        row = flat[i * WINDOW_WIDTH : (i + 1) * WINDOW_WIDTH]
        state = to_state(cid, row[:WIDTH])
        days, orders, spend = (_int(x) for x in row[WIDTH:])
        if state is not None and days is not None:
            state = replace(state, window_days=days, window_orders=orders, window_spend=spend)
        states.append(state)
    return states


class StateReader:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._read = register(redis, "read_customers")

    async def customers(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        if not customer_ids:
            return []
        keys = self.keys
        buckets = [keys.profiles_of(cid) for cid in customer_ids]
        flat = await self._read(
            keys=[keys.segment_codes, *buckets], args=[keys.orders_head, *customer_ids]
        )
        return with_windows(customer_ids, flat)

    async def customer(self, customer_id: str) -> CustomerState | None:
        return (await self.customers([customer_id]))[0]

    async def scan_customer_ids(self, batch: int = 1000) -> AsyncIterator[list[str]]:
        """Every customer id, in batches of about ``batch``."""
        async for buckets in self.scan_buckets(batch // 10):
            pipe = self.redis.pipeline(transaction=False)
            for key in buckets:
                pipe.hkeys(key)
            yield [cid.decode() for found in await pipe.execute() for cid in found]

    async def scan_buckets(self, batch: int = 100) -> AsyncIterator[list[bytes]]:
        """Every profile bucket; SCAN so a large keyspace never blocks Redis."""
        cursor = 0
        pattern = self.keys.profiles_pattern()
        while True:
            cursor, found = await self.redis.scan(cursor, match=pattern, count=batch, _type="hash")
            if found:
                yield cast(list[bytes], found)
            if cursor == 0:
                return

    async def dirty_ids(self, limit: int) -> list[str]:
        found = await self.redis.srandmember(self.keys.dirty, limit)
        return [m.decode() for m in cast(list[bytes], found or [])]

    async def segment_counts(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.segments))
        return {k.decode(): int(v) for k, v in raw.items() if int(v) != 0}

    async def stats(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.stats))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def watermark_ms(self) -> int | None:
        """The least of the input partitions' latest event times (window.lua): the clock of
        the order retention with RFM_CLOCK=event; None before any event."""
        raw = cast(list[bytes], await self.redis.hvals(self.keys.partition_clocks))
        return min((int(v) for v in raw), default=None)

    async def erasures(self) -> int:
        return _int(cast(bytes | None, await self.redis.get(self.keys.erasures))) or 0

    async def clock_ms(self) -> int | None:
        return _int(cast(bytes | None, await self.redis.get(self.keys.clock)))

    async def applied_offsets(self, topic: str) -> dict[int, int]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.offsets))
        head = f"{topic}:".encode()
        return {int(k[len(head) :]): int(v) for k, v in raw.items() if k.startswith(head)}
