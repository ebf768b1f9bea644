"""Read-only queries on customer state, for scoring, the CLI and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

from redis.asyncio import Redis

from state.keys import Keys
from state.model import CustomerState
from state.scripts import register

# Fields of a customer hash that make up its profile; order fields ("o:...") are left out.
# The Lua scripts that return profiles (apply_orders, read_customers) use this order too.
PROFILE_FIELDS = ("f", "l", "n", "$", "v", "p", "g", "q", "s")
WIDTH = len(PROFILE_FIELDS)


def _int(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


def to_state(customer_id: str, values: Sequence[bytes | None]) -> CustomerState | None:
    """Decode ``HMGET PROFILE_FIELDS``; None when the customer does not exist."""
    first, last, orders, spend, version, partition, segment, seq, scores = values
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
    )


def to_states(
    customer_ids: Sequence[str], flat: Sequence[bytes | None]
) -> list[CustomerState | None]:
    """Decode a script's flat reply of ``WIDTH`` fields per customer."""
    return [to_state(cid, flat[i * WIDTH : (i + 1) * WIDTH]) for i, cid in enumerate(customer_ids)]


class StateReader:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._read = register(redis, "read_customers")

    async def customers(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        if not customer_ids:
            return []
        flat = await self._read(keys=[self.keys.customer(cid) for cid in customer_ids])
        return to_states(customer_ids, flat)

    async def customer(self, customer_id: str) -> CustomerState | None:
        return (await self.customers([customer_id]))[0]

    async def scan_customer_ids(self, batch: int = 1000) -> AsyncIterator[list[str]]:
        """Every customer id, in batches; SCAN so a large keyspace never blocks Redis."""
        async for found in self.scan_customer_keys(batch):
            yield [self.keys.customer_id_of(k) for k in found]

    async def scan_customer_keys(self, batch: int = 1000) -> AsyncIterator[list[bytes]]:
        cursor = 0
        pattern = self.keys.customer_pattern()
        while True:
            cursor, found = await self.redis.scan(cursor, match=pattern, count=batch, _type="hash")
            if found:
                yield cast(list[bytes], found)
            if cursor == 0:
                return

    async def due_ids(self, until_ms: int, limit: int) -> list[str]:
        found = await self.redis.zrangebyscore(self.keys.due, "-inf", until_ms, 0, limit)
        return [m.decode() for m in cast(list[bytes], found)]

    async def dirty_ids(self, limit: int) -> list[str]:
        found = await self.redis.srandmember(self.keys.dirty, limit)
        return [m.decode() for m in cast(list[bytes], found or [])]

    async def segment_counts(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.segments))
        return {k.decode(): int(v) for k, v in raw.items() if int(v) != 0}

    async def stats(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.stats))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def clock_ms(self) -> int | None:
        return _int(cast(bytes | None, await self.redis.get(self.keys.clock)))

    async def applied_offsets(self, topic: str) -> dict[int, int]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.offsets))
        head = f"{topic}:".encode()
        return {int(k[len(head) :]): int(v) for k, v in raw.items() if k.startswith(head)}
