"""A deterministic synthetic shop: order histories for tests, benchmarks and the demo.

Real order streams are skewed (a few customers buy constantly, most buy once or twice),
arrive slightly out of order, repeat records when producers retry, and carry the odd broken
record. A generator that reproduces all of that from nothing but a seed lets the tests and
the demo exercise every path of the worker and still compare runs byte for byte. Only
``random.Random(seed)`` is used: no global random state and no clock.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from itertools import accumulate, count
from typing import Any, NamedTuple

import orjson

from state.model import MS_PER_DAY, iso_utc
from state.money import format_minor, minor_unit_exponent

__all__ = ["ShopEvent", "ShopProfile", "generate_history", "history_events", "live_orders"]

_HOUR_MS = 3_600_000
# Pareto shape of customer propensity: close to 1 gives the familiar "top 20 % of customers
# bring most of the orders" skew. The cap keeps one customer from swallowing the whole shop.
_PARETO_ALPHA = 1.1
_MAX_WEIGHT = 400.0
_EPOCH_INT_RATE = 0.1  # share of events sending occurred_at as epoch ms, not RFC 3339


@dataclass(frozen=True)
class ShopProfile:
    """What to simulate; rates are per-purchase probabilities (bad_rate: extra records)."""

    customers: int
    orders: int
    start_ms: int
    end_ms: int
    seed: int = 7
    duplicate_rate: float = 0.02
    refund_rate: float = 0.03
    cancel_rate: float = 0.02
    bad_rate: float = 0.01
    out_of_order_rate: float = 0.05
    currency: str = "USD"


class ShopEvent(NamedTuple):
    """One record in publish order; ``bad`` marks what the worker must dead-letter."""

    key: bytes
    value: bytes
    bad: bool


class _Emitter:
    """Collects events with the time they are published at, then releases them in order.

    Publish time and event time differ on purpose: that difference is what makes events
    late, and sorting on (publish time, sequence) keeps the output deterministic.
    """

    def __init__(self) -> None:
        self._events: list[tuple[int, int, bytes, bytes, bool]] = []

    def add(self, emit_ms: int, key: bytes, value: bytes, bad: bool = False) -> None:
        self._events.append((emit_ms, len(self._events), key, value, bad))

    def drain(self) -> Iterator[ShopEvent]:
        self._events.sort()
        for _, _, key, value, bad in self._events:
            yield ShopEvent(key, value, bad)


def _check(profile: ShopProfile) -> None:
    if profile.customers <= 0:
        raise ValueError("a shop needs at least one customer")
    if profile.orders < profile.customers:
        raise ValueError("orders must be >= customers: every customer buys at least once")
    if profile.end_ms <= profile.start_ms:
        raise ValueError("end_ms must be after start_ms")
    rates = [getattr(profile, f.name) for f in fields(profile) if f.name.endswith("_rate")]
    if any(not 0 <= r <= 1 for r in rates) or profile.refund_rate + profile.cancel_rate > 1:
        raise ValueError("rates must lie in [0, 1] and refund_rate + cancel_rate <= 1")


def _order_counts(rng: random.Random, profile: ShopProfile) -> list[int]:
    """Orders per customer: one each, the rest shared out by a heavy-tailed propensity."""
    counts = [1] * profile.customers
    weights = (min(rng.paretovariate(_PARETO_ALPHA), _MAX_WEIGHT) for _ in counts)
    cum = list(accumulate(weights))
    for index in rng.choices(
        range(profile.customers), cum_weights=cum, k=profile.orders - profile.customers
    ):
        counts[index] += 1
    return counts


def _purchase_times(rng: random.Random, profile: ShopProfile, counts: list[int]) -> list[int]:
    """Sorted (time, customer) pairs packed as time * customers + customer.

    Each customer is active in a window of their own, so some stopped buying long ago and
    others bought yesterday; loyal customers get longer windows, and windows lean towards
    the end because a growing shop has more active customers lately.
    """
    span = profile.end_ms - profile.start_ms
    packed: list[int] = []
    for customer, orders in enumerate(counts):
        fraction = min(1.0, 0.02 + 0.5 * rng.random() + orders / 60)
        length = int(span * fraction)
        first = profile.start_ms + int((span - length) * rng.random() ** 0.6)
        packed.extend(
            rng.randint(first, first + length) * profile.customers + customer for _ in range(orders)
        )
    packed.sort()
    return packed


def _amount_minor(rng: random.Random, exponent: int) -> int:
    """Mostly small baskets, some large ones and a rare big-ticket order, in minor units."""
    scale = 10**exponent
    roll = rng.random()
    low, high = (5, 80) if roll < 0.72 else (100, 500) if roll < 0.95 else (500, 3000)
    return rng.randint(low * scale, high * scale)


def _when(rng: random.Random, ms: int) -> str | int:
    return ms if rng.random() < _EPOCH_INT_RATE else iso_utc(ms)


def _late(rng: random.Random, ms: int, rate: float) -> int:
    """Publish time of an event: usually its own time, sometimes hours or days later."""
    return ms + rng.randint(_HOUR_MS, 5 * MS_PER_DAY) if rng.random() < rate else ms


def history_events(profile: ShopProfile) -> Iterator[ShopEvent]:
    """The shop's history in publish order, each record labelled good or bad."""
    _check(profile)
    rng = random.Random(profile.seed)
    emitter = _Emitter()
    counts = _order_counts(rng, profile)
    for n, packed in enumerate(_purchase_times(rng, profile, counts)):
        occurred, customer = divmod(packed, profile.customers)
        _emit_purchase(rng, profile, emitter, n, customer, occurred)
    for n in range(round(profile.orders * profile.bad_rate)):
        customer = rng.randrange(profile.customers)
        at = rng.randint(profile.start_ms, profile.end_ms)
        value = _bad_event(rng, n, f"c{customer:06d}", at)
        emitter.add(at, f"c{customer:06d}".encode(), value, bad=True)
    return emitter.drain()


def _emit_purchase(
    rng: random.Random,
    profile: ShopProfile,
    emitter: _Emitter,
    n: int,
    customer: int,
    occurred: int,
) -> None:
    """A purchase plus what may follow it: a producer retry, a refund or a cancel."""
    exponent = minor_unit_exponent(profile.currency)
    key = f"c{customer:06d}".encode()
    cents = _amount_minor(rng, exponent)
    event: dict[str, Any] = {"type": "purchase"} if rng.random() < 0.8 else {}
    event |= {
        "order_id": f"o{n:08d}",
        "customer_id": f"c{customer:06d}",
        "amount": format_minor(cents, exponent),
        "currency": profile.currency,
        "occurred_at": _when(rng, occurred),
    }
    value = orjson.dumps(event)
    emitted = _late(rng, occurred, profile.out_of_order_rate)
    emitter.add(emitted, key, value)
    if rng.random() < profile.duplicate_rate:  # a producer retry: the same bytes, later
        emitter.add(emitted + rng.randint(1_000, 6 * _HOUR_MS), key, value)
    follow_rate = profile.refund_rate + profile.cancel_rate
    if rng.random() >= follow_rate:
        return
    refund = rng.random() * follow_rate < profile.refund_rate
    follow: dict[str, Any] = {"type": "refund" if refund else "cancel"}
    follow["order_id"] = event["order_id"]
    follow["customer_id"] = event["customer_id"]
    if refund:
        follow["refund_id"] = f"r{n:08d}"
        follow["amount"] = format_minor(_refunded(rng, cents), exponent)
        follow["currency"] = profile.currency
    at = min(profile.end_ms, occurred + rng.randint(60_000, (30 if refund else 2) * MS_PER_DAY))
    follow["occurred_at"] = _when(rng, at)
    # A follow-up never overtakes its purchase: the worker would dead-letter it as unknown.
    publish_at = max(_late(rng, at, profile.out_of_order_rate), emitted + 1)
    emitter.add(publish_at, key, orjson.dumps(follow))


def _refunded(rng: random.Random, cents: int) -> int:
    """Refunds are of the whole order or of part of it (one item sent back)."""
    return cents if cents < 2 or rng.random() < 0.4 else rng.randint(1, cents - 1)


# Each way producers get a record wrong, as a change to a well-formed purchase (None drops
# the field). The last two are well-formed but name an order that was never bought.
_BAD_CHANGES: tuple[dict[str, str | None], ...] = (
    {"customer_id": None},
    {"order_id": None},
    {"amount": None},
    {"occurred_at": None},
    {"amount": "-12.50"},
    {"currency": "XXX"},
    {"amount": "12,50"},
    {"type": "chargeback"},
    {"occurred_at": "2026-01-01T10:00:00"},  # no zone
    {"type": "refund", "refund_id": "r-unknown"},
    {"type": "cancel"},
)


def _bad_event(rng: random.Random, n: int, customer_id: str, at: int) -> bytes:
    """One record the worker must refuse; its order id ("x...") never names a purchase."""
    base: dict[str, Any] = {
        "type": "purchase",
        "order_id": f"x{n:08d}",
        "customer_id": customer_id,
        "amount": "19.99",
        "occurred_at": iso_utc(at),
    }
    variant = rng.randrange(len(_BAD_CHANGES) + 2)
    if variant == len(_BAD_CHANGES):
        return orjson.dumps(base)[:-7]  # truncated: malformed JSON
    if variant > len(_BAD_CHANGES):
        return b"[" + orjson.dumps(base) + b"]"  # not an object
    event = base | _BAD_CHANGES[variant]
    return orjson.dumps({k: v for k, v in event.items() if v is not None})


def generate_history(profile: ShopProfile) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs of the whole history, ready to publish in this order."""
    for event in history_events(profile):
        yield event.key, event.value


def live_orders(
    customers: int, seed: int, now_ms: Callable[[], int]
) -> Iterator[tuple[bytes, bytes]]:
    """An endless demo stream stamped with ``now_ms()``; the caller sets the pace.

    A steep skew lets a handful of customers climb into the top segments within minutes.
    Order ids carry the first clock reading so a restarted demo never repeats an id, which
    the worker would take for a retried duplicate. Amounts have two decimals and no
    currency, so they count in the worker's base currency.
    """
    if customers <= 0:
        raise ValueError("a shop needs at least one customer")
    rng = random.Random(seed)
    cum = list(accumulate(min(rng.paretovariate(0.8), 10_000.0) for _ in range(customers)))
    run = now_ms()
    # Orders that may still be refunded or cancelled, each at most once, so refunds never
    # exceed a purchase and nothing is refunded after it was cancelled.
    open_orders: deque[tuple[str, str, int]] = deque(maxlen=1000)
    for n in count(1):
        roll = rng.random()
        event: dict[str, Any]
        if open_orders and roll < 0.04:
            index = rng.randrange(len(open_orders))
            order_id, customer_id, cents = open_orders[index]
            del open_orders[index]
            event = {"type": "cancel"}
            if roll < 0.03:
                amount = format_minor(_refunded(rng, cents), 2)
                event = {"type": "refund", "refund_id": f"r{run}-{n:08d}", "amount": amount}
        else:
            customer_id = f"c{rng.choices(range(customers), cum_weights=cum)[0]:06d}"
            order_id, cents = f"o{run}-{n:08d}", _amount_minor(rng, 2)
            open_orders.append((order_id, customer_id, cents))
            event = {"type": "purchase", "amount": format_minor(cents, 2)}
        event |= {"order_id": order_id, "customer_id": customer_id}
        event["occurred_at"] = iso_utc(now_ms())
        yield customer_id.encode(), orjson.dumps(event)
