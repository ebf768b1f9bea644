"""The fold in publish order: duplicates, refunds, cancels, the event clock, too_old."""

from __future__ import annotations

from collections import Counter

import pytest

from . import MS_PER_DAY, AmbiguousHistory, Config, expected, fold
from .records import iso, record

NOW = 1_795_600_800_000  # 2026-11-25T10:00:00Z
DAY = MS_PER_DAY
CONFIG = Config()


def purchase(order: str, at: int, amount: str = "10.00", customer: str = "c1") -> bytes:
    return record(order_id=order, customer_id=customer, occurred_at=at, amount=amount)


def refund(order: str, at: int, amount: str, refund_id: str | None = None) -> bytes:
    return record(type="refund", order_id=order, occurred_at=at, amount=amount, refund_id=refund_id)


def cancel(order: str, at: int, customer: str = "c1") -> bytes:
    return record(type="cancel", order_id=order, customer_id=customer, occurred_at=at)


def test_purchases_and_duplicates() -> None:
    history = fold(
        [
            purchase("o1", NOW - 3 * DAY),
            purchase("o1", NOW - DAY),  # the same order id again: a duplicate
            purchase("o1", NOW - 2 * DAY, customer="c2"),  # another customer's o1
            purchase("o2", NOW - 2 * DAY, "5.50"),
        ],
        CONFIG,
        NOW,
    )
    assert history.outcomes == Counter(applied=3, duplicate=1)
    c1 = expected(history, CONFIG, NOW)["c1"]
    assert (c1.first_ms, c1.last_ms, c1.orders, c1.spend_minor) == (
        NOW - 3 * DAY,
        NOW - 2 * DAY,
        2,
        1550,
    )
    assert (c1.lifetime_orders, c1.lifetime_spend_minor) == (2, 1550)
    assert expected(history, CONFIG, NOW)["c2"].orders == 1


def test_a_cancelled_order_id_is_still_a_duplicate() -> None:
    history = fold([purchase("o1", NOW), cancel("o1", NOW), purchase("o1", NOW)], CONFIG, NOW)
    assert history.outcomes == Counter(applied=2, duplicate=1)


def test_refunds_are_capped_at_what_is_left_of_the_order() -> None:
    history = fold(
        [
            purchase("o1", NOW - DAY, "100.00"),
            purchase("o2", NOW - DAY, "50.00"),
            refund("o1", NOW, "30.00", "r1"),  # 70.00 left
            refund("o1", NOW + 1, "30.00", "r1"),  # the same refund id: duplicate
            refund("o1", NOW, "100.00", "r2"),  # only 70.00 left to refund
            refund("o1", NOW, "10.00", "r3"),  # nothing left: applied, changes nothing
            refund("o2", NOW, "5.00"),  # no refund id: keyed by time and amount
            refund("o2", NOW, "5.00"),  # the same time and amount: duplicate
            refund("o2", NOW, "5.01"),
            refund("o2", NOW + 1, "5.00"),
        ],
        CONFIG,
        NOW,
    )
    assert history.outcomes == Counter(applied=8, duplicate=2)
    profile = expected(history, CONFIG, NOW)["c1"]
    assert (profile.orders, profile.spend_minor) == (2, 5000 - 1501)
    # Refunds do not move first or last purchase.
    assert (profile.first_ms, profile.last_ms) == (NOW - DAY, NOW - DAY)


def test_a_refund_id_that_looks_like_a_time_and_amount_key() -> None:
    history = fold(
        [
            purchase("o1", NOW - DAY),
            refund("o1", NOW, "1.00", f"{NOW}:100"),
            refund("o1", NOW, "1.00"),
        ],
        CONFIG,
        NOW,
    )
    assert history.outcomes == Counter(applied=2, duplicate=1)


def test_refunds_and_cancels_of_unknown_or_cancelled_orders() -> None:
    history = fold(
        [
            refund("o1", NOW, "1.00"),  # before the purchase
            cancel("o1", NOW),
            purchase("o1", NOW - DAY),
            cancel("o9", NOW),
            record(type="refund", order_id="o1", customer_id="c2", occurred_at=NOW),  # not c2's
            cancel("o1", NOW),
            cancel("o1", NOW),  # already cancelled
            refund("o1", NOW, "1.00"),  # a refund of a cancelled order
        ],
        CONFIG,
        NOW,
    )
    assert history.outcomes == Counter(
        {"dlq:unknown_order": 4, "applied": 2, "duplicate": 1, "dlq:order_cancelled": 1}
    )
    assert set(history.customers) == {"c1"}  # c2 never purchased anything


def test_cancels_move_first_and_last_purchase() -> None:
    t1, t2, t3 = NOW - 30 * DAY, NOW - 20 * DAY, NOW - 10 * DAY
    events = [purchase("a", t2, "20.00"), purchase("b", t3, "30.00"), purchase("c", t1, "10.00")]
    history = fold([*events, refund("b", NOW, "5.00"), cancel("b", NOW)], CONFIG, NOW)
    profile = expected(history, CONFIG, NOW)["c1"]
    # The refunded, then cancelled order takes what was left of it (25.00) out of spend.
    assert (profile.first_ms, profile.last_ms, profile.orders, profile.spend_minor) == (
        t1,
        t2,
        2,
        3000,
    )
    assert profile.recency_days == 20
    history = fold([*events, cancel("c", NOW)], CONFIG, NOW)
    assert expected(history, CONFIG, NOW)["c1"].first_ms == t2


def test_a_customer_whose_every_order_is_cancelled_has_no_scores() -> None:
    history = fold([purchase("a", NOW), cancel("a", NOW)], CONFIG, NOW)
    profile = expected(history, CONFIG, NOW)["c1"]
    assert (profile.first_ms, profile.last_ms, profile.r, profile.segment) == (None,) * 4
    assert (profile.orders, profile.spend_minor, profile.lifetime_orders) == (0, 0, 0)
    # A new purchase brings them back.
    history = fold([purchase("a", NOW), cancel("a", NOW), purchase("b", NOW - DAY)], CONFIG, NOW)
    assert expected(history, CONFIG, NOW)["c1"].segment == "new"


def test_the_event_clock_is_the_latest_applied_event_time() -> None:
    history = fold(
        [
            purchase("o1", NOW - 5 * DAY),
            refund("o1", NOW - 4 * DAY, "1.00"),
            purchase("o1", NOW - DAY),  # duplicate: does not move the clock
            cancel("o9", NOW),  # unknown order
            record(occurred_at=NOW, amount="x"),  # dead letter
        ],
        CONFIG,
        NOW,
    )
    assert history.clock_ms == NOW - 4 * DAY
    assert fold([], CONFIG, NOW).clock_ms == 0


def test_outcomes_count_every_event() -> None:
    values = [purchase("o1", NOW), None, b"[]", record(type="x"), purchase("o1", NOW)]
    history = fold(values, CONFIG, NOW)
    assert sum(history.outcomes.values()) == len(values)
    assert history.outcomes == Counter(
        {
            "applied": 1,
            "duplicate": 1,
            "dlq:malformed_json": 1,
            "dlq:not_an_object": 1,
            "dlq:invalid_type": 1,
        }
    )


# ------------------------------------------------------------------------------ windows


def window(days: int) -> Config:
    return Config.from_env({"RFM_WINDOW_DAYS": str(days)})


@pytest.mark.parametrize("days", [30, 365])
def test_an_order_counts_while_younger_than_the_window(days: int) -> None:
    edge = NOW - days * DAY
    history = fold(
        [
            purchase("out", edge, "1.00"),  # as_of - ts == window: out
            purchase("in", edge + 1, "2.00"),  # one ms less: in
            purchase("ahead", NOW + 60_000, "4.00"),  # after as_of: in
        ],
        window(days),
        NOW,
    )
    profile = expected(history, window(days), NOW)["c1"]
    assert (profile.orders, profile.spend_minor) == (2, 600)
    assert (profile.lifetime_orders, profile.lifetime_spend_minor) == (3, 700)
    assert (profile.first_ms, profile.last_ms, profile.recency_days) == (edge, NOW + 60_000, 0)


def test_window_zero_is_the_whole_history() -> None:
    history = fold([purchase("old", NOW - 5000 * DAY), purchase("new", NOW)], window(0), NOW)
    profile = expected(history, window(0), NOW)["c1"]
    assert (profile.orders, profile.spend_minor) == (2, 2000)


def test_a_customer_without_orders_in_the_window_scores_f1_m1_and_keeps_lifetime() -> None:
    config = Config.from_env({"RFM_WINDOW_DAYS": "30", "RFM_ORDER_RETENTION_DAYS": "0"})
    values = [purchase(f"o{i}", NOW - (40 + i) * DAY, "500.00") for i in range(12)]
    profile = expected(fold(values, config, NOW), config, NOW)["c1"]
    assert (profile.orders, profile.spend_minor, profile.f, profile.m) == (0, 0, 1, 1)
    assert (profile.lifetime_orders, profile.lifetime_spend_minor) == (12, 600_000)
    assert (profile.recency_days, profile.r, profile.segment) == (40, 4, "new")
    # The whole history would make them high value.
    whole = expected(fold(values, CONFIG, NOW), CONFIG, NOW)["c1"]
    assert (whole.f, whole.m, whole.segment) == (5, 5, "high_value")


def test_a_late_refund_counts_against_the_order_it_refunds() -> None:
    config = window(30)
    values = [
        purchase("old", NOW - 40 * DAY, "100.00"),
        purchase("new", NOW - DAY, "100.00"),
        refund("old", NOW, "60.00"),  # a refund now, of an order outside the window
        refund("new", NOW, "10.00"),
    ]
    profile = expected(fold(values, config, NOW), config, NOW)["c1"]
    assert (profile.spend_minor, profile.lifetime_spend_minor) == (9000, 13000)


# ------------------------------------------------------------------------------ too_old


def test_retention_defaults_to_the_window_plus_30_days() -> None:
    assert (window(30).retention_days, window(365).retention_days) == (60, 395)
    assert (window(0).retention_days, Config.from_env({}).retention_days) == (0, 395)


def test_too_old_on_the_wall_clock() -> None:
    config = window(30)  # retention 60 days
    edge = NOW - 60 * DAY
    history = fold(
        [
            purchase("o1", edge),  # exactly the retention old: too_old
            purchase("o2", edge + 1),
            record(order_id="o3", occurred_at=edge - DAY, amount="x"),  # invalid stays invalid
            cancel("o1", edge - DAY),  # too_old before unknown_order
            purchase("o2", edge),  # too_old before duplicate
        ],
        config,
        NOW,
    )
    assert history.outcomes == Counter({"dlq:too_old": 3, "applied": 1, "dlq:invalid_amount": 1})
    assert history.clock_ms == edge + 1


def test_too_old_on_the_event_clock() -> None:
    config = Config.from_env({"RFM_CLOCK": "event", "RFM_ORDER_RETENTION_DAYS": "10"})
    start = NOW - 100 * DAY
    history = fold(
        [
            purchase("o1", start - 50 * DAY),  # no clock yet: nothing is too old
            purchase("o2", start),
            purchase("o3", start - 10 * DAY),  # 10 days behind the clock: too_old
            purchase("o4", start - 10 * DAY + 1),
        ],
        config,
        NOW,
    )
    assert history.outcomes == Counter({"applied": 3, "dlq:too_old": 1})
    assert history.clock_ms == start


def test_retention_zero_keeps_everything() -> None:
    config = Config.from_env({"RFM_WINDOW_DAYS": "30", "RFM_ORDER_RETENTION_DAYS": "0"})
    history = fold([purchase("o1", NOW - 9000 * DAY)], config, NOW)
    assert history.outcomes == Counter(applied=1)


def test_a_reference_to_an_order_older_than_the_retention_is_ambiguous() -> None:
    config = Config.from_env({"RFM_CLOCK": "event", "RFM_ORDER_RETENTION_DAYS": "10"})
    start = NOW - 100 * DAY
    old = [purchase("o1", start), purchase("o2", start + 10 * DAY)]  # o1 now 10 days old
    for late in (refund("o1", start + 10 * DAY, "1.00"), cancel("o1", start + 10 * DAY)):
        with pytest.raises(AmbiguousHistory):
            fold([*old, late], config, NOW)
    with pytest.raises(AmbiguousHistory):  # a purchase repeating the old order id
        fold([*old, purchase("o1", start + 10 * DAY)], config, NOW)
    # Cancelling the latest order needs the one before it, whose record may be gone: the
    # product keeps the latest deleted purchase time for this (state/lua/window.lua), so it
    # is not ambiguous: the first purchase becomes the last.
    history = fold([*old, cancel("o2", start + 10 * DAY)], config, NOW)
    assert history.outcomes == Counter(applied=3)
    (only,) = history.customers["c1"].live_orders()
    assert only.occurred_ms == start
    # One millisecond younger than the retention is still known.
    young = [purchase("o1", start + 1), purchase("o2", start + 10 * DAY)]
    history = fold([*young, refund("o1", start + 10 * DAY, "1.00")], config, NOW)
    assert history.outcomes == Counter(applied=3)


def test_iso_and_epoch_times_agree() -> None:
    history = fold([purchase("o1", NOW - DAY), record(occurred_at=iso(NOW - DAY))], CONFIG, NOW)
    assert history.outcomes == Counter(applied=1, duplicate=1)


def test_no_order_in_the_window_is_f1_m1_even_with_zero_bounds() -> None:
    config = Config.from_env(
        {"RFM_WINDOW_DAYS": "30", "RFM_FREQUENCY": "0,1,2,3", "RFM_MONETARY": "0,1,2,3"}
    )
    values = [
        purchase("old", NOW - 40 * DAY, customer="outside"),
        purchase("new", NOW - DAY, customer="refunded"),
        record(type="refund", customer_id="refunded", order_id="new", occurred_at=NOW),
    ]
    profiles = expected(fold(values, config, NOW), config, NOW)
    assert (profiles["outside"].f, profiles["outside"].m) == (1, 1)
    # An order in the window, fully refunded: spend 0 reaches the bound 0.
    assert (profiles["refunded"].f, profiles["refunded"].m) == (3, 2)
