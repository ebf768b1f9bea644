"""Validation of raw order records: amounts and currencies."""

from __future__ import annotations

from decimal import Decimal

import pytest

from state.model import OrderEvent
from state.money import CurrencyTable
from stream.validation import ValidationRules, parse_order
from tests.support.order_payloads import (
    DROP,
    NOW,
    RULES,
    accepted,
    payload,
    rejected,
)

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
