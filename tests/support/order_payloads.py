"""Shared inputs of the order-validation tests: a fixed clock, currency table and payloads.

``payload`` builds a raw order record from a valid base (``DROP`` leaves a field out);
``accepted`` and ``rejected`` parse one and check the outcome.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

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
