"""The window state in Redis, event by event, against the independent oracle (tests/reference):
orders older than the window arriving late, refunds and cancels inside and outside it, a
customer with no order left in it, orders leaving it between passes, due passes that examine
only the customers that are due, records deleted past the retention (lifetime values
unchanged), and events too old to deduplicate. Real Redis; the worker's own store and
rescorer, batches applied as the worker applies them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

import orjson
import pytest
import redis

from state.keys import Keys
from state.model import MS_PER_DAY, CustomerState, now_ms
from state.store import InputRecord
from stream.runtime import Runtime
from stream.settings import load_settings
from stream.validation import ValidationRules, parse_order
from tests.reference import Config, Expected, expected, fold
from tests.support.state_reads import has_order

pytestmark = pytest.mark.integration

DAY = MS_PER_DAY
D0 = 1_767_225_600_000  # 2026-01-01, event time (RFM_CLOCK=event)
ENV = {
    "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # never contacted: nothing is published
    "RFM_CLOCK": "event",
    "RFM_WINDOW_DAYS": "30",  # retention 60 days
    # zero cuts: a customer with no order in the window scores F=1 and M=1 only by the rule
    "RFM_FREQUENCY": "0,1,2,3",
    "RFM_MONETARY": "0,1,2,3",
}


def event(kind: str, cid: str, order: str, at: int, amount: str = "10.00", **more: str) -> bytes:
    doc: dict[str, object] = {"customer_id": cid, "order_id": order, "occurred_at": at}
    if kind != "purchase":
        doc["type"] = kind
    if kind != "cancel":
        doc["amount"] = amount
    return orjson.dumps({**doc, **more})


class Feed:
    """Batches applied in publish order on one partition, as the worker applies them, and
    the same values folded by the oracle."""

    def __init__(self, rt: Runtime, env: dict[str, str] = ENV) -> None:
        self.rt, self.env = rt, env
        self.rules = ValidationRules(currencies=rt.settings.scoring.currencies)
        self.values: list[bytes] = []
        self.outcomes: Counter[str] = Counter()

    def records(self, values: Sequence[bytes]) -> Iterator[InputRecord]:
        for value in values:
            offset = len(self.values)
            self.values.append(value)
            parsed = parse_order(value, self.rules, D0 + 1000 * DAY)
            yield InputRecord(0, offset, None, value, parsed)

    async def apply(self, *values: bytes) -> None:
        """One batch, then the touched customers scored at the event clock (the hot path)."""
        applied = await self.rt.store.apply_orders("orders", list(self.records(values)))
        self.outcomes.update(applied.outcomes)
        await self.rt.rescorer.rescore_touched(applied.touched, applied.clock_ms)

    def oracle(self, as_of: int) -> dict[str, Expected]:
        config = Config.from_env(self.env)
        history = fold(self.values, config, D0 + 1000 * DAY)
        assert Counter(history.outcomes) == +self.outcomes, "outcomes differ from the oracle"
        return expected(history, config, as_of)


def values_of(state: CustomerState | None, window_days: int = 30) -> tuple[object, ...]:
    assert state is not None
    days, orders, spend = state.scored_window(window_days)
    assert days == window_days, state
    return (
        state.first_ms,
        state.last_ms,
        orders,
        spend,
        state.orders,
        state.spend_minor,
        state.r,
        state.f,
        state.m,
        state.recency_days,
        state.segment,
    )


def oracle_values(e: Expected) -> tuple[object, ...]:
    return (
        e.first_ms,
        e.last_ms,
        e.orders,
        e.spend_minor,
        e.lifetime_orders,
        e.lifetime_spend_minor,
        e.r,
        e.f,
        e.m,
        e.recency_days,
        e.segment,
    )


async def assert_as_oracle(feed: Feed, ids: Sequence[str], as_of: int) -> None:
    want = feed.oracle(as_of)
    for cid in ids:
        state = await feed.rt.reader.customer(cid)
        assert state is not None and state.as_of_ms == as_of, (cid, state)
        days = Config.from_env(feed.env).window_days
        assert values_of(state, days) == oracle_values(want[cid]), cid


@pytest.fixture
async def runtime(redis_url: str) -> Runtime:  # type: ignore[misc]
    rt = Runtime.build(load_settings(env={**ENV, "RFM_REDIS_URL": redis_url}))
    try:
        yield rt
    finally:
        await rt.close()


async def test_window_follows_late_orders_refunds_and_cancels(runtime: Runtime) -> None:
    feed = Feed(runtime)
    await feed.apply(
        event("purchase", "a", "a1", D0),
        event("purchase", "a", "a2", D0 + 10 * DAY, "20.00"),
        event("purchase", "b", "b1", D0 + 5 * DAY, "7.00"),
        event("purchase", "c", "c1", D0 + 20 * DAY),
    )
    await assert_as_oracle(feed, ["a", "b", "c"], D0 + 20 * DAY)
    # Late: an order of a from before its window (30.5 days before its first purchase, so
    # outside the window at any time since), a refund of it, a refund and a cancel inside.
    await feed.apply(
        event("purchase", "a", "a0", D0 - 30 * DAY - DAY // 2, "500.00"),
        event("refund", "a", "a0", D0 + 21 * DAY, "100.00", refund_id="r0"),
        event("refund", "a", "a2", D0 + 21 * DAY, "5.00", refund_id="r1"),
        event("cancel", "b", "b1", D0 + 21 * DAY),
        event("purchase", "b", "b2", D0 + 21 * DAY, "3.00"),
    )
    await assert_as_oracle(feed, ["a", "b"], D0 + 21 * DAY)  # c had no event: day 20 still

    # Time alone moves orders out of the window: due passes at days 36 and 52 rescore only
    # the customers with an order leaving (or an R score dropping) by then.
    due_36 = await runtime.rescorer.due_pass(D0 + 36 * DAY)
    assert due_36.examined == 1  # a: a1 (day 0) left on day 30; b, c keep theirs
    after = feed.oracle(D0 + 36 * DAY)
    assert values_of(await runtime.reader.customer("a")) == oracle_values(after["a"])
    due_52 = await runtime.rescorer.due_pass(D0 + 52 * DAY)
    # day 40: a2 leaves a's window; day 50: c1 leaves c's; day 51: b2 leaves b's
    assert due_52.examined == 3
    await assert_as_oracle(feed, ["a", "b", "c"], D0 + 52 * DAY)
    state = await runtime.reader.customer("c")
    assert state is not None and (state.scored_window(30)[1], state.f, state.m) == (0, 1, 1)


async def test_a_due_pass_examines_only_the_customers_that_are_due(
    runtime: Runtime, redis_url: str
) -> None:
    feed = Feed(runtime)
    # 200 customers; the 10 of them who bought on day 0 have an order leaving the window on
    # day 30; the others bought on day 25, whose orders leave on day 55 and whose R drops
    # (30 days after a purchase) on day 56.
    batch = [
        event("purchase", f"c{i:03d}", f"o{i}", D0 + (0 if i < 10 else 25) * DAY)
        for i in range(200)
    ]
    await feed.apply(*batch)
    result = await runtime.rescorer.due_pass(D0 + 30 * DAY + 1)
    assert (result.examined, result.rescored) == (10, 10)
    await assert_as_oracle(feed, [f"c{i:03d}" for i in range(10)], D0 + 30 * DAY + 1)
    untouched = await runtime.reader.customer("c010")
    assert untouched is not None and untouched.as_of_ms == D0 + 25 * DAY


async def test_records_past_the_retention_are_deleted_and_lifetime_stays(
    runtime: Runtime, redis_url: str
) -> None:
    feed = Feed(runtime)
    r = redis.Redis.from_url(redis_url)
    await feed.apply(
        event("purchase", "old", "o1", D0),
        event("purchase", "old", "o2", D0 + 40 * DAY, "30.00"),
        event("refund", "old", "o1", D0 + 2 * DAY, "1.00", refund_id="r1"),
    )
    # Another customer's purchase moves the watermark to day 70: o1 (day 0) is past the
    # 60-day retention by it; an event of day 9 is too old to deduplicate.
    await feed.apply(
        event("purchase", "new", "n1", D0 + 70 * DAY),
        event("purchase", "old", "o0", D0 + 9 * DAY),
    )
    assert feed.outcomes["dlq:too_old"] == 1
    assert has_order(r, "old", "o1")  # nothing deletes it before the customer is due
    # old's due time: o2 (day 40) leaves its window on day 70; at the day-71 due pass its
    # records are folded again and o1's record and refund mark deleted.
    await runtime.rescorer.due_pass(D0 + 71 * DAY)
    assert not has_order(r, "old", "o1") and has_order(r, "old", "o2")
    refund_marks = [f for f in r.hkeys(Keys().orders_of("old")) if f.count(b"\x1f") == 2]
    assert refund_marks == []
    await assert_as_oracle(feed, ["old"], D0 + 71 * DAY)
    # Cancelling the latest purchase falls back to the deleted one's time.
    await feed.apply(event("cancel", "old", "o2", D0 + 72 * DAY))
    state = await runtime.reader.customer("old")
    assert state is not None and (state.first_ms, state.last_ms, state.orders) == (D0, D0, 1)
    await assert_as_oracle(feed, ["old"], D0 + 72 * DAY)


async def test_too_old_by_the_wall_clock(redis_url: str) -> None:
    """RFM_CLOCK=wall: the retention is measured against now, as the oracle measures it."""
    env = {**ENV, "RFM_CLOCK": "wall", "RFM_REDIS_URL": redis_url}
    rt = Runtime.build(load_settings(env=env))
    try:
        now = now_ms()
        retention = 60 * DAY
        values = [
            event("purchase", "w", "w1", now - retention - DAY),  # too old to deduplicate
            event("purchase", "w", "w2", now - retention + DAY),  # kept: a day inside
            event("refund", "w", "w1", now - DAY, "1.00", refund_id="r1"),  # of a too old one
            event("purchase", "w", "w2", now - retention + DAY),  # a duplicate, recognised
        ]
        rules = ValidationRules(currencies=rt.settings.scoring.currencies)
        records = [
            InputRecord(0, i, None, v, parse_order(v, rules, now)) for i, v in enumerate(values)
        ]
        applied = await rt.store.apply_orders("orders", records)
        history = fold(values, Config.from_env(env), now)
        assert Counter(applied.outcomes) == history.outcomes
        assert applied.outcomes == ["dlq:too_old", "applied", "dlq:unknown_order", "duplicate"]
    finally:
        await rt.close()


async def test_changing_the_window_on_existing_state(redis_url: str) -> None:
    """Orders applied under another window length (or none) never leave a stale window
    behind: each customer's window is derived again the first time it is scored, and a full
    pass re-derives everyone's."""

    def runtime_with(window: str) -> Runtime:
        env = {**ENV, "RFM_REDIS_URL": redis_url, "RFM_WINDOW_DAYS": window}
        return Runtime.build(load_settings(env=env))

    thirty, whole, ninety = runtime_with("30"), runtime_with("0"), runtime_with("90")
    try:
        feed = Feed(thirty)
        await feed.apply(
            event("purchase", "s", "s1", D0),
            event("purchase", "t", "t1", D0 + 5 * DAY),
        )
        feed.rt = whole  # the same partition and offsets, applied with the whole history
        await feed.apply(
            event("purchase", "s", "s2", D0 + 10 * DAY, "40.00"),
            event("refund", "s", "s1", D0 + 11 * DAY, "2.00", refund_id="r"),
        )
        feed.rt = thirty  # back to 30 days: s's window was dropped, t's is still right
        await feed.apply(event("purchase", "s", "s3", D0 + 12 * DAY, "5.00"))
        await assert_as_oracle(feed, ["s"], D0 + 12 * DAY)
        feed.rt = ninety  # a full pass with another length re-derives every window
        await ninety.rescorer.full_pass(D0 + 40 * DAY)
        feed.env = {**ENV, "RFM_WINDOW_DAYS": "90"}
        await assert_as_oracle(feed, ["s", "t"], D0 + 40 * DAY)
    finally:
        for rt in (thirty, whole, ninety):
            await rt.close()
