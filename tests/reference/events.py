"""One record value -> an ``Event``, or a ``DeadLetter`` with the README's reason.

When an event has several problems, the first check that fails decides the reason, in this
order: payload size, JSON, object; ``type``; ``order_id``; ``customer_id``; ``refund_id``
(refunds only); ``occurred_at`` (type, format, range, future); ``amount`` (missing, type,
format, negative, too large); ``currency`` (shape, known); the amount's decimal places in
that currency. Cancels ignore ``amount`` and ``currency``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from .config import Config
from .money import ExactDecimal, is_currency_code, minor_digits, to_base_minor

__all__ = ["DeadLetter", "Event", "Kind", "parse_event"]

Kind = Literal["purchase", "refund", "cancel"]

MAX_JSON_DEPTH: Final = 1024  # arrays and objects nested deeper are malformed_json
MAX_TIMESTAMP_CHARS: Final = 64
MAX_AMOUNT_CHARS: Final = 100
LATEST_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

# RFC 3339 date-time (section 5.6); the date and time may also be separated by a space.
_RFC3339: Final = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt ]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<offset_hour>[0-9]{2}):(?P<offset_minute>[0-9]{2}))",
    re.ASCII,
)
# Unicode category Cc: C0 controls, DEL, C1 controls.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    kind: Kind
    order_id: str
    customer_id: str
    amount_minor: int  # base-currency minor units; 0 for cancels
    occurred_ms: int
    refund_id: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    detail: str = ""


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.dead_letter = DeadLetter(reason, detail)


def parse_event(raw: bytes | None, config: Config, now_ms: int) -> Event | DeadLetter:
    """The event in ``raw``, or why it is dead-lettered; ``now_ms`` is the processing time."""
    try:
        return _parse(raw, config, now_ms)
    except _Invalid as invalid:
        return invalid.dead_letter


def _parse(raw: bytes | None, config: Config, now_ms: int) -> Event:
    if raw is None:
        raise _Invalid("malformed_json", "no value")
    if len(raw) > config.max_payload_bytes:
        raise _Invalid("payload_too_large")
    document = _json(raw)
    if not isinstance(document, dict):
        raise _Invalid("not_an_object")
    kind = _kind(document.get("type"))
    order_id = _required_id(document, "order_id", config)
    customer_id = _required_id(document, "customer_id", config)
    refund_id = _optional_id(document, "refund_id", config) if kind == "refund" else None
    occurred_ms = _occurred_ms(document.get("occurred_at"), config, now_ms)
    amount_minor = 0 if kind == "cancel" else _amount_minor(document, config)
    return Event(kind, order_id, customer_id, amount_minor, occurred_ms, refund_id)


# ------------------------------------------------------------------------------ JSON


def _json(raw: bytes) -> object:
    """Strict JSON in UTF-8: no byte order mark, no NaN or Infinity, no lone surrogate
    escapes, at most ``MAX_JSON_DEPTH`` levels, no number beyond the range of a double."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid("malformed_json", "not UTF-8") from None
    depth = 0
    if text.count("[") + text.count("{") > 100:  # only then can it nest deeply
        depth = _nesting_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise _Invalid("malformed_json", f"nested {depth} deep")
    try:
        document = _decode(text, depth)
    except ValueError as exc:  # JSONDecodeError, and the number checks below
        raise _Invalid("malformed_json", str(exc)) from None
    if "\\u" in text and _has_lone_surrogate(document):
        raise _Invalid("malformed_json", "lone surrogate escape")
    return document


def _json_int(text: str) -> int | float:
    """README: an integer beyond 64 bits (below -2**63 or from 2**64) is read as the
    nearest double, like a number with a fraction."""
    if math.isinf(float(text)):
        raise ValueError(f"integer {text[:20]}... is beyond the range of a double")
    value = int(text)
    if not -(2**63) <= value < 2**64:
        return float(value)
    return value


def _json_float(text: str) -> float:
    """A number with a fraction or an exponent is read as the nearest double."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]}... is beyond the range of a double")
    return value


def _no_constant(text: str) -> object:
    raise ValueError(f"{text} is not JSON")


_DECODER: Final = json.JSONDecoder(
    parse_int=_json_int, parse_float=_json_float, parse_constant=_no_constant
)


def _decode(text: str, depth: int) -> object:
    """The json module recurses once per level: deep documents get room for that."""
    if depth <= 100:
        return _DECODER.decode(text)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 2 * depth)
    try:
        return _DECODER.decode(text)
    finally:
        sys.setrecursionlimit(limit)


def _nesting_depth(text: str) -> int:
    """How deep arrays and objects nest; brackets inside strings do not count."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _has_lone_surrogate(value: object) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and _SURROGATE.search(item):
            return True
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return False


# ------------------------------------------------------------------------------ fields


def _kind(value: object) -> Kind:
    if value is None:
        return "purchase"
    if not isinstance(value, str):
        raise _Invalid("invalid_field", "type")
    if value == "purchase":
        return "purchase"
    if value == "refund":
        return "refund"
    if value == "cancel":
        return "cancel"
    raise _Invalid("invalid_type", value)


def _required_id(document: dict[str, object], name: str, config: Config) -> str:
    value = _optional_id(document, name, config)
    if value is None:
        raise _Invalid("missing_field", name)
    return value


def _optional_id(document: dict[str, object], name: str, config: Config) -> str | None:
    """A non-empty string of at most ``max_id_chars`` characters, without control characters
    and not only whitespace; JSON null counts as absent."""
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("invalid_field", name)
    too_long = len(value) > config.max_id_chars
    if value == "" or too_long or _CONTROL.search(value) or value.isspace():
        raise _Invalid("invalid_field", name)
    return value


def _occurred_ms(value: object, config: Config, now_ms: int) -> int:
    if value is None:
        raise _Invalid("missing_field", "occurred_at")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Invalid("invalid_field", "occurred_at")
    occurred = value if isinstance(value, int) else _rfc3339_ms(value)
    if not 0 < occurred <= LATEST_MS:
        raise _Invalid("invalid_timestamp", "not in 1970..9999")
    if occurred - now_ms > config.max_future_skew_ms:
        raise _Invalid("timestamp_in_future")
    return occurred


def _rfc3339_ms(text: str) -> int:
    """Epoch milliseconds; digits beyond the millisecond are dropped."""
    match = _RFC3339.fullmatch(text) if len(text) <= MAX_TIMESTAMP_CHARS else None
    if match is None:
        raise _Invalid("invalid_timestamp", "not RFC 3339")

    def number(name: str) -> int:
        return int(match[name] or "0")

    try:
        local = datetime(
            number("year"), number("month"), number("day"),
            number("hour"), number("minute"), number("second"), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:  # no such date, hour 24, second 60 ...
        raise _Invalid("invalid_timestamp", "no such date and time") from None
    if number("offset_hour") > 23 or number("offset_minute") > 59:
        raise _Invalid("invalid_timestamp", "no such offset")
    offset_ms = (number("offset_hour") * 60 + number("offset_minute")) * 60_000
    if match["sign"] == "-":
        offset_ms = -offset_ms
    milliseconds = int((match["fraction"] or "").ljust(3, "0")[:3])
    local_ms = (local - _EPOCH) // timedelta(seconds=1) * 1000 + milliseconds
    return local_ms - offset_ms


def _amount_minor(document: dict[str, object], config: Config) -> int:
    amount = _amount(document.get("amount"), config)
    currency = _currency(document.get("currency"), config)
    if amount.decimal_places() > minor_digits(currency):
        raise _Invalid("invalid_amount", f"finer than the minor unit of {currency}")
    return to_base_minor(amount, currency, config.currency, config.rates)


def _amount(value: object, config: Config) -> ExactDecimal:
    if value is None:
        raise _Invalid("missing_field", "amount")
    amount: ExactDecimal | None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid("invalid_field", "amount")
    if isinstance(value, int):
        amount = ExactDecimal.from_int(value)
    elif isinstance(value, float):
        amount = ExactDecimal.from_text(repr(value))  # the shortest text of that double
    elif len(value) > MAX_AMOUNT_CHARS:
        amount = None
    else:
        amount = ExactDecimal.from_text(value)
    if amount is None:
        raise _Invalid("invalid_amount", "not a decimal number")
    if amount.is_negative():
        raise _Invalid("negative_amount")
    if amount.exceeds(config.max_amount_major):
        raise _Invalid("amount_too_large")
    return amount


def _currency(value: object, config: Config) -> str:
    if value is None:
        return config.currency
    if not isinstance(value, str) or not is_currency_code(value):
        raise _Invalid("invalid_field", "currency")
    if value != config.currency and value not in config.rates:
        raise _Invalid("unknown_currency", value)
    return value
