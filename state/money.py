"""Exact money arithmetic: currency minor units, conversion to the base currency, formatting.

Customer spend is summed for years, so every amount is held as an integer count of the base
currency's minor units. Floats would drift and make the monetary score depend on the order in
which events arrived; Decimal and int do not. All arithmetic here is done on the integer
coefficient and exponent of a Decimal, so no decimal context precision can round silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

__all__ = [
    "CurrencyTable",
    "MoneyError",
    "format_minor",
    "is_currency_code",
    "minor_unit_exponent",
    "parse_rates",
]

_ZERO_DIGIT_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"}
    | {"RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DIGIT_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_FOUR_DIGIT_CURRENCIES = frozenset({"CLF", "UYW"})

_CODE = re.compile(r"[A-Z]{3}", re.ASCII)

# Amounts of 10**40 major units or more are not money but garbage; refusing them up front
# keeps the integer arithmetic below from building absurdly large numbers.
_MAX_MAGNITUDE_DIGITS = 40
_MAX_RATE_DIGITS = 40


class MoneyError(ValueError):
    """An amount that cannot be turned into base minor units.

    It carries a stable ``reason`` (one of the validation reason codes) so callers can turn it
    into a dead-letter record without parsing the message.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def minor_unit_exponent(currency: str) -> int:
    """Decimal digits of the currency's minor unit (ISO 4217); most currencies have two."""
    if currency in _ZERO_DIGIT_CURRENCIES:
        return 0
    if currency in _THREE_DIGIT_CURRENCIES:
        return 3
    if currency in _FOUR_DIGIT_CURRENCIES:
        return 4
    return 2


def is_currency_code(s: str) -> bool:
    """Whether ``s`` has the shape of an ISO 4217 alphabetic code (three ASCII capitals)."""
    return _CODE.fullmatch(s) is not None


def _trimmed(value: Decimal) -> tuple[int, str, int]:
    """``value`` as ``(sign, digits, exponent)`` with trailing zeros moved into the exponent.

    Working on the digit tuple never rounds, and trimming keeps ``0E-999999999`` or
    ``1.000…0`` from producing enormous powers of ten later. Zero has empty digits.
    """
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked by the caller
    text = "".join(map(str, digits)).rstrip("0")
    if not text:
        return 0, "", 0
    return sign, text, exponent + len(digits) - len(text)


def _as_fraction(value: Decimal) -> tuple[int, int]:
    """``value`` as ``(numerator, denominator)`` with the denominator a power of ten.

    Callers must have bounded the value's digits first (``_check_amount``/``_check_rate``).
    """
    sign, text, exponent = _trimmed(value)
    coefficient = -int(text or "0") if sign else int(text or "0")
    if exponent >= 0:
        return coefficient * 10**exponent, 1
    return coefficient, 10**-exponent


def _decimal_places(value: Decimal) -> int:
    """Significant decimal places, ignoring trailing zeros: ``1.50`` has one, ``100`` none."""
    return max(0, -_trimmed(value)[2])


def _round_half_even(numerator: int, denominator: int) -> int:
    """Banker's rounding of a positive-denominator fraction, in integers only."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def _brief(value: Decimal) -> str:
    """Decimal text short enough for an error message, however many digits were sent."""
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_amount(amount: Decimal, currency: str) -> None:
    """Refuse amounts that are not finite, absurdly large, or finer than the minor unit."""
    if not amount.is_finite():
        raise MoneyError("invalid_amount", f"amount {_brief(amount)} is not a finite number")
    if not amount.is_zero() and amount.adjusted() >= _MAX_MAGNITUDE_DIGITS:
        raise MoneyError("amount_too_large", f"amount {amount:.3e} is implausibly large")
    exponent = minor_unit_exponent(currency)
    places = _decimal_places(amount)
    if places > exponent:
        raise MoneyError(
            "invalid_amount",
            f"amount {_brief(amount)} has {places} decimal places but {currency} allows {exponent}",
        )


def _check_rate(currency: str, rate: Decimal) -> None:
    """A rate must be usable for exact conversion: positive, finite and of sane size."""
    if not is_currency_code(currency):
        raise ValueError(f"rate currency {currency!r} is not an ISO 4217 code")
    if not rate.is_finite() or rate <= 0:
        raise ValueError(
            f"rate for {currency} must be a positive finite number, got {_brief(rate)}"
        )
    if abs(rate.adjusted()) >= _MAX_MAGNITUDE_DIGITS or len(_trimmed(rate)[1]) > _MAX_RATE_DIGITS:
        raise ValueError(f"rate for {currency} is out of range or too precise: {_brief(rate)}")


@dataclass(frozen=True)
class CurrencyTable:
    """The base currency and fixed conversion rates into it.

    Rates are units of the base currency per one unit of the other currency. They are fixed
    per deployment, so replaying the same events always gives the same spend.
    """

    base: str
    rates: Mapping[str, Decimal] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not is_currency_code(self.base):
            raise ValueError(f"base currency {self.base!r} is not an ISO 4217 code")
        if self.base in self.rates:  # it would be silently ignored: surely a config mistake
            raise ValueError(f"the base currency {self.base} must not have a rate")
        for currency, rate in self.rates.items():
            _check_rate(currency, rate)
        # A read-only copy: a caller mutating its dict must not change past conversions.
        object.__setattr__(self, "rates", MappingProxyType(dict(self.rates)))

    @property
    def base_exponent(self) -> int:
        return minor_unit_exponent(self.base)

    def to_base_minor(self, amount: Decimal, currency: str) -> int:
        """``amount`` of ``currency`` as an exact count of base minor units.

        Foreign amounts are rounded half-to-even once, at the end, so that rounding errors
        do not accumulate a bias across many orders.
        """
        if currency == self.base:
            _check_amount(amount, currency)
            numerator, denominator = _as_fraction(amount)
            scale: int = 10**self.base_exponent
            return numerator * scale // denominator
        rate = self.rates.get(currency)
        if rate is None:
            raise MoneyError(
                "unknown_currency",
                f"currency {currency!r} is neither the base currency {self.base} "
                "nor has a configured rate",
            )
        _check_amount(amount, currency)
        amount_num, amount_den = _as_fraction(amount)
        rate_num, rate_den = _as_fraction(rate)
        scale = 10**self.base_exponent
        numerator = amount_num * rate_num * scale
        return _round_half_even(numerator, amount_den * rate_den)


def _parse_rate_item(item: str) -> tuple[str, Decimal]:
    code, sep, value = (part.strip() for part in item.partition("="))
    if not sep or not code or not value:
        raise ValueError(f"rate item {item!r} is not of the form CODE=RATE")
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"rate item {item!r}: {value!r} is not a decimal number") from None
    try:
        _check_rate(code, rate)
    except ValueError as exc:
        raise ValueError(f"rate item {item!r}: {exc}") from None
    return code, rate


def parse_rates(text: str) -> dict[str, Decimal]:
    """Parse the ``EUR=1.08,GBP=1.27`` setting; an empty setting means no foreign currencies.

    A typo in a rate would silently misprice every order, so anything doubtful is an error
    that names the offending item rather than being skipped.
    """
    rates: dict[str, Decimal] = {}
    if not text.strip():
        return rates
    for item in text.split(","):
        code, rate = _parse_rate_item(item)
        if code in rates:
            raise ValueError(f"rate item {item!r}: {code} is given more than once")
        rates[code] = rate
    return rates


def format_minor(minor: int, exponent: int) -> str:
    """Exact decimal text for a minor-unit count, for logs and output records (never a float)."""
    if exponent < 0:
        raise ValueError(f"exponent must be >= 0, got {exponent}")
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"
