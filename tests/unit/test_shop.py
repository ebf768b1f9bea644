"""The synthetic shop: deterministic, realistic, and every record labelled as the worker sees it."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from functools import cache
from typing import Any

import orjson
import pytest

from rfm_dev.shop import ShopEvent, ShopProfile, generate_history, history_events, live_orders
from state.model import OrderEvent, Rejection
from state.money import CurrencyTable
from stream.validation import ValidationRules, parse_order

START = 1_735_689_600_000  # 2025-01-01T00:00:00Z
END = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PROFILE = ShopProfile(customers=2_000, orders=10_000, start_ms=START, end_ms=END)
RULES = ValidationRules(CurrencyTable("USD"))


@cache
def events(profile: ShopProfile = PROFILE) -> tuple[ShopEvent, ...]:
    return tuple(history_events(profile))


@cache
def parsed(profile: ShopProfile = PROFILE) -> tuple[OrderEvent | Rejection, ...]:
    return tuple(parse_order(e.value, RULES, profile.end_ms) for e in events(profile))


def good_events(profile: ShopProfile = PROFILE) -> list[OrderEvent]:
    pairs = zip(events(profile), parsed(profile), strict=True)
    return [p for e, p in pairs if not e.bad and isinstance(p, OrderEvent)]


def purchases(profile: ShopProfile = PROFILE) -> dict[str, OrderEvent]:
    return {e.order_id: e for e in good_events(profile) if e.kind == "purchase"}


def test_same_profile_gives_identical_bytes() -> None:
    assert list(generate_history(PROFILE)) == list(generate_history(PROFILE))
    assert list(generate_history(PROFILE)) == [(e.key, e.value) for e in events()]


def test_another_seed_gives_another_history() -> None:
    other = ShopProfile(customers=50, orders=200, start_ms=START, end_ms=END, seed=8)
    same = ShopProfile(customers=50, orders=200, start_ms=START, end_ms=END, seed=7)
    assert list(generate_history(other)) != list(generate_history(same))


def test_every_good_event_parses_and_its_key_is_the_customer() -> None:
    for event, result in zip(events(), parsed(), strict=True):
        if not event.bad:
            assert isinstance(result, OrderEvent), (event.value, result)
            assert event.key == result.customer_id.encode()
            assert START <= result.occurred_ms <= END


def test_exact_number_of_purchases_and_customers() -> None:
    bought = purchases()
    assert len(bought) == PROFILE.orders
    assert {p.customer_id for p in bought.values()} == {f"c{n:06d}" for n in range(2_000)}


def test_every_bad_event_is_refused_or_names_an_order_never_bought() -> None:
    bought = purchases()
    bad = [(e, p) for e, p in zip(events(), parsed(), strict=True) if e.bad]
    assert len(bad) == round(PROFILE.orders * PROFILE.bad_rate)
    for event, result in bad:
        if isinstance(result, OrderEvent):
            assert result.kind in ("refund", "cancel"), event.value
            assert result.order_id not in bought
    reasons = {p.reason for _, p in bad if isinstance(p, Rejection)}
    assert {"malformed_json", "missing_field", "negative_amount", "unknown_currency"} <= reasons


def test_orders_are_skewed_towards_a_few_customers() -> None:
    per_customer = sorted(Counter(p.customer_id for p in purchases().values()).values())
    top_share = sum(per_customer[-20:]) / PROFILE.orders  # the top 1 % of 2,000 customers
    assert top_share > 0.05
    assert per_customer[len(per_customer) // 2] <= 3  # most customers buy once to three times


def test_recency_varies_widely() -> None:
    last: dict[str, int] = {}
    for p in purchases().values():
        last[p.customer_id] = max(last.get(p.customer_id, 0), p.occurred_ms)
    span = END - START
    gone = sum(1 for ms in last.values() if END - ms > span / 2)
    recent = sum(1 for ms in last.values() if END - ms < span / 10)
    assert gone > 0.1 * len(last) and recent > 0.1 * len(last)


def test_amounts_are_mixed_and_have_two_decimals() -> None:
    amounts = [p.amount_minor for p in purchases().values()]
    small = sum(1 for a in amounts if 500 <= a <= 8_000)
    big = sum(1 for a in amounts if a > 50_000)
    assert small > 0.5 * len(amounts) and 0 < big < 0.2 * len(amounts)
    for event in events()[:200]:
        document = orjson.loads(event.value) if not event.bad else {}
        if "amount" in document:
            assert isinstance(document["amount"], str)
            assert len(document["amount"].split(".")[1]) == 2


def test_retries_refunds_cancels_and_late_events_all_occur() -> None:
    good = good_events()
    kinds = Counter(e.kind for e in good)
    assert kinds["purchase"] > PROFILE.orders  # the retried duplicates
    assert kinds["refund"] > 0 and kinds["cancel"] > 0
    late = sum(1 for a, b in itertools.pairwise(good) if b.occurred_ms < a.occurred_ms)
    assert 0.01 * len(good) < late < 0.15 * len(good)


def test_refunds_and_cancels_follow_their_purchase() -> None:
    seen: dict[str, OrderEvent] = {}
    for event in good_events():
        if event.kind == "purchase":
            seen[event.order_id] = event
            continue
        purchase = seen[event.order_id]  # already published
        assert purchase.customer_id == event.customer_id
        assert purchase.occurred_ms <= event.occurred_ms
        if event.kind == "refund":
            assert event.refund_id and 0 < event.amount_minor <= purchase.amount_minor


def test_zero_decimal_currency_gets_whole_amounts() -> None:
    profile = ShopProfile(customers=20, orders=100, start_ms=START, end_ms=END, currency="JPY")
    rules = ValidationRules(CurrencyTable("JPY"))
    for event in history_events(profile):
        if not event.bad:
            assert isinstance(parse_order(event.value, rules, END), OrderEvent)


@pytest.mark.parametrize(
    "changes",
    [{"orders": 5, "customers": 10}, {"customers": 0, "orders": 0}, {"end_ms": START}],
)
def test_impossible_profiles_are_refused(changes: dict[str, Any]) -> None:
    profile = replace(ShopProfile(customers=10, orders=20, start_ms=START, end_ms=END), **changes)
    with pytest.raises(ValueError):
        list(generate_history(profile))


def live_sample(n: int, seed: int = 3) -> list[tuple[bytes, bytes]]:
    clock = itertools.count(END, 250)
    return list(itertools.islice(live_orders(300, seed, lambda: next(clock)), n))


def test_live_orders_parse_and_refer_to_earlier_purchases() -> None:
    sample = live_sample(3_000)
    assert sample == live_sample(3_000)
    bought: dict[str, OrderEvent] = {}
    closed: set[str] = set()
    for key, value in sample:
        event = parse_order(value, RULES, END + 10**9)
        assert isinstance(event, OrderEvent), value
        assert key == event.customer_id.encode()
        if event.kind == "purchase":
            assert event.order_id not in bought
            bought[event.order_id] = event
        else:
            assert event.order_id in bought and event.order_id not in closed
            closed.add(event.order_id)
            assert event.amount_minor <= bought[event.order_id].amount_minor
    per_customer = sorted(Counter(p.customer_id for p in bought.values()).values())
    assert sum(per_customer[-3:]) > 0.05 * len(bought)  # 1 % of customers, > 5 % of orders
    assert len(closed) > 0
