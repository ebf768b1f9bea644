"""Building record values for tests: an order event as the JSON bytes a producer sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["DROP", "iso", "record"]

DROP: Final = object()  # leaves a field out of the record


def record(**fields: object) -> bytes:
    """A purchase of 10.00 at ``occurred_at`` 2026-11-25T10:00:00Z, with ``fields`` replaced
    (``DROP`` leaves one out; ``type="refund"``, ``amount=12.5`` ... as given)."""
    document: dict[str, object] = {
        "order_id": "o1",
        "customer_id": "c1",
        "amount": "10.00",
        "occurred_at": "2026-11-25T10:00:00Z",
    }
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not DROP}).encode()


def iso(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-11-25T10:00:00.000Z."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
