"""The change record queued in the outbox and the event the relay renders from it.

The pinned bytes below are what the version that built events inside Redis published for
the same changes: consumers recognise repeats by event_id, so moving the rendering must not
change a single byte of an event.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.change_events import (
    EVENT_NAMESPACE,
    ChangeRecordError,
    base36,
    change_record,
    render,
    render_snapshot,
)
from state.model import Scores, iso_utc
from state.money import format_minor

AS_OF = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_an_event_renders_to_the_bytes_events_were_published_as() -> None:
    cid = 'c-"42"\\ é'
    record = change_record(12, "loyal", "champions", Scores(4, 3, 5, 45), 7, 123456, 2, "EUR",
                           AS_OF, "recency", 9, 200000, 365)  # fmt: skip
    # seq 12, scores 4 3 5 and 45 days, 7 orders, spend 123456 in the window, 9 orders and
    # 200000 in all: base 36 as in the profile
    assert record == b"c,loyal,champions,43519,7,2n9c,2,EUR,1767225600000,recency,9,4abk,365,,,,"
    assert render(cid.encode(), record) == (
        b'{"event_id":"16956e5f-3fd3-55c6-8344-ceb84898c59d","customer_id":"c-\\"42\\"\\\\ '
        b'\xc3\xa9","previous_segment":"loyal","segment":"champions","r":4,"f":3,"m":5,'
        b'"recency_days":45,"orders":7,"spend":"1234.56","lifetime_orders":9,'
        b'"lifetime_spend":"2000.00","window_days":365,"currency":"EUR","as_of":'
        b'"2026-01-01T00:00:00.000Z","segment_since":"2026-01-01T00:00:00.000Z",'
        b'"cause":"recency","sequence":12,"schema_version":2}'
    )


def test_a_record_queued_before_windows_renders_as_whole_history() -> None:
    """Records of ten fields were queued by versions before windows: their orders and
    spend counted every order, so they are the lifetime values and the window is 0."""
    record = b"c,loyal,champions,43519,7,2n9c,2,EUR,1767225600000,recency"
    event = orjson.loads(render(b"c1", record))
    assert (event["orders"], event["spend"]) == (7, "1234.56")
    assert (event["lifetime_orders"], event["lifetime_spend"], event["window_days"]) == (
        7,
        "1234.56",
        0,
    )
    assert event["schema_version"] == 2
    assert event["segment_since"] == event["as_of"]


def test_records_before_the_history_and_announcements_tell_since() -> None:
    """Thirteen fields: queued before the segment history, a change entered its segment at
    as_of. An announcement of the segment the customer is in carries its since, or '?'."""
    before = b"c,loyal,champions,43519,7,2n9c,2,EUR,1767225600000,recency,9,4abk,365"
    assert orjson.loads(render(b"c1", before))["segment_since"] == "2026-01-01T00:00:00.000Z"
    known = change_record(4, "loyal", "loyal", Scores(4, 3, 5, 45), 7, 1, 2, "EUR", AS_OF,
                          "rescore", 7, 1, 0, AS_OF - 86_400_000)  # fmt: skip
    assert known.endswith(b",0," + base36(AS_OF - 86_400_000).encode() + b",,,")
    assert orjson.loads(render(b"c1", known))["segment_since"] == "2025-12-31T00:00:00.000Z"
    unknown = change_record(4, "loyal", "loyal", Scores(4, 3, 5, 45), 7, 1, 2, "EUR", AS_OF,
                            "rescore", 7, 1, 0, "?")  # fmt: skip
    assert orjson.loads(render(b"c1", unknown))["segment_since"] is None


def test_a_snapshot_is_the_profile_as_of_the_change() -> None:
    """The fields of ``rfm-stream export`` in its order, then the change's sequence."""
    first, last = AS_OF - 90 * 86_400_000, AS_OF - 45 * 86_400_000
    record = change_record(12, "loyal", "champions", Scores(4, 3, 5, 45), 7, 123456, 2, "EUR",
                           AS_OF, "recency", 9, 200000, 365, None, first, last)  # fmt: skip
    assert orjson.loads(render_snapshot(b"c1", record) or b"") == {
        "customer_id": "c1",
        "first_purchase_at": iso_utc(first),
        "last_purchase_at": iso_utc(last),
        "orders": 7,
        "spend": "1234.56",
        "lifetime_orders": 9,
        "lifetime_spend": "2000.00",
        "window_days": 365,
        "currency": "EUR",
        "recency_days": 45,
        "r": 4,
        "f": 3,
        "m": 5,
        "segment": "champions",
        "previous_segment": "loyal",
        "segment_since": iso_utc(AS_OF),
        "as_of": iso_utc(AS_OF),
        "sequence": 12,
    }
    # an announcement: the profile's own previous segment and since
    again = change_record(13, "champions", "champions", Scores(4, 3, 5, 46), 7, 123456, 2,
                          "EUR", AS_OF + 86_400_000, "rescore", 9, 200000, 365, AS_OF, first,
                          last, "loyal")  # fmt: skip
    snap = orjson.loads(render_snapshot(b"c1", again) or b"")
    assert (snap["previous_segment"], snap["segment_since"]) == ("loyal", iso_utc(AS_OF))
    # no orders left: no scores, no as_of (as export shows it)
    none = change_record(14, "champions", None, None, 0, 0, 2, "EUR", AS_OF, "order", 0, 0, 365)
    snap = orjson.loads(render_snapshot(b"c1", none) or b"")
    assert (snap["segment"], snap["as_of"], snap["first_purchase_at"]) == (None, None, None)
    # an erasure: a tombstone
    erased = b"e,champions,,,0,0,2,EUR,1767225600000,erased,0,0,365,,,,"
    assert render_snapshot(b"c1", erased) is None


def test_a_customer_left_without_orders_renders_nulls() -> None:
    record = change_record(3, "at_risk", None, None, 0, -250, 0, "JPY", AS_OF + 123, "order",
                           0, -250, 0)  # fmt: skip
    assert record == b"3,at_risk,,,0,-6y,0,JPY,1767225600123,order,0,-6y,0,,,,"
    assert render(b"c9", record) == (
        b'{"event_id":"28d94f43-51ee-53ae-9134-318057dfa961","customer_id":"c9",'
        b'"previous_segment":"at_risk","segment":null,"r":null,"f":null,"m":null,'
        b'"recency_days":null,"orders":0,"spend":"-250","lifetime_orders":0,'
        b'"lifetime_spend":"-250","window_days":0,"currency":"JPY","as_of":'
        b'"2026-01-01T00:00:00.123Z","segment_since":"2026-01-01T00:00:00.123Z",'
        b'"cause":"order","sequence":3,"schema_version":2}'
    )


names = st.none() | st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True)
score = st.integers(1, 5)


@given(
    cid=st.text(min_size=1, max_size=40),  # no surrogates: JSON input cannot carry one
    seq=st.integers(1, 10**9),
    previous=names,
    segment=names,
    scores=st.none() | st.builds(Scores, score, score, score, st.integers(0, 10**5)),
    orders=st.integers(0, 10**6),
    spend=st.integers(-(10**15), 10**15),
    exponent=st.integers(0, 4),
    currency=st.from_regex(r"[A-Z]{3}", fullmatch=True),
    as_of=st.integers(0, 4 * 10**12),
    cause=st.sampled_from(["order", "recency", "rescore", "erased"]),
    lifetime_orders=st.integers(0, 10**6),
    lifetime_spend=st.integers(-(10**15), 10**15),
    window_days=st.integers(0, 36_500),
)
def test_every_field_survives_the_record(
    cid: str,
    seq: int,
    previous: str | None,
    segment: str | None,
    scores: Scores | None,
    orders: int,
    spend: int,
    exponent: int,
    currency: str,
    as_of: int,
    cause: str,
    lifetime_orders: int,
    lifetime_spend: int,
    window_days: int,
) -> None:
    record = change_record(seq, previous, segment, scores, orders, spend, exponent, currency,
                           as_of, cause, lifetime_orders, lifetime_spend,
                           window_days)  # fmt: skip
    event = orjson.loads(render(cid.encode(), record))
    name = f"{cid}\x1f{seq}\x1f{previous or ''}\x1f{segment or ''}"
    assert event == {
        "event_id": str(uuid.uuid5(EVENT_NAMESPACE, name)),
        "customer_id": cid,
        "previous_segment": previous,
        "segment": segment,
        "r": scores.r if scores else None,
        "f": scores.f if scores else None,
        "m": scores.m if scores else None,
        "recency_days": scores.recency_days if scores else None,
        "orders": orders,
        "spend": format_minor(spend, exponent),
        "lifetime_orders": lifetime_orders,
        "lifetime_spend": format_minor(lifetime_spend, exponent),
        "window_days": window_days,
        "currency": currency,
        "as_of": iso_utc(as_of),
        "segment_since": iso_utc(as_of),
        "cause": cause,
        "sequence": seq,
        "schema_version": 2,
    }


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"1,a,b,1231,5,6,2,EUR,1767225600000",  # a field short
        b"1,a,b,1231,5,6,2,EUR,1767225600000,order,x",  # a field too many
        b"!,a,b,1231,5,6,2,EUR,1767225600000,order",  # seq not a number
        b"1,a,b,1231,5,6,two,EUR,1767225600000,order",  # exponent not a number
        b"1,a,b,12,5,6,2,EUR,1767225600000,order",  # scores without recency days
        b"1,a,b,1x31,5,6,2,EUR,1767225600000,order",  # a score that is not a digit
        b"1,\xff,b,1231,5,6,2,EUR,1767225600000,order",  # not ASCII
    ],
)
def test_a_malformed_record_is_refused_by_name(record: bytes) -> None:
    with pytest.raises(ChangeRecordError, match="c1"):
        render(b"c1", record)


def test_a_customer_id_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ChangeRecordError):
        render(b"\xff", b"1,a,b,1231,5,6,2,EUR,1767225600000,order")


@given(st.integers(-(2**63), 2**63))
def test_base36_is_what_int_reads_back(n: int) -> None:
    text = base36(n)
    assert int(text, 36) == n
    assert text == text.lower() and text.lstrip("-").isalnum()
