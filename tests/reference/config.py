"""The settings the reference computation needs, read from ``RFM_*`` variables as the README
names them, with the README's defaults.

Only what changes the result is read: currency and rates, scoring mode and thresholds,
segment rules, clock, future skew, the window and the order retention. Limits the
README does not state (payload size, id length, largest amount) are plain constants here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from typing import Final, Literal, TypeVar

from .money import is_currency_code, minor_digits, parse_plain_decimal

__all__ = ["MS_PER_DAY", "Config", "ConfigError"]

MS_PER_DAY: Final = 86_400_000

T = TypeVar("T")
_WHOLE: Final = re.compile(r"[0-9]+", re.ASCII)

Clock = Literal["wall", "event"]
Scoring = Literal["thresholds", "quintiles"]


class ConfigError(ValueError):
    """A setting the reference cannot use; the message names the variable."""


@dataclass(frozen=True)
class Config:
    """Everything that decides outcomes, scores and segments.

    ``monetary_minor`` bounds are in minor units of ``currency``; ``rates`` are units of
    ``currency`` per one unit of the other currency, held as exact fractions.
    """

    currency: str = "USD"
    rates: Mapping[str, Fraction] = field(default_factory=dict)
    scoring: Scoring = "thresholds"
    segments: str = "default"
    clock: Clock = "wall"
    recency_days: tuple[int, int, int, int] = (30, 60, 90, 120)
    frequency: tuple[int, int, int, int] = (2, 4, 7, 10)
    monetary_minor: tuple[int, int, int, int] = (10_000, 40_000, 70_000, 100_000)
    max_future_skew_ms: int = 300_000
    window_days: int = 365  # 0: the whole history
    retention_days: int = 395  # 0: order records are kept forever
    # Limits the README does not state (the product's current values):
    max_payload_bytes: int = 65_536
    max_id_chars: int = 256
    max_amount_major: int = 1_000_000_000

    @property
    def window_ms(self) -> int:
        return self.window_days * MS_PER_DAY

    @property
    def retention_ms(self) -> int:
        return self.retention_days * MS_PER_DAY

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """The configuration an ``RFM_*`` environment describes; absent variables take the
        README's defaults, other variables are ignored."""
        currency = _read(env, "RFM_CURRENCY", "USD", _currency)
        window_days = _read(env, "RFM_WINDOW_DAYS", "365", _whole_days)
        default_retention = str(window_days + 30) if window_days > 0 else "0"
        return cls(
            currency=currency,
            rates=_read(env, "RFM_CURRENCY_RATES", "", lambda text: _rates(text, currency)),
            scoring=_read(env, "RFM_SCORING", "thresholds", _scoring),
            segments=_read(env, "RFM_SEGMENTS", "default", _segments),
            clock=_read(env, "RFM_CLOCK", "wall", _clock),
            recency_days=_read(env, "RFM_RECENCY_DAYS", "30,60,90,120", _four_whole_numbers),
            frequency=_read(env, "RFM_FREQUENCY", "2,4,7,10", _four_whole_numbers),
            monetary_minor=_read(
                env, "RFM_MONETARY", "100,400,700,1000", lambda text: _amounts(text, currency)
            ),
            max_future_skew_ms=_read(env, "RFM_MAX_FUTURE_SKEW", "300", _seconds_as_ms),
            window_days=window_days,
            retention_days=_read(env, "RFM_ORDER_RETENTION_DAYS", default_retention, _whole_days),
        )


def _read(env: Mapping[str, str], name: str, default: str, parse: Callable[[str], T]) -> T:
    text = env.get(name, default)
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r}: {exc}") from None


def _currency(text: str) -> str:
    if not is_currency_code(text):
        raise ValueError("not an ISO 4217 code such as USD")
    return text


def _rates(text: str, base: str) -> dict[str, Fraction]:
    """``EUR=1.08,GBP=1.27``: units of the base currency per one unit of each other one."""
    rates: dict[str, Fraction] = {}
    if not text.strip():
        return rates
    for item in text.split(","):
        code, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not is_currency_code(code):
            raise ValueError(f"item {item!r} is not CODE=RATE")
        if code == base or code in rates:
            raise ValueError(f"item {item!r}: {code} is the base currency or given twice")
        rate = parse_plain_decimal(value)
        if rate is None or rate <= 0:
            raise ValueError(f"item {item!r}: the rate is not a positive decimal number")
        rates[code] = rate
    return rates


def _scoring(text: str) -> Scoring:
    if text == "thresholds":
        return "thresholds"
    if text == "quintiles":
        return "quintiles"
    raise ValueError("must be thresholds or quintiles")


def _clock(text: str) -> Clock:
    if text == "wall":
        return "wall"
    if text == "event":
        return "event"
    raise ValueError("must be wall or event")


def _segments(text: str) -> str:
    if not text.strip():
        raise ValueError("must name a preset or a TOML file")
    return text.strip()


def _whole_number(text: str) -> int:
    if not _WHOLE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _whole_days(text: str) -> int:
    return _whole_number(text)


def _increasing(values: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(values) != 4:
        raise ValueError("needs four comma-separated values")
    if any(lo >= hi for lo, hi in pairwise(values)):
        raise ValueError("the four values must be strictly increasing")
    return (values[0], values[1], values[2], values[3])


def _four_whole_numbers(text: str) -> tuple[int, int, int, int]:
    return _increasing(tuple(_whole_number(part) for part in text.split(",")))


def _amounts(text: str, currency: str) -> tuple[int, int, int, int]:
    """Major-unit amounts such as ``100`` or ``99.50``, as minor units of ``currency``."""
    scale: int = 10 ** minor_digits(currency)
    minor: list[int] = []
    for part in text.split(","):
        amount = parse_plain_decimal(part.strip())
        if amount is None or amount < 0 or (amount * scale).denominator != 1:
            raise ValueError(f"{part!r} is not an amount of {currency}")
        minor.append(int(amount * scale))
    return _increasing(tuple(minor))


def _seconds_as_ms(text: str) -> int:
    """Seconds, possibly fractional, as whole milliseconds (rounded down)."""
    seconds = parse_plain_decimal(text.strip())
    if seconds is None or seconds < 0:
        raise ValueError("must be a number of seconds >= 0")
    return int(seconds * 1000)
