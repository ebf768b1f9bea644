"""Validation of raw order records: every reason code, every field rule, hostile input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.model import OrderEvent, Rejection
from state.money import CurrencyTable
from stream.validation import REASONS, ValidationRules, parse_order

NOW = 1_795_600_800_000  # 2026-11-25T10:00:00Z
SKEW = 300_000
RULES = ValidationRules(CurrencyTable("USD", {"EUR": Decimal("1.08"), "JPY": Decimal("0.0067")}))
DROP = object()  # marks a field to leave out of the payload
BASE: dict[str, Any] = {
    "order_id": "o-1",
    "customer_id": "c-1",
    "amount": "129.90",
    "occurred_at": "2026-11-25T10:00:00Z",
}


def payload(**fields: Any) -> bytes:
    document = {**BASE, **fields}
    return orjson.dumps({k: v for k, v in document.items() if v is not DROP})


def parse(**fields: Any) -> OrderEvent | Rejection:
    return parse_order(payload(**fields), RULES, NOW)


def accepted(**fields: Any) -> OrderEvent:
    result = parse(**fields)
    assert isinstance(result, OrderEvent), result
    return result


def rejected(reason: str, raw: bytes | None, rules: ValidationRules = RULES) -> Rejection:
    result = parse_order(raw, rules, NOW)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    assert reason in REASONS
    assert len(result.message) < 250
    return result


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


# --- amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        ("129.90", 12990),
        ("129.9", 12990),
        ("0", 0),
        ("-0", 0),
        (".5", 50),
        ("5.", 500),
        ("1e2", 10000),
        ("1000000000", 100_000_000_000),  # exactly the limit
        (130, 13000),
        (0, 0),
        (129.9, 12990),  # a JSON float is read through repr: no binary noise
        (0.1, 10),
        (19.99, 1999),
        (1e2, 10000),
    ],
)
def test_amounts(value: object, minor: int) -> None:
    assert accepted(amount=value).amount_minor == minor


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "",
        " 1",
        "1 ",
        "1,000",
        "1_000",
        "١٢",
        "0x10",
        "+1",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "1.005",
        "1e-3",
        0.30000000000000004,  # 0.1 + 0.2: more digits than cents
        1e-07,
        5e-324,
        "1" * 101,
        "1e999999999999999999999",
    ],
)
def test_invalid_amounts(value: object) -> None:
    assert "amount" in rejected("invalid_amount", payload(amount=value)).message


@pytest.mark.parametrize("value", [True, False, [1], {"v": 1}])
def test_amount_of_wrong_json_type(value: object) -> None:
    rejected("invalid_field", payload(amount=value))


@pytest.mark.parametrize("value", ["-1", "-0.01", -1, -0.5])
def test_negative_amounts(value: object) -> None:
    rejected("negative_amount", payload(amount=value))


@pytest.mark.parametrize("value", ["1000000000.01", "1e400", 1e22, 10**15])
def test_too_large_amounts(value: object) -> None:
    rejected("amount_too_large", payload(amount=value))


def test_amount_beyond_64_bits_is_too_large() -> None:
    raw = payload(amount=0).replace(b'"amount":0', b'"amount":' + str(10**30).encode())
    rejected("amount_too_large", raw)


def test_amount_beyond_double_range_is_malformed() -> None:
    raw = payload(amount=0).replace(b'"amount":0', b'"amount":1e400')
    rejected("malformed_json", raw)


def test_amount_limit_is_configurable() -> None:
    rules = ValidationRules(RULES.currencies, max_amount_major=Decimal("100"))
    assert isinstance(parse_order(payload(amount="100.00"), rules, NOW), OrderEvent)
    rejected("amount_too_large", payload(amount="100.01"), rules)


def test_amount_required_for_purchase() -> None:
    assert "amount" in rejected("missing_field", payload(amount=DROP)).message
    rejected("missing_field", payload(amount=None))


# --- currencies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("129.90", "USD", 12990),
        ("129.90", None, 12990),
        ("100.00", "EUR", 10800),
        ("0.01", "EUR", 1),  # 0.0108 USD
        ("0.05", "EUR", 5),  # 0.054 USD
        ("1.39", "EUR", 150),  # 1.5012 USD
        (1000, "JPY", 670),
        ("75", "JPY", 50),  # 0.5025 USD
    ],
)
def test_currency_conversion(amount: object, currency: str | None, minor: int) -> None:
    assert accepted(amount=amount, currency=currency).amount_minor == minor


def test_conversion_rounds_half_to_even() -> None:
    rules = ValidationRules(CurrencyTable("USD", {"EUR": Decimal("0.5")}))
    for amount, minor in [("0.01", 0), ("0.03", 2), ("0.05", 2), ("0.07", 4)]:
        result = parse_order(payload(amount=amount, currency="EUR"), rules, NOW)
        assert isinstance(result, OrderEvent)
        assert result.amount_minor == minor


def test_currency_precision_is_checked_in_its_own_minor_units() -> None:
    assert "JPY" in rejected("invalid_amount", payload(amount="100.5", currency="JPY")).message


@pytest.mark.parametrize("value", ["usd", "US", "DOLLAR", "", 840, ["USD"]])
def test_malformed_currency(value: object) -> None:
    assert "currency" in rejected("invalid_field", payload(currency=value)).message


def test_unknown_currency_is_named() -> None:
    assert "GBP" in rejected("unknown_currency", payload(currency="GBP")).message


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
