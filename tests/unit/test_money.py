"""Exact money: minor units, conversion with banker's rounding, rate parsing, formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.money import (
    CurrencyTable,
    MoneyError,
    format_minor,
    is_currency_code,
    minor_unit_exponent,
    parse_rates,
)

USD_TABLE = CurrencyTable("USD", {"EUR": Decimal("1.08"), "JPY": Decimal("0.0067")})


ZERO_DIGITS = [
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
    "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
]  # fmt: skip
THREE_DIGITS = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
EXPONENTS = [
    *[(c, 0) for c in ZERO_DIGITS],
    *[(c, 3) for c in THREE_DIGITS],
    *[("CLF", 4), ("UYW", 4), ("USD", 2), ("EUR", 2), ("GBP", 2), ("XYZ", 2)],
]


@pytest.mark.parametrize(("currency", "exponent"), EXPONENTS)
def test_minor_unit_exponent(currency: str, exponent: int) -> None:
    assert minor_unit_exponent(currency) == exponent


@pytest.mark.parametrize("code", ["USD", "EUR", "XYZ"])
def test_is_currency_code_accepts(code: str) -> None:
    assert is_currency_code(code)


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "", "U$D", "ÜSD", "US1", " USD", "USD\n"])
def test_is_currency_code_rejects(code: str) -> None:
    assert not is_currency_code(code)


@pytest.mark.parametrize(
    ("amount", "minor"),
    [
        ("129.90", 12990),
        ("129.9", 12990),
        ("0", 0),
        ("0.01", 1),
        ("-1.00", -100),
        ("1E+2", 10000),
        ("129.900", 12990),  # trailing zeros are not extra precision
        ("0E-999999999", 0),  # must not build a 10**999999999 denominator
        ("999999999.99", 99999999999),
    ],
)
def test_base_currency_is_exact(amount: str, minor: int) -> None:
    assert USD_TABLE.to_base_minor(Decimal(amount), "USD") == minor


def test_base_currency_rejects_sub_minor_precision() -> None:
    with pytest.raises(MoneyError) as info:
        USD_TABLE.to_base_minor(Decimal("1.005"), "USD")
    assert info.value.reason == "invalid_amount"
    assert "3 decimal places" in info.value.message
    assert "USD allows 2" in info.value.message


def test_zero_decimal_base_currency() -> None:
    table = CurrencyTable("JPY", {"USD": Decimal("150.25")})
    assert table.to_base_minor(Decimal("1500"), "JPY") == 1500
    assert table.to_base_minor(Decimal("1500.00"), "JPY") == 1500
    with pytest.raises(MoneyError):
        table.to_base_minor(Decimal("1500.5"), "JPY")
    # 1.01 USD * 150.25 = 151.7525 JPY -> 152
    assert table.to_base_minor(Decimal("1.01"), "USD") == 152


def test_three_decimal_currency() -> None:
    table = CurrencyTable("KWD")
    assert table.to_base_minor(Decimal("1.234"), "KWD") == 1234
    with pytest.raises(MoneyError):
        table.to_base_minor(Decimal("1.2345"), "KWD")


def test_foreign_currency_converts_and_rounds_half_even() -> None:
    assert USD_TABLE.to_base_minor(Decimal("100.00"), "EUR") == 10800
    # 0.25 EUR * 1.08 = 0.27 USD exactly
    assert USD_TABLE.to_base_minor(Decimal("0.25"), "EUR") == 27
    # 0.01 EUR * 1.08 = 0.0108 -> 0.01
    assert USD_TABLE.to_base_minor(Decimal("0.01"), "EUR") == 1
    # 1000 JPY * 0.0067 = 6.70 USD
    assert USD_TABLE.to_base_minor(Decimal("1000"), "JPY") == 670


@pytest.mark.parametrize(
    ("amount", "minor"),
    [("0.01", 0), ("0.03", 2), ("0.05", 2), ("0.07", 4), ("-0.01", 0), ("-0.03", -2)],
)
def test_exact_halves_round_to_even(amount: str, minor: int) -> None:
    table = CurrencyTable("USD", {"EUR": Decimal("0.5")})  # every odd cent becomes a half
    assert table.to_base_minor(Decimal(amount), "EUR") == minor


def test_foreign_currency_needs_its_own_precision() -> None:
    with pytest.raises(MoneyError) as info:
        USD_TABLE.to_base_minor(Decimal("100.5"), "JPY")
    assert info.value.reason == "invalid_amount"
    assert "JPY allows 0" in info.value.message


def test_unknown_currency() -> None:
    with pytest.raises(MoneyError) as info:
        USD_TABLE.to_base_minor(Decimal("1"), "GBP")
    assert info.value.reason == "unknown_currency"
    assert "GBP" in info.value.message
    assert str(info.value) == info.value.message


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_non_finite_amounts_are_refused(amount: str) -> None:
    with pytest.raises(MoneyError) as info:
        USD_TABLE.to_base_minor(Decimal(amount), "USD")
    assert info.value.reason == "invalid_amount"


def test_absurd_magnitudes_are_refused_quickly() -> None:
    with pytest.raises(MoneyError) as info:
        USD_TABLE.to_base_minor(Decimal("1E+999999999"), "EUR")
    assert info.value.reason == "amount_too_large"
    with pytest.raises(MoneyError) as info:
        USD_TABLE.to_base_minor(Decimal("1E-999999999"), "USD")
    assert info.value.reason == "invalid_amount"


def test_long_amount_message_is_truncated() -> None:
    with pytest.raises(MoneyError) as info:
        USD_TABLE.to_base_minor(Decimal("0." + "1" * 5000), "USD")
    assert len(info.value.message) < 200


def test_table_is_immutable_copy() -> None:
    rates = {"EUR": Decimal("1.08")}
    table = CurrencyTable("USD", rates)
    rates["EUR"] = Decimal("2")
    assert table.to_base_minor(Decimal("1"), "EUR") == 108
    assert table.rates == {"EUR": Decimal("1.08")}
    assert CurrencyTable("USD").rates == {}


@pytest.mark.parametrize(
    "rates",
    [
        {"EUR": Decimal("0")},
        {"EUR": Decimal("-1")},
        {"EUR": Decimal("NaN")},
        {"EUR": Decimal("Infinity")},
        {"eur": Decimal("1")},
        {"EUR": Decimal("1E+50")},
        {"EUR": Decimal("1." + "1" * 60)},
    ],
)
def test_table_rejects_bad_rates(rates: dict[str, Decimal]) -> None:
    with pytest.raises(ValueError):
        CurrencyTable("USD", rates)


def test_table_rejects_bad_base() -> None:
    with pytest.raises(ValueError, match="base currency"):
        CurrencyTable("usd")
    with pytest.raises(ValueError, match="must not have a rate"):
        CurrencyTable("USD", {"USD": Decimal("1")})


def test_table_is_hashable_and_comparable() -> None:
    same = CurrencyTable("USD", {"JPY": Decimal("0.0067"), "EUR": Decimal("1.08")})
    assert same == USD_TABLE
    assert hash(same) == hash(USD_TABLE)
    assert CurrencyTable("USD", {"EUR": Decimal("1.09")}) != USD_TABLE


def test_parse_rates() -> None:
    assert parse_rates("EUR=1.08,GBP=1.27") == {"EUR": Decimal("1.08"), "GBP": Decimal("1.27")}
    assert parse_rates(" EUR = 1.08 , JPY=0.0067 ") == {
        "EUR": Decimal("1.08"),
        "JPY": Decimal("0.0067"),
    }
    assert parse_rates("") == {}
    assert parse_rates("   ") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("EUR", "'EUR'"),
        ("EUR=", "'EUR='"),
        ("=1.08", "'=1.08'"),
        ("EUR=abc", "'abc'"),
        ("EUR=0", "positive"),
        ("EUR=-1.08", "positive"),
        ("EUR=NaN", "positive"),
        ("EUR=Infinity", "positive"),
        ("eur=1.08", "ISO 4217"),
        ("EUR=1.08,,GBP=1.2", "''"),
        ("EUR=1.08,EUR=1.09", "more than once"),
        ("EUR=1.08,GBP=x", "'GBP=x'"),
    ],
)
def test_parse_rates_names_the_bad_item(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rates(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("minor", "exponent", "text"),
    [
        (12990, 2, "129.90"),
        (5, 2, "0.05"),
        (-100, 2, "-1.00"),
        (-5, 2, "-0.05"),
        (0, 2, "0.00"),
        (1000, 0, "1000"),
        (-7, 0, "-7"),
        (1234, 3, "1.234"),
        (1, 4, "0.0001"),
    ],
)
def test_format_minor(minor: int, exponent: int, text: str) -> None:
    assert format_minor(minor, exponent) == text


def test_format_minor_rejects_negative_exponent() -> None:
    with pytest.raises(ValueError):
        format_minor(1, -1)


@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(min_value=0, max_value=4))
def test_format_minor_round_trips(minor: int, exponent: int) -> None:
    text = format_minor(minor, exponent)
    whole, _, fraction = text.partition(".")
    assert len(fraction) == exponent
    assert int(whole + fraction) == minor  # exact, unlike Decimal.scaleb in a 28-digit context
    currency = {0: "JPY", 2: "USD", 3: "KWD", 4: "CLF"}.get(exponent)
    if currency is not None:
        assert CurrencyTable(currency).to_base_minor(Decimal(text), currency) == minor


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**12), max_value=10**12
    ),
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=6,
        min_value=Decimal("0.000001"),
        max_value=1000,
    ),
)
def test_conversion_is_within_half_a_minor_unit(amount: Decimal, rate: Decimal) -> None:
    table = CurrencyTable("USD", {"EUR": rate})
    minor = table.to_base_minor(amount, "EUR")
    exact = amount * rate * 100  # at most 2+6+14 digits: exact in the default 28-digit context
    assert abs(exact - minor) <= Decimal("0.5")
