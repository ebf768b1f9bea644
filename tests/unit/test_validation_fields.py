"""Validation of raw order records: every reason code, the defaults, type, ids, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from state.model import OrderEvent, Rejection
from stream.validation import REASONS, ValidationRules, parse_order
from tests.support.order_payloads import (
    DROP,
    NOW,
    RULES,
    SKEW,
    accepted,
    payload,
    rejected,
)


def test_reasons_are_stable() -> None:
    assert REASONS == (
        "payload_too_large",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "invalid_field",
        "invalid_type",
        "invalid_amount",
        "negative_amount",
        "amount_too_large",
        "unknown_currency",
        "invalid_timestamp",
        "timestamp_in_future",
        "unknown_order",
        "order_cancelled",
        "too_old",
        "internal_error",
    )


# One example per reason this module produces; the last three belong to the state layer.
EXAMPLES: list[tuple[str, bytes | None]] = [
    ("payload_too_large", b" " * 65_537),
    ("malformed_json", b"{"),
    ("not_an_object", b"[1, 2]"),
    ("missing_field", payload(order_id=DROP)),
    ("invalid_field", payload(customer_id=42)),
    ("invalid_type", payload(type="sale")),
    ("invalid_amount", payload(amount="12.3.4")),
    ("negative_amount", payload(amount="-1.00")),
    ("amount_too_large", payload(amount="1000000000.01")),
    ("unknown_currency", payload(currency="GBP")),
    ("invalid_timestamp", payload(occurred_at="2026-11-25T10:00:00")),
    ("timestamp_in_future", payload(occurred_at=NOW + SKEW + 1)),
]


def test_examples_cover_every_validation_reason() -> None:
    assert [reason for reason, _ in EXAMPLES] == list(REASONS[:12])


@pytest.mark.parametrize(("reason", "raw"), EXAMPLES, ids=[r for r, _ in EXAMPLES])
def test_each_reason(reason: str, raw: bytes | None) -> None:
    rejected(reason, raw)


# --- a valid order and defaults -------------------------------------------------------------


def test_valid_purchase_with_defaults() -> None:
    assert accepted() == OrderEvent("purchase", "o-1", "c-1", 12990, NOW, None)


@pytest.mark.parametrize("kind", ["purchase", "refund", "cancel"])
def test_kinds(kind: str) -> None:
    assert accepted(type=kind).kind == kind


def test_null_type_means_purchase() -> None:
    assert accepted(type=None).kind == "purchase"


def test_unknown_fields_are_ignored() -> None:
    assert accepted(note={"x": [1, 2]}, channel="web") == accepted()


def test_refund_id() -> None:
    assert accepted(type="refund", refund_id="r-9").refund_id == "r-9"
    assert accepted(type="refund").refund_id is None
    assert accepted(type="refund", refund_id=None).refund_id is None
    # only a refund carries one; elsewhere it is ignored like any unknown field
    assert accepted(refund_id="r-9").refund_id is None
    assert accepted(type="cancel", refund_id=7).refund_id is None


def test_refund_id_follows_id_rules() -> None:
    rejected("invalid_field", payload(type="refund", refund_id=7))
    rejected("invalid_field", payload(type="refund", refund_id=""))
    rejected("invalid_field", payload(type="refund", refund_id="r\n1"))


def test_refund_amounts_are_positive_and_may_be_zero() -> None:
    assert accepted(type="refund", amount="10.00").amount_minor == 1000
    assert accepted(type="refund", amount=0).amount_minor == 0
    rejected("negative_amount", payload(type="refund", amount="-10.00"))
    rejected("missing_field", payload(type="refund", amount=DROP))


def test_cancel_ignores_amount_and_currency() -> None:
    assert accepted(type="cancel", amount=DROP).amount_minor == 0
    assert accepted(type="cancel", amount="garbage", currency="???").amount_minor == 0
    assert accepted(type="cancel", amount=-5, currency="GBP").amount_minor == 0


# --- type ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["sale", "PURCHASE", "", "purchase "])
def test_unknown_type(value: str) -> None:
    message = rejected("invalid_type", payload(type=value)).message
    assert "type" in message
    assert repr(value) in message


@pytest.mark.parametrize("value", [1, True, ["purchase"], {"a": 1}])
def test_type_of_wrong_json_type(value: object) -> None:
    rejected("invalid_field", payload(type=value))


# --- ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "{cust}:42*",
        "%s %d",
        "a b",
        " padded ",
        "顧客-\uff17",  # fullwidth digit
        "client-é",
        "😀",
        "שלום",
        "a\u200db",  # zero-width joiner: a format character, not a control character
        "x" * 256,
    ],
)
@pytest.mark.parametrize("field", ["order_id", "customer_id"])
def test_ids_are_kept_unchanged(field: str, value: str) -> None:
    event = accepted(**{field: value})
    assert getattr(event, field) == value


@pytest.mark.parametrize("field", ["order_id", "customer_id", "occurred_at"])
def test_required_fields(field: str) -> None:
    assert field in rejected("missing_field", payload(**{field: DROP})).message
    assert field in rejected("missing_field", payload(**{field: None})).message


@pytest.mark.parametrize(
    "value",
    ["", "   ", "\u3000", "a\x00b", "a\nb", "\t", "a\x7f", "a\x85", "x" * 257, 7, 1.5, True],
)
@pytest.mark.parametrize("field", ["order_id", "customer_id"])
def test_bad_ids(field: str, value: object) -> None:
    assert field in rejected("invalid_field", payload(**{field: value})).message


@pytest.mark.parametrize("value", [[1], {"id": 1}])
def test_container_ids_are_described_not_printed(value: object) -> None:
    message = rejected("invalid_field", payload(order_id=value)).message
    assert "order_id" in message
    assert "array" in message or "object" in message


def test_control_character_is_located() -> None:
    assert "U+0000 at position 1" in rejected("invalid_field", payload(order_id="a\x00b")).message


def test_id_length_limit_is_configurable() -> None:
    rules = ValidationRules(RULES.currencies, max_id_length=5)
    assert isinstance(parse_order(payload(order_id="12345"), rules, NOW), OrderEvent)
    rejected("invalid_field", payload(order_id="123456"), rules)


def test_message_truncates_the_offending_value() -> None:
    message = rejected("invalid_field", payload(order_id="A" * 1000)).message
    assert "'AAAA" in message
    assert "A" * 81 not in message


def test_message_never_contains_the_payload() -> None:
    raw = payload(secret="s3cr3t-token", customer_id="bad\x01id")
    assert "s3cr3t" not in rejected("invalid_field", raw).message
    assert "s3cr3t" not in rejected("malformed_json", raw[:-1]).message


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-25T10:00:00Z", NOW),
        ("2026-11-25T10:00:00+00:00", NOW),
        ("2026-11-25T11:00:00+01:00", NOW),
        ("2026-11-25T05:30:00-04:30", NOW),
        ("2026-11-25T00:30:00+01:00", NOW - 10 * 3_600_000 - 1_800_000),  # 23:30Z the day before
        ("2026-11-25 10:00:00Z", NOW),
        ("2026-11-25t10:00:00z", NOW),
        ("2026-11-25T10:00:00.123Z", NOW + 123),
        ("2026-11-25T09:59:59.9999Z", NOW - 1),  # truncated, never rounded into the future
        ("2026-11-25T10:00:00.000001+00:00", NOW),
        ("1970-01-01T00:00:00.001Z", 1),
        (NOW, NOW),
        (1, 1),
    ],
)
def test_timestamps_in_utc_ms(value: object, expected: int) -> None:
    assert accepted(occurred_at=value).occurred_ms == expected


def test_rfc3339_matches_datetime() -> None:
    text = "2024-02-29T23:59:59.5-08:00"
    expected = int(datetime(2024, 3, 1, 7, 59, 59, 500000, tzinfo=UTC).timestamp() * 1000)
    assert accepted(occurred_at=text).occurred_ms == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-25",
        "2026-11-25T10:00:00",
        "2026-11-25T10:00:00.5",
        "20261125T100000Z",
        "2026-11-25X10:00:00Z",
        "2026-W48-3T10:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-25T24:00:00Z",
        "yesterday",
        "",
        "٢٠٢٦-11-25T10:00:00Z",
        "2026-11-25T10:00:00Z" + " " * 60,
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",  # epoch 0 is not a plausible order time
        0,
        -1,
        253_402_300_800_000,  # year 10000
        2**63 - 1,
    ],
)
def test_invalid_timestamps(value: object) -> None:
    assert "occurred_at" in rejected("invalid_timestamp", payload(occurred_at=value)).message


@pytest.mark.parametrize("value", [1.7e12, float(NOW), True, [NOW], {"ms": NOW}])
def test_timestamp_of_wrong_json_type(value: object) -> None:
    rejected("invalid_field", payload(occurred_at=value))


def test_latest_representable_instant_is_accepted_by_the_range_check() -> None:
    rules = ValidationRules(RULES.currencies, max_future_skew_ms=10**18)
    result = parse_order(payload(occurred_at="9999-12-31T23:59:59.999Z"), rules, NOW)
    assert isinstance(result, OrderEvent)
    assert result.occurred_ms == 253_402_300_799_999
    beyond = parse_order(payload(occurred_at="9999-12-31T23:59:59-01:00"), rules, NOW)
    assert isinstance(beyond, Rejection)
    assert beyond.reason == "invalid_timestamp"


def test_future_skew_boundary_epoch_ms() -> None:
    assert accepted(occurred_at=NOW + SKEW).occurred_ms == NOW + SKEW
    message = rejected("timestamp_in_future", payload(occurred_at=NOW + SKEW + 1)).message
    assert str(SKEW + 1) in message


def test_future_skew_boundary_rfc3339() -> None:
    assert accepted(occurred_at="2026-11-25T10:05:00Z").occurred_ms == NOW + SKEW
    rejected("timestamp_in_future", payload(occurred_at="2026-11-25T10:05:00.001Z"))
    rejected("timestamp_in_future", payload(occurred_at="2026-11-25T12:00:00+01:00"))


def test_zero_skew() -> None:
    rules = ValidationRules(RULES.currencies, max_future_skew_ms=0)
    assert isinstance(parse_order(payload(occurred_at=NOW), rules, NOW), OrderEvent)
    rejected("timestamp_in_future", payload(occurred_at=NOW + 1), rules)
