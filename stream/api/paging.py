"""One segment's customers, page by page, with an opaque cursor.

There is no segment index in Redis (a second copy of every membership would cost memory
on every write of the hot path), so a page walks the profile buckets in order, 0 to
65,535, as ``rfm-stream export --segment`` walks them, and keeps the customers of the
segment. Within a bucket, ids are taken in sorted order; the cursor is the position
reached: the bucket and the last id returned in it. A customer never changes bucket, so a
walk over a state that does not change meanwhile yields every member exactly once; a
customer who changes segment or arrives during the walk may or may not appear.

Cost: a page reads profiles until it has ``limit`` members, about ``limit / share``
profiles for a segment holding ``share`` of all customers, in chunks of ``CHUNK`` buckets
(two Redis calls each: the ids of the buckets, then their profiles). A page also stops
after ``BUDGET`` profiles read, so that a rare segment cannot make one request read the
whole state: such a page has fewer than ``limit`` customers (possibly none) and still a
``next_cursor``. Only a page without
``next_cursor`` is the last. Walking a whole segment reads every profile once.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

from state.keys import BUCKETS
from state.model import CustomerState
from state.reads import StateReader
from stream.api.errors import bad_request

CHUNK = 256  # buckets read per round trip
BUDGET = 50_000  # profiles read per page at most (about 3,000 buckets at a million customers)
_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Position:
    """Resume at ``bucket``, after the id ``after`` (None: from the bucket's first id)."""

    bucket: int = 0
    after: str | None = None


def encode_cursor(position: Position) -> str:
    text = f"{_VERSION}:{position.bucket}:" + ("" if position.after is None else position.after)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position in a cursor; 400 for anything this module did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, bucket_text, after = raw.split(":", 2)
        bucket = int(bucket_text)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the cursor is not one this API returned", "bad_cursor") from None
    if version != _VERSION or not 0 <= bucket < BUCKETS or bucket_text != str(bucket):
        raise bad_request("the cursor is not one this API returned", "bad_cursor")
    return Position(bucket, after or None)


@dataclass
class Page:
    customers: list[CustomerState]
    next: Position | None  # None: the walk is complete


async def _bucket_ids(reader: StateReader, first: int, last: int) -> list[tuple[int, list[str]]]:
    pipe = reader.redis.pipeline(transaction=False)
    for bucket in range(first, last):
        pipe.hkeys(reader.keys.profiles(bucket))
    found = await pipe.execute()
    return [(first + i, sorted(k.decode() for k in keys)) for i, keys in enumerate(found) if keys]


async def walk(
    reader: StateReader, segment: str, start: Position, budget: int | None = None
) -> AsyncIterator[tuple[CustomerState | None, Position]]:
    """Members of ``segment`` from ``start`` on, each with the position just after it;
    ``(None, position)`` when ``budget`` profiles were read (the walk stops there)."""
    read = 0
    bucket = start.bucket
    while bucket < BUCKETS:
        end = min(bucket + CHUNK, BUCKETS)
        found = await _bucket_ids(reader, bucket, end)
        if start.after is not None and found and found[0][0] == start.bucket == bucket:
            found[0] = (start.bucket, [i for i in found[0][1] if i > start.after])
        ids = [cid for _, bucket_ids in found for cid in bucket_ids]
        states = iter(await reader.customers(ids))  # one call for the chunk, in walk order
        read += len(ids)
        for number, bucket_ids in found:
            for state in (next(states) for _ in bucket_ids):
                if state is not None and state.segment == segment:
                    yield state, Position(number, state.customer_id)
        bucket = end
        if budget is not None and read >= budget and bucket < BUCKETS:
            yield None, Position(bucket)
            return


async def page(reader: StateReader, segment: str, start: Position, limit: int) -> Page:
    members: list[CustomerState] = []
    async for state, position in walk(reader, segment, start, BUDGET):
        if state is None:
            return Page(members, position)
        members.append(state)
        if len(members) == limit:
            return Page(members, position)
    return Page(members, None)
