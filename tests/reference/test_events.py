"""Record value -> event or dead-letter reason, from the README's input table."""

from __future__ import annotations

import json

import pytest

from . import Config, DeadLetter, Event, parse_event
from .records import DROP, record

NOW = 1_795_600_800_000  # 2026-11-25T10:00:00Z
CONFIG = Config.from_env({"RFM_CURRENCY_RATES": "EUR=1.08,JPY=0.0067,KWD=3.25,GBP=1.5"})


def event(raw: bytes | None, config: Config = CONFIG) -> Event:
    result = parse_event(raw, config, NOW)
    assert isinstance(result, Event), result
    return result


def reason(raw: bytes | None, config: Config = CONFIG) -> str:
    result = parse_event(raw, config, NOW)
    assert isinstance(result, DeadLetter), result
    return result.reason


def test_a_purchase_with_defaults() -> None:
    assert event(record()) == Event("purchase", "o1", "c1", 1000, NOW, None)
    assert event(record(type=None, currency=None, refund_id=None, extra={"x": [1]})).kind == (
        "purchase"
    )


def test_refund_and_cancel() -> None:
    refund = event(record(type="refund", amount="2.50", refund_id="r1"))
    assert (refund.kind, refund.amount_minor, refund.refund_id) == ("refund", 250, "r1")
    assert event(record(type="refund", amount=1)).refund_id is None
    # A cancel ignores amount and currency, whatever they hold.
    cancel = event(record(type="cancel", amount=DROP, currency="nope"))
    assert (cancel.kind, cancel.amount_minor) == ("cancel", 0)
    assert event(record(type="cancel", amount=[1], currency="XYZ")).amount_minor == 0
    # A refund id only counts on refunds.
    assert event(record(refund_id=5)).refund_id is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "malformed_json"),
        (b"", "malformed_json"),
        (b"{", "malformed_json"),
        (b'{"amount": NaN}', "malformed_json"),
        (b'{"amount": Infinity}', "malformed_json"),
        (b'{"amount": 1e400}', "malformed_json"),
        (b"\xef\xbb\xbf{}", "malformed_json"),  # byte order mark
        (b'{"order_id": "\xff"}', "malformed_json"),  # not UTF-8
        (b'{"order_id": "\\ud800"}', "malformed_json"),  # lone surrogate escape
        (b"{}{}", "malformed_json"),
        (b'{"x": ' + b"[" * 1024 + b"]" * 1024 + b"}", "malformed_json"),  # 1025 deep
        (b"[]", "not_an_object"),
        (b"null", "not_an_object"),
        (b"1", "not_an_object"),
        (b'"order"', "not_an_object"),
        (b"[" * 1024 + b"]" * 1024, "not_an_object"),  # 1024 deep is still JSON
        (record(type=1), "invalid_field"),
        (record(type="return"), "invalid_type"),
        (record(type="Purchase"), "invalid_type"),
        (record(order_id=DROP), "missing_field"),
        (record(customer_id=None), "missing_field"),
        (record(occurred_at=DROP), "missing_field"),
        (record(amount=DROP), "missing_field"),
        (record(type="refund", amount=None), "missing_field"),
        (record(order_id=5), "invalid_field"),
        (record(customer_id=""), "invalid_field"),
        (record(customer_id="c" * 257), "invalid_field"),
        (record(customer_id="c\n1"), "invalid_field"),
        (record(customer_id="c\x851"), "invalid_field"),  # a C1 control
        (record(order_id=" \t\u3000"), "invalid_field"),  # only whitespace
        (record(type="refund", refund_id=""), "invalid_field"),
        (record(type="refund", refund_id=7), "invalid_field"),
        (record(occurred_at=1.7e12), "invalid_field"),
        (record(occurred_at=True), "invalid_field"),
        (record(amount=True), "invalid_field"),
        (record(amount=[1]), "invalid_field"),
        (record(currency="usd"), "invalid_field"),
        (record(currency="US"), "invalid_field"),
        (record(currency=840), "invalid_field"),
        (record(amount="abc"), "invalid_amount"),
        (record(amount=""), "invalid_amount"),
        (record(amount="1,00"), "invalid_amount"),
        (record(amount=" 1"), "invalid_amount"),
        (record(amount="+1"), "invalid_amount"),
        (record(amount="1e"), "invalid_amount"),
        (record(amount="NaN"), "invalid_amount"),
        (record(amount="Infinity"), "invalid_amount"),
        (record(amount="\u0663"), "invalid_amount"),  # ARABIC-INDIC DIGIT THREE
        (record(amount="1" + "0" * 100), "invalid_amount"),  # 101 characters
        (record(amount="1.005"), "invalid_amount"),  # finer than a cent
        (record(amount="0.001"), "invalid_amount"),
        (record(amount=0.001), "invalid_amount"),
        (record(amount="1.5", currency="JPY"), "invalid_amount"),
        (record(amount="-0.01"), "negative_amount"),
        (record(amount=-1), "negative_amount"),
        (record(amount="-1e-9"), "negative_amount"),
        (record(amount="1000000000.01"), "amount_too_large"),
        (record(amount=1_000_000_001), "amount_too_large"),
        (record(amount="1e10"), "amount_too_large"),
        (record(amount=1e300), "amount_too_large"),
        (record(amount="1e999999999999999999999"), "amount_too_large"),
        (record(currency="XYZ"), "unknown_currency"),
        (record(occurred_at="2026-11-25T10:00:00"), "invalid_timestamp"),  # no zone
        (record(occurred_at="2026-11-25"), "invalid_timestamp"),
        (record(occurred_at="2026-02-29T10:00:00Z"), "invalid_timestamp"),
        (record(occurred_at="2026-11-25T24:00:00Z"), "invalid_timestamp"),
        (record(occurred_at="2026-11-25T10:00:60Z"), "invalid_timestamp"),
        (record(occurred_at="2026-11-25T10:00:00+24:00"), "invalid_timestamp"),
        (record(occurred_at="2026-11-25T10:00Z"), "invalid_timestamp"),  # no seconds
        (record(occurred_at="2026-11-25T10:00:00+0100"), "invalid_timestamp"),
        (record(occurred_at="2026-11-25T10:00:00." + "0" * 50 + "Z"), "invalid_timestamp"),
        (record(occurred_at="1970-01-01T00:00:00Z"), "invalid_timestamp"),  # epoch ms 0
        (record(occurred_at=0), "invalid_timestamp"),
        (record(occurred_at=-5), "invalid_timestamp"),
        (record(occurred_at=253_402_300_800_000), "invalid_timestamp"),  # year 10000
        (record(occurred_at=NOW + 300_001), "timestamp_in_future"),
        (record(occurred_at="2026-11-25T10:05:00.001Z"), "timestamp_in_future"),
    ],
)
def test_dead_letter_reasons(raw: bytes | None, expected: str) -> None:
    assert reason(raw) == expected


def test_payload_limit_is_65536_bytes() -> None:
    base = record()
    exactly = base[:-1] + b', "pad": "' + b"x" * (65_536 - len(base) - 11) + b'"}'
    assert len(exactly) == 65_536
    assert event(exactly).order_id == "o1"
    assert reason(exactly[:-2] + b'x"}') == "payload_too_large"


def test_limits_that_still_pass() -> None:
    assert event(record(customer_id="c" * 256)).customer_id == "c" * 256
    assert event(record(customer_id=" c ")).customer_id == " c "
    assert event(record(amount="1000000000")).amount_minor == 100_000_000_000
    assert event(record(amount="1e9")).amount_minor == 100_000_000_000
    assert event(record(amount="0")).amount_minor == 0
    assert event(record(amount="-0")).amount_minor == 0
    assert event(record(amount=-0.0)).amount_minor == 0
    assert event(record(occurred_at=NOW + 300_000)).occurred_ms == NOW + 300_000


@pytest.mark.parametrize(
    ("amount", "minor"),
    [
        ("129.90", 12990),
        ("129.9", 12990),
        (129.9, 12990),
        (".5", 50),
        ("5.", 500),
        ("007.50", 750),
        ("1.50000", 150),
        ("12.5e1", 12500),
        ("1E2", 10000),
        ("12000e-3", 1200),
        (7, 700),
        (1e2, 10000),
    ],
)
def test_amounts_in_the_base_currency(amount: object, minor: int) -> None:
    assert event(record(amount=amount)).amount_minor == minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("10.01", "EUR", 1081),  # 10.8108 USD
        ("1234", "JPY", 827),  # 8.2678 USD
        ("1234.000", "JPY", 827),  # trailing zeros are not decimal places
        ("1.234", "KWD", 401),  # 3 decimals in KWD; 4.0105 USD
        ("0.01", "GBP", 2),  # 1.5 cents: half to even, up
        ("0.03", "GBP", 4),  # 4.5 cents: half to even, down
        ("0.05", "GBP", 8),  # 7.5 cents
        ("0.01", "USD", 1),
    ],
)
def test_foreign_amounts_are_converted_exactly_then_rounded_half_to_even(
    amount: str, currency: str, minor: int
) -> None:
    assert event(record(amount=amount, currency=currency)).amount_minor == minor


def test_a_base_currency_without_minor_unit() -> None:
    yen = Config.from_env({"RFM_CURRENCY": "JPY", "RFM_CURRENCY_RATES": "USD=150"})
    assert event(record(amount="1500"), yen).amount_minor == 1500
    assert event(record(amount="1500.0"), yen).amount_minor == 1500
    assert reason(record(amount="1500.5"), yen) == "invalid_amount"
    assert event(record(amount="0.01", currency="USD"), yen).amount_minor == 2  # 1.5 yen
    assert event(record(amount="0.03", currency="USD"), yen).amount_minor == 4  # 4.5 yen
    assert reason(record(amount="10.00", currency="EUR"), yen) == "unknown_currency"


def test_the_amount_limit_is_in_the_currency_sent() -> None:
    # 1,000,000,000 EUR is 1.08 billion USD: the limit is on the amount as sent.
    assert event(record(amount="1000000000", currency="EUR")).amount_minor == 108_000_000_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-11-25T10:00:00Z", NOW),
        ("2026-11-25t10:00:00z", NOW),
        ("2026-11-25 10:00:00Z", NOW),
        ("2026-11-25T11:30:00+01:30", NOW),
        ("2026-11-25T05:00:00-05:00", NOW),
        ("2026-11-25T10:00:00-00:00", NOW),
        ("2026-11-25T10:00:00.1Z", NOW + 100),
        ("2026-11-25T10:00:00.1239Z", NOW + 123),  # digits beyond the ms are dropped
        ("2026-11-25T09:59:59.999999Z", NOW - 1),
        ("1970-01-01T00:00:00.001Z", 1),
        ("2026-11-25T10:00:00." + "9" * 43 + "Z", NOW + 999),  # 64 characters
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ],
)
def test_rfc3339_times(text: str, ms: int) -> None:
    assert event(record(occurred_at=text)).occurred_ms == ms


def test_epoch_milliseconds() -> None:
    assert event(record(occurred_at=NOW - 5)).occurred_ms == NOW - 5
    assert event(record(occurred_at=1)).occurred_ms == 1


def test_the_future_skew_is_configurable() -> None:
    config = Config.from_env({"RFM_MAX_FUTURE_SKEW": "0.5"})
    assert event(record(occurred_at=NOW + 500), config).occurred_ms == NOW + 500
    assert reason(record(occurred_at=NOW + 501), config) == "timestamp_in_future"


@pytest.mark.parametrize(
    ("fields", "expected", "detail"),
    [
        # type first
        ({"type": "bogus", "order_id": DROP, "amount": "x"}, "invalid_type", "bogus"),
        ({"type": 3, "customer_id": 5}, "invalid_field", "type"),
        # then order_id, customer_id
        ({"order_id": DROP, "customer_id": 5}, "missing_field", "order_id"),
        ({"customer_id": "", "occurred_at": DROP}, "invalid_field", "customer_id"),
        # then refund_id (refunds only), occurred_at
        ({"type": "refund", "refund_id": 1, "occurred_at": "x"}, "invalid_field", "refund_id"),
        ({"occurred_at": "yesterday", "amount": "-1"}, "invalid_timestamp", "not RFC 3339"),
        ({"occurred_at": NOW + 10**9, "amount": "-1"}, "timestamp_in_future", ""),
        # then amount, then currency, then the amount's decimal places
        ({"amount": "-1", "currency": "XYZ"}, "negative_amount", ""),
        ({"amount": "2e9", "currency": 5}, "amount_too_large", ""),
        ({"amount": "1.005", "currency": 5}, "invalid_field", "currency"),
        ({"amount": "1.005", "currency": "XYZ"}, "unknown_currency", "XYZ"),
    ],
)
def test_which_problem_is_reported(fields: dict[str, object], expected: str, detail: str) -> None:
    result = parse_event(record(**fields), CONFIG, NOW)
    assert isinstance(result, DeadLetter)
    assert (result.reason, result.detail) == (expected, detail)


def test_unknown_fields_and_nulls_are_ignored() -> None:
    raw = json.dumps(
        {
            "order_id": "o1",
            "customer_id": "c1",
            "amount": 3,
            "occurred_at": NOW,
            "currency": None,
            "refund_id": None,
            "type": None,
            "note": {"deep": [[[]]]},
        }
    ).encode()
    assert event(raw) == Event("purchase", "o1", "c1", 300, NOW)
