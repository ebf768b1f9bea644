"""Validation of raw order records: whole-payload failures and hostile input (nothing escapes)."""

from __future__ import annotations

import sys
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.model import OrderEvent, Rejection
from stream.validation import _CONTROL, REASONS, ValidationRules, parse_order
from tests.support.order_payloads import (
    NOW,
    RULES,
    SKEW,
    parse,
    payload,
    rejected,
)

# --- whole-payload failures ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"   ",
        b"{",
        b"\xff\xfe",
        b"NaN",
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"order_id": "\\ud800"}',
        b"{'order_id': 'o'}",
        b'{"a": 1} trailing',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_malformed_json(raw: bytes | None) -> None:
    rejected("malformed_json", raw)


@pytest.mark.parametrize(
    "raw", [b"[]", b"1", b'"order"', b"null", b"true", b"[" * 500 + b"]" * 500]
)
def test_not_an_object(raw: bytes) -> None:
    rejected("not_an_object", raw)


def test_deep_nesting_inside_a_field_is_described() -> None:
    raw = b'{"order_id": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert "array of length 1" in rejected("invalid_field", raw).message


def test_payload_size_is_checked_before_parsing() -> None:
    rules = ValidationRules(RULES.currencies, max_payload_bytes=200)
    raw = payload()
    padded = raw[:-1] + b"," + b'"pad":"' + b"x" * (200 - len(raw) - 9) + b'"}'
    assert len(padded) == 200
    assert isinstance(parse_order(padded, rules, NOW), OrderEvent)
    rejected("payload_too_large", padded[:-1] + b" }", rules)
    assert "201 bytes" in rejected("payload_too_large", b"{" * 201, rules).message


def test_rules_reject_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        ValidationRules(RULES.currencies, max_payload_bytes=0)
    with pytest.raises(ValueError):
        ValidationRules(RULES.currencies, max_amount_major=Decimal("NaN"))


# --- hostile input: nothing escapes -------------------------------------------------------


def check(result: OrderEvent | Rejection) -> None:
    if isinstance(result, Rejection):
        assert result.reason in REASONS[:12]
        assert isinstance(result.message, str)
        assert len(result.message) < 300
        return
    assert isinstance(result, OrderEvent)
    assert result.kind in ("purchase", "refund", "cancel")
    assert result.order_id and result.customer_id
    assert 0 < result.occurred_ms <= NOW + SKEW
    assert result.amount_minor >= 0
    assert result.amount_minor <= 108_000_000_000  # 1e9 EUR at 1.08
    if result.kind == "cancel":
        assert result.amount_minor == 0
    if result.kind != "refund":
        assert result.refund_id is None


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)
HOSTILE_STRINGS = st.sampled_from(
    [
        "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "1e400", "-1e400", "1e-400",
        "1e999999999999", "0e-999999999", "9" * 100, "1" + "0" * 30, "-0", "0.000",
        "2026-11-25T10:00:00", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
        "\x00", "\u202e", "{}:*%", "USD", "EUR", "GBP", "JPY", "",
    ]
)  # fmt: skip
FIELD_VALUES = JSON_VALUES | HOSTILE_STRINGS
OFFSETS = st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m)))
ORDERS = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["purchase", "refund", "cancel"]) | FIELD_VALUES,
        "order_id": st.text(min_size=1) | FIELD_VALUES,
        "customer_id": st.text(min_size=1) | FIELD_VALUES,
        "refund_id": st.text() | FIELD_VALUES,
        "amount": st.decimals().map(str)
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | FIELD_VALUES,
        "currency": st.sampled_from(["USD", "EUR", "JPY", "GBP", "usd"]) | FIELD_VALUES,
        "occurred_at": st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.datetimes(timezones=OFFSETS).map(lambda d: d.isoformat())
        | FIELD_VALUES,
    },
)


@given(st.binary(max_size=2_000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check(parse_order(raw, RULES, NOW))


@given(st.text(max_size=500))
def test_random_text_never_raises(text: str) -> None:
    check(parse_order(text.encode("utf-8", "surrogatepass"), RULES, NOW))


@given(JSON_VALUES)
def test_random_json_never_raises(value: object) -> None:
    check(parse_order(orjson.dumps(value), RULES, NOW))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(ORDERS)
def test_order_shaped_json_never_raises(document: dict[str, Any]) -> None:
    check(parse_order(orjson.dumps(document), RULES, NOW))


@given(
    st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "1" * 400]),
    st.sampled_from(["amount", "occurred_at", "order_id"]),
)
def test_huge_numbers_in_raw_json_never_raise(number: int | str, field: str) -> None:
    raw = payload(**{field: 0}).replace(f'"{field}":0'.encode(), f'"{field}":{number}'.encode())
    check(parse_order(raw, RULES, NOW))


@given(st.datetimes(timezones=OFFSETS))
def test_aware_datetimes_convert_exactly(moment: datetime) -> None:
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    result = parse(occurred_at=moment.isoformat())
    if isinstance(result, OrderEvent):
        assert result.occurred_ms == expected
    else:
        assert result.reason in ("invalid_timestamp", "timestamp_in_future")
        assert expected <= 0 or expected > NOW + SKEW


def test_control_characters_are_exactly_unicode_category_cc() -> None:
    """Ids are checked with one regex: it must refuse exactly what category Cc names."""
    wrong = [
        cp
        for cp in range(sys.maxunicode + 1)
        if (_CONTROL.fullmatch(chr(cp)) is not None) != (unicodedata.category(chr(cp)) == "Cc")
    ]
    assert wrong == []
