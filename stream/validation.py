"""Turn a raw Kafka record value into an ``OrderEvent`` or a ``Rejection``.

Producers are outside our control, so every record is untrusted: this module never raises,
whatever the bytes. A record that cannot be applied becomes a ``Rejection`` with a stable
reason code (for dead-letter metrics and alerting) and a short message naming the field, so
an operator can fix the producer without the dead-letter topic leaking whole payloads.

Conventions: a JSON ``null`` counts as an absent field; a value of the wrong JSON type is
``invalid_field``, while a value of the right type with bad content gets the specific reason
(``invalid_amount``, ``invalid_timestamp`` ...).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from state.model import EventKind, OrderEvent, Rejection
from state.money import CurrencyTable, MoneyError, is_currency_code

__all__ = ["REASONS", "ValidationRules", "id_problem", "parse_order"]

# Stable codes for dead-letter records and metrics; the last four come from the state layer
# (refund/cancel of an unseen order, refund of a cancelled order, an event older than the
# order retention, a bug while applying).
REASONS: Final[tuple[str, ...]] = (
    "payload_too_large", "malformed_json", "not_an_object", "missing_field", "invalid_field",
    "invalid_type", "invalid_amount", "negative_amount", "amount_too_large", "unknown_currency",
    "invalid_timestamp", "timestamp_in_future", "unknown_order", "order_cancelled", "too_old",
    "internal_error",
)  # fmt: skip

_KINDS: dict[str, EventKind] = {"purchase": "purchase", "refund": "refund", "cancel": "cancel"}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MAX_EPOCH_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MAX_TIMESTAMP_CHARS: Final = 64
_MAX_AMOUNT_CHARS: Final = 100
_SHOW_CHARS: Final = 80

# JSON-number grammar (plus ".5"/"5."), ASCII digits only: Decimal() alone would also take
# "NaN", " 1 ", "1_000" and Arabic-Indic digits, none of which a producer means as money.
_AMOUNT_TEXT: Final = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
# RFC 3339's date-time (section 5.6; 't', 'z' and a space as the separator allowed, as it
# notes). fromisoformat alone also takes ISO 8601 forms RFC 3339 has not: no seconds, basic
# times, offsets without a colon or with seconds, comma fractions.
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
# An exponent of this many digits is no money; Decimal refuses such text outright, so it is
# judged from its sign and coefficient instead (too large, negative, or zero).
_MAX_EXPONENT_DIGITS: Final = 6


@dataclass(frozen=True)
class ValidationRules:
    """Limits that keep one bad producer from poisoning state or exhausting memory."""

    currencies: CurrencyTable
    max_future_skew_ms: int = 300_000
    max_payload_bytes: int = 65_536
    max_amount_major: Decimal = Decimal("1000000000")
    max_id_length: int = 256

    def __post_init__(self) -> None:
        if self.max_future_skew_ms < 0 or self.max_payload_bytes <= 0 or self.max_id_length <= 0:
            raise ValueError("validation limits must be positive")
        if not self.max_amount_major.is_finite() or self.max_amount_major < 0:
            raise ValueError("max_amount_major must be a finite non-negative decimal")


class _Reject(Exception):
    """Internal short-cut out of nested checks; always turned into a ``Rejection``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_order(raw: bytes | None, rules: ValidationRules, now_ms: int) -> OrderEvent | Rejection:
    """Validate one record value; ``now_ms`` is the processing clock used for the skew check."""
    if raw is None:
        return Rejection("malformed_json", "record has no value (null payload)")
    if len(raw) > rules.max_payload_bytes:
        limit = rules.max_payload_bytes
        return Rejection("payload_too_large", f"payload is {len(raw)} bytes; the limit is {limit}")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("malformed_json", f"payload is not valid JSON: {_clip(str(exc))}")
    if not isinstance(document, dict):
        return Rejection("not_an_object", f"payload is {_show(document)}, expected a JSON object")
    try:
        return _build(document, rules, now_ms)
    except _Reject as exc:
        return Rejection(exc.reason, exc.message)


def _build(doc: dict[str, Any], rules: ValidationRules, now_ms: int) -> OrderEvent:
    kind = _kind(doc.get("type"))
    order_id = _required_id(doc, "order_id", rules)
    customer_id = _required_id(doc, "customer_id", rules)
    # A refund id only makes sense on a refund; elsewhere it is ignored like unknown fields.
    refund_id = _optional_id(doc, "refund_id", rules) if kind == "refund" else None
    occurred_ms = _occurred_ms(doc.get("occurred_at"), rules, now_ms)
    # A cancel voids the whole order, so its amount and currency are not looked at.
    amount_minor = 0 if kind == "cancel" else _amount_minor(doc, rules)
    return OrderEvent(
        kind=kind,
        order_id=order_id,
        customer_id=customer_id,
        amount_minor=amount_minor,
        occurred_ms=occurred_ms,
        refund_id=refund_id,
    )


def _clip(text: str) -> str:
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _show(value: object) -> str:
    """A short description of a JSON value for a message.

    Containers are described, not printed: repr of a 1000-deep array would hit the recursion
    limit, and their content is payload we do not want in the dead-letter message.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"an array of length {len(value)}"
    if isinstance(value, dict):
        return f"an object of size {len(value)}"
    if isinstance(value, str):
        return _clip(repr(value[: _SHOW_CHARS + 1]))
    return _clip(repr(value))


def _kind(value: object) -> EventKind:
    if value is None:
        return "purchase"
    if not isinstance(value, str):
        raise _Reject("invalid_field", f"type must be a string, got {_show(value)}")
    kind = _KINDS.get(value)
    if kind is None:
        raise _Reject("invalid_type", f"type is not purchase, refund or cancel: {_show(value)}")
    return kind


def _required_id(doc: dict[str, Any], name: str, rules: ValidationRules) -> str:
    value = _optional_id(doc, name, rules)
    if value is None:
        raise _Reject("missing_field", f"{name} is required")
    return value


def _optional_id(doc: dict[str, Any], name: str, rules: ValidationRules) -> str | None:
    """Ids are opaque: any printable text is kept unchanged (the store escapes it).

    Control characters are refused because they break logs and terminals, and blank ids
    because they are almost certainly a producer bug that would merge unrelated customers.
    """
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Reject("invalid_field", f"{name} must be a string, got {_show(value)}")
    problem = _id_problem(value, rules.max_id_length)
    if problem:
        raise _Reject("invalid_field", f"{name} {problem}: {_show(value)}")
    return value


# Unicode category Cc is exactly these: C0 controls, DEL and C1 controls. One regex search
# instead of a category lookup per character (the per-character loop was 8% of a worker).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def id_problem(value: str, rules: ValidationRules | None = None) -> str | None:
    """What is wrong with an id as the worker judges it (None: nothing): the CLI and the
    query API refuse exactly the ids no event can have created."""
    max_length = rules.max_id_length if rules is not None else ValidationRules.max_id_length
    return _id_problem(value, max_length)


def _id_problem(value: str, max_length: int) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"is {len(value)} characters long; the limit is {max_length}"
    control = _CONTROL.search(value)
    if control:
        position = control.start()
        return f"contains control character U+{ord(value[position]):04X} at position {position}"
    if value.isspace():
        return "must not be blank"
    return None


def _occurred_ms(value: object, rules: ValidationRules, now_ms: int) -> int:
    if value is None:
        raise _Reject("missing_field", "occurred_at is required")
    if isinstance(value, str):
        occurred = _rfc3339_ms(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        occurred = value
    else:
        raise _Reject("invalid_field", f"occurred_at must be a string or int: {_show(value)}")
    if not 0 < occurred <= _MAX_EPOCH_MS:
        raise _Reject("invalid_timestamp", f"occurred_at is not in 1970..9999: {_show(value)}")
    # Events from the future would make a customer look more recent than anyone else; a
    # small skew is tolerated because producers' clocks are never exactly in step.
    ahead = occurred - now_ms
    if ahead > rules.max_future_skew_ms:
        skew = rules.max_future_skew_ms
        message = f"occurred_at is {ahead} ms ahead of the clock (limit {skew}): {_show(value)}"
        raise _Reject("timestamp_in_future", message)
    return occurred


def _rfc3339_ms(text: str) -> int:
    """Epoch ms of an RFC 3339 date-time, truncated to the millisecond.

    A zone is required: a naive time would be read in whatever zone the worker runs in, so
    the same event would land on different days on different machines.
    """
    if len(text) > _MAX_TIMESTAMP_CHARS or not _RFC3339.fullmatch(text):
        raise _Reject("invalid_timestamp", f"occurred_at is not RFC 3339: {_show(text)}")
    try:
        parsed = datetime.fromisoformat(text.upper())  # RFC 3339 allows 't' and 'z'
    except ValueError:
        message = f"occurred_at is not a real date and time: {_show(text)}"
        raise _Reject("invalid_timestamp", message) from None
    if parsed.utcoffset() is None:
        raise _Reject("invalid_timestamp", f"occurred_at lacks a zone offset: {_show(text)}")
    return (parsed - _EPOCH) // _ONE_MS


def _amount_minor(doc: dict[str, Any], rules: ValidationRules) -> int:
    amount = _amount(doc.get("amount"), rules)
    currency = _currency(doc.get("currency"), rules)
    try:
        return rules.currencies.to_base_minor(amount, currency)
    except MoneyError as exc:
        raise _Reject(exc.reason, exc.message) from None


def _amount(value: object, rules: ValidationRules) -> Decimal:
    if value is None:
        raise _Reject("missing_field", "amount is required for purchases and refunds")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Reject("invalid_field", f"amount must be a string or a number: {_show(value)}")
    amount = _to_decimal(value)
    if amount < 0:
        raise _Reject("negative_amount", f"amount must not be negative: {_show(value)}")
    if amount > rules.max_amount_major:
        limit = rules.max_amount_major
        raise _Reject("amount_too_large", f"amount is over the {limit} limit: {_show(value)}")
    return amount


def _to_decimal(value: int | float | str) -> Decimal:
    """Exact decimal of a JSON amount; floats go through repr so ``129.9`` stays ``129.9``."""
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Reject("invalid_amount", f"amount is not finite: {_show(value)}")
        return Decimal(repr(value))
    if len(value) > _MAX_AMOUNT_CHARS or not _AMOUNT_TEXT.fullmatch(value):
        raise _Reject("invalid_amount", f"amount is not a finite decimal number: {_show(value)}")
    mantissa, _, exponent = value.lower().partition("e")
    if len(exponent.lstrip("+-").lstrip("0")) > _MAX_EXPONENT_DIGITS:
        return _extreme(mantissa, exponent, value)
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the grammar and the exponent check above
        raise _Reject("invalid_amount", f"amount is out of range: {_show(value)}") from None


def _extreme(mantissa: str, exponent: str, value: str) -> Decimal:
    """An amount with an exponent of more than a million: zero, or far out of any range."""
    if not mantissa.strip("-.0"):
        return Decimal(0)
    if mantissa.startswith("-"):
        raise _Reject("negative_amount", f"amount must not be negative: {_show(value)}")
    if exponent.startswith("-"):
        raise _Reject("invalid_amount", f"amount has more decimals than money has: {_show(value)}")
    raise _Reject("amount_too_large", f"amount is implausibly large: {_show(value)}")


def _currency(value: object, rules: ValidationRules) -> str:
    if value is None:
        return rules.currencies.base
    if not isinstance(value, str) or not is_currency_code(value):
        raise _Reject("invalid_field", f"currency is not an ISO 4217 code: {_show(value)}")
    return value
