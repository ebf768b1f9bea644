"""A straightforward batch computation of RFM state from the published events.

Written independently of the Lua scripts on purpose: the streaming result must equal what a
plain fold over the same events gives. Events are folded in publish order per customer,
which is the order a partition delivers them in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from state.changes import ScoringContext
from state.model import OrderEvent, Rejection
from stream.validation import ValidationRules, parse_order


@dataclass
class Order:
    ts: int
    amount: int
    refunded: int = 0
    cancelled: bool = False
    refunds: set[str] = field(default_factory=set)


@dataclass
class Customer:
    orders: dict[str, Order] = field(default_factory=dict)

    @property
    def active(self) -> list[Order]:
        return [o for o in self.orders.values() if not o.cancelled]

    @property
    def count(self) -> int:
        return len(self.active)

    @property
    def spend(self) -> int:
        return sum(o.amount - o.refunded for o in self.active)

    @property
    def first(self) -> int | None:
        return min((o.ts for o in self.active), default=None)

    @property
    def last(self) -> int | None:
        return max((o.ts for o in self.active), default=None)


@dataclass
class BatchResult:
    customers: dict[str, Customer]
    outcomes: Counter[str]
    clock_ms: int

    def expected(self, ctx: ScoringContext, as_of_ms: int) -> dict[str, tuple[object, ...]]:
        """customer -> (first, last, orders, spend, r, f, m, recency_days, segment)."""
        out: dict[str, tuple[object, ...]] = {}
        for cid, c in self.customers.items():
            if c.count == 0 or c.last is None:
                out[cid] = (None, None, 0, c.spend, None, None, None, None, None)
                continue
            s = ctx.scorer.score(c.last, c.count, c.spend, as_of_ms)
            seg = ctx.rules.segment_for(s.r, s.f, s.m)
            out[cid] = (c.first, c.last, c.count, c.spend, s.r, s.f, s.m, s.recency_days, seg)
        return out


def fold(values: Iterable[bytes | None], rules: ValidationRules, now_ms: int) -> BatchResult:
    customers: dict[str, Customer] = {}
    outcomes: Counter[str] = Counter()
    clock = 0
    for raw in values:
        event = parse_order(raw, rules, now_ms)
        if isinstance(event, Rejection):
            outcomes[f"dlq:{event.reason}"] += 1
            continue
        outcome = _apply(customers.setdefault(event.customer_id, Customer()), event)
        if outcome.startswith("dlq:") and not customers[event.customer_id].orders:
            del customers[event.customer_id]
        if outcome == "applied":
            clock = max(clock, event.occurred_ms)
        outcomes[outcome] += 1
    return BatchResult(customers, outcomes, clock)


def _apply(c: Customer, e: OrderEvent) -> str:
    order = c.orders.get(e.order_id)
    if e.kind == "purchase":
        if order is not None:
            return "duplicate"
        c.orders[e.order_id] = Order(e.occurred_ms, e.amount_minor)
        return "applied"
    if order is None:
        return "dlq:unknown_order"
    if e.kind == "cancel":
        if order.cancelled:
            return "duplicate"
        order.cancelled = True
        return "applied"
    if order.cancelled:
        return "dlq:order_cancelled"
    refund_key = e.refund_id or f"{e.occurred_ms}:{e.amount_minor}"
    if refund_key in order.refunds:
        return "duplicate"
    order.refunds.add(refund_key)
    order.refunded += min(e.amount_minor, order.amount - order.refunded)
    return "applied"
