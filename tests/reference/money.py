"""Exact amounts: decimal text as sent, minor units of ISO 4217 currencies, conversion.

Amounts are exact numbers: ``coefficient * 10**exponent``. The text of an amount can carry an
exponent of any size (``1e999999999``), so the value is only turned into a ``Fraction``
once it is known to be a sane amount; comparisons before that look at the digits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

__all__ = [
    "ExactDecimal",
    "is_currency_code",
    "minor_digits",
    "parse_plain_decimal",
    "to_base_minor",
]

# ISO 4217 minor units that are not two digits.
_NO_MINOR_UNIT: Final = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"}
    | {"RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DIGITS: Final = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_FOUR_DIGITS: Final = frozenset({"CLF", "UYW"})

_CURRENCY_CODE: Final = re.compile(r"[A-Z]{3}", re.ASCII)
# JSON-number grammar, also allowing leading zeros, ".5" and "5."; ASCII digits only.
_AMOUNT_TEXT: Final = re.compile(
    r"(?P<sign>-?)(?:(?P<whole>[0-9]+)\.?(?P<fraction>[0-9]*)|\.(?P<only_fraction>[0-9]+))"
    r"(?:[eE](?P<exponent>[+-]?[0-9]+))?",
    re.ASCII,
)
_PLAIN_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def is_currency_code(text: str) -> bool:
    """Three ASCII capital letters: the shape of an ISO 4217 code."""
    return _CURRENCY_CODE.fullmatch(text) is not None


def minor_digits(currency: str) -> int:
    """Decimal digits of the currency's minor unit: 0, 2 (most), 3 or 4."""
    if currency in _NO_MINOR_UNIT:
        return 0
    if currency in _THREE_DIGITS:
        return 3
    if currency in _FOUR_DIGITS:
        return 4
    return 2


def parse_plain_decimal(text: str) -> Fraction | None:
    """``12`` or ``1.08`` (settings), exactly; None for anything else."""
    if not _PLAIN_DECIMAL.fullmatch(text):
        return None
    return Fraction(text)


@dataclass(frozen=True)
class ExactDecimal:
    """``(-1 if negative else 1) * coefficient * 10**exponent``, trailing zeros removed."""

    negative: bool
    coefficient: int
    exponent: int

    @classmethod
    def of(cls, negative: bool, coefficient: int, exponent: int) -> ExactDecimal:
        if coefficient == 0:
            return cls(False, 0, 0)
        while coefficient % 10 == 0:
            coefficient //= 10
            exponent += 1
        return cls(negative, coefficient, exponent)

    @classmethod
    def from_text(cls, text: str) -> ExactDecimal | None:
        """An amount string (see ``_AMOUNT_TEXT``); None when it is not one."""
        match = _AMOUNT_TEXT.fullmatch(text)
        if match is None:
            return None
        whole = match["whole"] or ""
        fraction = match["fraction"] or match["only_fraction"] or ""
        exponent = int(match["exponent"] or "0") - len(fraction)
        return cls.of(match["sign"] == "-", int(whole + fraction), exponent)

    @classmethod
    def from_int(cls, value: int) -> ExactDecimal:
        return cls.of(value < 0, abs(value), 0)

    def is_negative(self) -> bool:
        return self.negative and self.coefficient != 0

    def decimal_places(self) -> int:
        """Digits after the point that are not trailing zeros: ``1.50`` has one."""
        return max(0, -self.exponent)

    def exceeds(self, limit: int) -> bool:
        """Whether the value is greater than ``limit`` (an integer >= 1).

        The value lies in [10**(n-1), 10**n) for n = digits of the coefficient + exponent;
        only when that range overlaps the limit's is the exact value needed.
        """
        if self.is_negative() or self.coefficient == 0:
            return False
        n = len(str(self.coefficient)) + self.exponent
        limit_digits = len(str(limit))
        if n > limit_digits:
            return True
        if n < limit_digits:
            return False
        return self.as_fraction() > limit  # here |exponent| is at most ~100 digits' worth

    def as_fraction(self) -> Fraction:
        """The exact value; only for amounts already known to be of sane size."""
        sign = -1 if self.negative else 1
        return sign * self.coefficient * Fraction(10) ** self.exponent


def to_base_minor(
    amount: ExactDecimal, currency: str, base: str, rates: Mapping[str, Fraction]
) -> int:
    """A non-negative ``amount`` of ``currency`` (already known to fit its minor unit) in
    minor units of ``base``: exact for the base currency; for another currency converted
    exactly (``rates[currency]`` base units per unit), then rounded half to even once."""
    # amount * 10**(base minor digits) as numerator / denominator
    numerator = amount.coefficient * 10 ** max(0, amount.exponent + minor_digits(base))
    denominator = 10 ** max(0, -amount.exponent - minor_digits(base))
    if currency != base:
        numerator *= rates[currency].numerator
        denominator *= rates[currency].denominator
    minor = Fraction(numerator, denominator)
    assert currency != base or minor.denominator == 1, "finer than the minor unit"
    return round(minor)  # round() of a Fraction: to the nearest integer, half to even
