"""The batch computation: fold the events in publish order, then score every customer.

``fold`` keeps every order of every customer (time, amount, refunded part, cancelled or
not, refund keys seen), counts each event's outcome, and tracks the event clock.
``expected`` derives what the README says each customer's profile is at ``as_of``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import MS_PER_DAY, Config
from .events import DeadLetter, Event, parse_event
from .rules import load_rules, segment_of
from .scoring import Quintiles, at_least_score, recency_score

__all__ = [
    "AmbiguousHistory",
    "Customer",
    "Expected",
    "History",
    "Order",
    "expected",
    "fold",
    "scoring_time",
]


class AmbiguousHistory(Exception):
    """The events refer to an order record the product may already have deleted (it is
    older than the order retention), so the outcome depends on when that happened."""


@dataclass
class Order:
    occurred_ms: int
    amount_minor: int
    refunded_minor: int = 0
    cancelled: bool = False
    refund_keys: set[str] = field(default_factory=set)

    @property
    def net_minor(self) -> int:
        return self.amount_minor - self.refunded_minor


@dataclass
class Customer:
    orders: dict[str, Order] = field(default_factory=dict)

    def live_orders(self) -> list[Order]:
        return [order for order in self.orders.values() if not order.cancelled]


@dataclass
class History:
    """``customers``: everyone with at least one purchase applied; ``outcomes``: how many
    events were ``applied``, ``duplicate`` or ``dlq:<reason>``; ``clock_ms``: the latest
    ``occurred_at`` of an applied event (0 before any)."""

    customers: dict[str, Customer] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    clock_ms: int = 0


@dataclass(frozen=True)
class Expected:
    """One customer's profile at ``as_of``; money in minor units of the base currency.

    ``orders`` and ``spend_minor`` count the window; the ``lifetime_`` ones every live
    order. Scores and segment are None when no order of the customer counts any more.
    """

    first_ms: int | None
    last_ms: int | None
    orders: int
    spend_minor: int
    lifetime_orders: int
    lifetime_spend_minor: int
    r: int | None
    f: int | None
    m: int | None
    recency_days: int | None
    segment: str | None


def fold(values: Iterable[bytes | None], config: Config, now_ms: int) -> History:
    """Apply the record values in publish order (the order a partition delivers them)."""
    history = History()
    for raw in values:
        event = parse_event(raw, config, now_ms)
        if isinstance(event, DeadLetter):
            outcome = f"dlq:{event.reason}"
        else:
            outcome = _apply(history, event, config, now_ms)
        if outcome == "applied":
            assert isinstance(event, Event)
            history.clock_ms = max(history.clock_ms, event.occurred_ms)
        history.outcomes[outcome] += 1
    return history


def _apply(history: History, event: Event, config: Config, now_ms: int) -> str:
    arrival_clock = now_ms if config.clock == "wall" else history.clock_ms
    if _older_than_retention(event.occurred_ms, arrival_clock, config):
        return "dlq:too_old"
    customer = history.customers.get(event.customer_id)
    order = customer.orders.get(event.order_id) if customer is not None else None
    if order is not None and _older_than_retention(order.occurred_ms, arrival_clock, config):
        raise AmbiguousHistory(
            f"{event.kind} of order {event.order_id!r} of customer {event.customer_id!r}: "
            "the order is older than the retention when the event arrives"
        )
    if event.kind == "purchase":
        if order is not None:
            return "duplicate"
        orders = history.customers.setdefault(event.customer_id, Customer()).orders
        orders[event.order_id] = Order(event.occurred_ms, event.amount_minor)
        return "applied"
    if customer is None or order is None:
        return "dlq:unknown_order"
    if event.kind == "cancel":
        return _cancel(customer, order, event, arrival_clock, config)
    return _refund(order, event)


def _cancel(
    customer: Customer, order: Order, event: Event, arrival_clock: int, config: Config
) -> str:
    if order.cancelled:
        return "duplicate"
    order.cancelled = True
    return "applied"


def _refund(order: Order, event: Event) -> str:
    if order.cancelled:
        return "dlq:order_cancelled"
    key = event.refund_id
    if key is None:
        key = f"{event.occurred_ms}:{event.amount_minor}"
    if key in order.refund_keys:
        return "duplicate"
    order.refund_keys.add(key)
    order.refunded_minor += min(event.amount_minor, order.net_minor)
    return "applied"


def _older_than_retention(occurred_ms: int, clock_ms: int, config: Config) -> bool:
    return config.retention_days > 0 and clock_ms - occurred_ms >= config.retention_ms


def scoring_time(history: History, config: Config, now_ms: int) -> int:
    """The time scores are computed for: now, or with ``RFM_CLOCK=event`` the event clock
    (now while no event has been applied)."""
    if config.clock == "event" and history.clock_ms > 0:
        return history.clock_ms
    return now_ms


@dataclass(frozen=True)
class _Figures:
    first_ms: int
    last_ms: int
    orders: int
    spend_minor: int
    lifetime_orders: int
    lifetime_spend_minor: int
    recency_days: int


def _figures(customer: Customer, config: Config, as_of: int) -> _Figures | None:
    live = customer.live_orders()
    if not live:
        return None
    in_window = [
        order
        for order in live
        if config.window_days == 0 or as_of - order.occurred_ms < config.window_ms
    ]
    last = max(order.occurred_ms for order in live)
    return _Figures(
        first_ms=min(order.occurred_ms for order in live),
        last_ms=last,
        orders=len(in_window),
        spend_minor=sum(order.net_minor for order in in_window),
        lifetime_orders=len(live),
        lifetime_spend_minor=sum(order.net_minor for order in live),
        recency_days=max(0, (as_of - last) // MS_PER_DAY),
    )


def expected(history: History, config: Config, as_of_ms: int) -> dict[str, Expected]:
    """Every customer's profile as a full rescoring pass at ``as_of_ms`` would leave it
    (quintiles: cut from this same population)."""
    rules = load_rules(config.segments)
    figures = {cid: _figures(c, config, as_of_ms) for cid, c in history.customers.items()}
    scored = [f for f in figures.values() if f is not None]
    quintiles = Quintiles([(f.recency_days, f.orders, f.spend_minor) for f in scored])
    result: dict[str, Expected] = {}
    for customer_id, fig in figures.items():
        if fig is None:
            result[customer_id] = Expected(None, None, 0, 0, 0, 0, None, None, None, None, None)
            continue
        if config.scoring == "quintiles":
            r = quintiles.recency(fig.recency_days)
            f = quintiles.frequency(fig.orders)
            m = quintiles.monetary(fig.spend_minor)
        else:
            r = recency_score(fig.recency_days, config.recency_days)
            f = at_least_score(fig.orders, config.frequency)
            m = at_least_score(fig.spend_minor, config.monetary_minor)
        if fig.orders == 0:  # "no order in the window scores F=1 and M=1", whatever bounds
            f = m = 1
        result[customer_id] = Expected(
            first_ms=fig.first_ms,
            last_ms=fig.last_ms,
            orders=fig.orders,
            spend_minor=fig.spend_minor,
            lifetime_orders=fig.lifetime_orders,
            lifetime_spend_minor=fig.lifetime_spend_minor,
            r=r,
            f=f,
            m=m,
            recency_days=fig.recency_days,
            segment=segment_of(rules, r, f, m),
        )
    return result
