"""The end-to-end verdict's own logic (tests/support/checks.py), on hand-made topics and
states: what each kind of fault must look like in its report."""

from __future__ import annotations

import json
from typing import Any

from aiokafka.structs import ConsumerRecord

from tests.reference import Config, fold
from tests.reference.records import record
from tests.support.checks import check_chains, collect_changes, compare_state
from tests.support.stored import Stored

DAY = 86_400_000


def change(cid: str, seq: int, previous: str | None, segment: str | None, **extra: Any) -> dict:
    return {
        "event_id": f"{cid}-{seq}-{previous}-{segment}",
        "customer_id": cid,
        "sequence": seq,
        "previous_segment": previous,
        "segment": segment,
        "as_of": "2025-01-01T00:00:00.000Z",
        **extra,
    }


def topic(*changes: dict, partition: int = 0) -> list[ConsumerRecord[bytes, bytes]]:
    out = []
    for offset, c in enumerate(changes):
        value = json.dumps(c).encode()
        key = c["customer_id"].encode()
        out.append(ConsumerRecord("t", partition, offset, 0, 0, key, value, None, 0, 0, ()))
    return out


CHAIN = [
    change("c", 1, None, "new"),
    change("c", 2, "new", "general"),
    change("c", 3, "general", "new"),
]


def test_an_unbroken_chain_in_topic_order_passes_and_repeats_are_counted() -> None:
    report = check_chains(collect_changes(topic(*CHAIN, CHAIN[1], CHAIN[2])), {"c": ("new", 3)})
    assert report.problems() == {}
    assert report.repeats == 2


def test_changes_out_of_order_on_the_topic_fail_though_sorting_would_hide_it() -> None:
    report = check_chains(collect_changes(topic(CHAIN[0], CHAIN[2], CHAIN[1])), {"c": ("new", 3)})
    assert report.out_of_order == [("c", [1, 3, 2])]
    assert report.broken  # each link checked in the order a consumer reads them
    # the latest record a consumer keeps is "general", the store says "new"
    assert report.wrong_end == [("c", CHAIN[1], "new")]


def test_a_missing_change_is_lost_by_its_number_and_a_missing_tail_too() -> None:
    report = check_chains(collect_changes(topic(CHAIN[0], CHAIN[2])), {"c": ("new", 3)})
    assert report.lost == [("c", 2)]
    report = check_chains(collect_changes(topic(CHAIN[0], CHAIN[1])), {"c": ("new", 3)})
    assert report.lost == [("c", 3)]
    assert report.wrong_end


def test_an_id_again_with_other_content_is_doubled_not_a_repeat() -> None:
    other = {**CHAIN[1], "as_of": "2025-02-01T00:00:00.000Z"}
    report = check_chains(collect_changes(topic(*CHAIN, other)), {"c": ("new", 3)})
    assert len(report.doubled) == 1 and report.repeats == 0
    # two different changes numbered alike
    twin = change("c", 2, "new", "dormant")
    report = check_chains(
        collect_changes(topic(CHAIN[0], CHAIN[1], twin, CHAIN[2])), {"c": ("new", 3)}
    )
    assert ("two changes numbered alike", "c", 2) in report.doubled


def test_a_customer_split_over_partitions_is_reported() -> None:
    records = topic(CHAIN[0], CHAIN[1]) + topic(CHAIN[2], partition=1)
    assert check_chains(collect_changes(records), {"c": ("new", 3)}).split == ["c"]


def test_after_lost_writes_renumbering_is_allowed_only_from_a_published_change() -> None:
    # published from the lost state: 2 general, 3 new; recomputed: 2 general (other as_of),
    # then a re-announcement 3 general -> general
    recomputed = {**CHAIN[1], "as_of": "2025-03-01T00:00:00.000Z"}
    announce = change("c", 3, "general", "general")
    records = topic(*CHAIN, recomputed, announce)
    report = check_chains(collect_changes(records), {"c": ("general", 3)}, superseded_allowed=True)
    assert report.problems() == {}
    assert (report.superseded, report.recomputed) == (1, 1)
    # the same without the re-announcement: the latest event a consumer holds is wrong
    report = check_chains(
        collect_changes(topic(*CHAIN, recomputed)), {"c": ("general", 2)}, superseded_allowed=True
    )
    assert report.wrong_end
    # a step back that links to no published change is broken
    stray = change("c", 2, "dormant", "lost")
    report = check_chains(
        collect_changes(topic(*CHAIN, stray)), {"c": ("lost", 2)}, superseded_allowed=True
    )
    assert report.broken


def stored(cid: str, orders: int, spend: int, as_of: int | None, **scores: Any) -> Stored:
    values = {"r": None, "f": None, "m": None, "recency_days": None, "segment": None, **scores}
    first = last = 1_767_225_600_000  # 2026-01-01
    # no window: the window's values are the lifetime ones
    return Stored(cid, first, last, orders, spend, orders, spend, as_of_ms=as_of, **values)


def test_state_lost_doubled_unscored_and_stale_are_told_apart_per_customer() -> None:
    day0 = 1_767_225_600_000
    at = "2026-01-01T00:00:00Z"
    history = fold(
        [
            record(customer_id="a", order_id="a1", amount="10.00", occurred_at=at),
            record(customer_id="b", order_id="b1", amount="10.00", occurred_at=at),
            record(customer_id="c", order_id="c1", amount="10.00", occurred_at=at),
            record(customer_id="d", order_id="d1", amount="10.00", occurred_at=at),
            record(
                customer_id="d", order_id="d2", amount="10.00", occurred_at="2026-01-03T00:00:00Z"
            ),
        ],
        Config.from_env({"RFM_CLOCK": "event"}),
        day0 + 10 * DAY,
    )
    right = {"r": 5, "f": 1, "m": 1, "recency_days": 0, "segment": "new"}
    got = {
        "a": stored("a", 0, 0, day0, **right),  # lost its order
        "b": stored("b", 2, 2000, day0, **right),  # doubled it
        "c": stored("c", 1, 1000, None),  # never scored
        # d: both orders, scores that happen to be right for them, but as of before d2
        "d": Stored("d", day0, day0 + 2 * DAY, 2, 2000, 2, 2000, 5, 2, 1, 0, "new", day0 + DAY),
        "x": stored("x", 1, 1000, day0, **right),  # a customer the events never made
    }
    report = compare_state(got, history, Config.from_env({"RFM_CLOCK": "event"}), None)
    assert report.lost == ["a"]
    assert sorted(report.doubled) == ["b", "x"]
    assert report.unscored == ["c"]
    assert report.stale == [("d", day0 + DAY, day0 + 2 * DAY)]
