"""Customer state read the way the worker reads it (the read_customers script), for tests
and the bench: only the scripts know the packed profile format."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import redis

from state.keys import Keys
from state.model import CustomerState
from state.reads import with_windows
from state.scripts import lua_source


def read_profiles(
    r: redis.Redis, customer_ids: Sequence[str], keys: Keys | None = None
) -> dict[str, CustomerState | None]:
    keys = keys or Keys()
    if not customer_ids:
        return {}
    script = r.register_script(lua_source("read_customers"))
    buckets = [keys.profiles_of(cid) for cid in customer_ids]
    flat = script(keys=[keys.segment_codes, *buckets], args=[keys.orders_head, *customer_ids])
    return dict(zip(customer_ids, with_windows(customer_ids, flat), strict=True))


def read_profile(
    r: redis.Redis, customer_id: str, keys: Keys | None = None
) -> CustomerState | None:
    return read_profiles(r, [customer_id], keys)[customer_id]


def all_customer_ids(r: redis.Redis, keys: Keys | None = None) -> list[str]:
    keys = keys or Keys()
    ids: list[str] = []
    for bucket in r.scan_iter(match=keys.profiles_pattern(), count=1000, _type="hash"):
        ids.extend(cid.decode() for cid in r.hkeys(bucket))
    return ids


def all_profiles(r: redis.Redis, keys: Keys | None = None) -> dict[str, CustomerState | None]:
    return read_profiles(r, all_customer_ids(r, keys), keys)


def due_times(r: redis.Redis, keys: Keys | None = None) -> dict[str, int]:
    """Every customer holding a due time, with it."""
    return {
        cid: s.due_ms
        for cid, s in all_profiles(r, keys).items()
        if s is not None and s.due_ms is not None
    }


def orders_key_of(customer_id: str, keys: Keys | None = None) -> str:
    """The Redis key holding this customer's order records."""
    return (keys or Keys()).orders_of(customer_id)


def order_field(customer_id: str, order_id: str) -> str:
    """The field of one order record in ``orders_key_of(customer_id)``."""
    return f"{customer_id}\x1f{order_id}"


def has_order(r: redis.Redis, customer_id: str, order_id: str, keys: Keys | None = None) -> bool:
    return bool(r.hexists(orders_key_of(customer_id, keys), order_field(customer_id, order_id)))


def bucket_keys(customer_ids: Iterable[str], keys: Keys | None = None) -> set[bytes]:
    """The profile and order buckets these customers live in."""
    keys = keys or Keys()
    out: set[bytes] = set()
    for cid in customer_ids:
        out.add(keys.profiles_of(cid).encode())
        out.add(keys.orders_of(cid).encode())
    return out


def change_counts(
    r: redis.Redis, customer_ids: Sequence[str], prefix: str = "rfm"
) -> dict[str, int]:
    """How many segment changes the store has numbered for each customer (the ``sequence``
    of its latest change; 0 for none, and for a customer the store does not hold)."""
    return {
        cid: 0 if state is None else state.seq
        for cid, state in read_profiles(r, customer_ids, Keys(prefix)).items()
    }


def applied_offsets(r: redis.Redis, topic: str, prefix: str = "rfm") -> dict[int, int]:
    """Partition -> the last input offset the store has applied (recorded with the state)."""
    raw = cast(dict[bytes, bytes], r.hgetall(Keys(prefix).offsets))
    head = f"{topic}:".encode()
    return {int(k[len(head) :]): int(v) for k, v in raw.items() if k.startswith(head)}
