"""What the product holds, read through its operator surfaces: ``rfm-stream export`` (every
profile as last scored, with that scoring's ``as_of``) and ``rfm-stream segments``.

Nothing here knows Redis keys or the packed profile format, so these reads survive a change
of the state layout; the values come back in the oracle's units (epoch ms, minor units).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

import orjson

from tests.reference import Expected
from tests.reference.money import minor_digits
from tests.support.harness import run_cli

Values = tuple[object, ...]


@dataclass(frozen=True)
class Stored:
    """One exported profile."""

    customer_id: str
    first_ms: int | None
    last_ms: int | None
    orders: int  # the window's, as last scored
    spend_minor: int
    lifetime_orders: int
    lifetime_spend_minor: int
    r: int | None
    f: int | None
    m: int | None
    recency_days: int | None
    segment: str | None
    as_of_ms: int | None

    def values(self) -> Values:
        """What the oracle predicts, in ``expected_values`` order."""
        return (
            self.first_ms,
            self.last_ms,
            self.orders,
            self.spend_minor,
            self.lifetime_orders,
            self.lifetime_spend_minor,
            self.r,
            self.f,
            self.m,
            self.recency_days,
            self.segment,
        )


def expected_values(e: Expected) -> Values:
    return (
        e.first_ms,
        e.last_ms,
        e.orders,
        e.spend_minor,
        e.lifetime_orders,
        e.lifetime_spend_minor,
        e.r,
        e.f,
        e.m,
        e.recency_days,
        e.segment,
    )


def _ms(text: str | None) -> int | None:
    if text is None:
        return None
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _minor(spend: str, currency: str) -> int:
    amount = Fraction(spend) * 10 ** minor_digits(currency)
    assert amount.denominator == 1, f"spend {spend} {currency} is not whole minor units"
    return int(amount)


def _stored(row: dict[str, Any]) -> Stored:
    return Stored(
        customer_id=row["customer_id"],
        first_ms=_ms(row["first_purchase_at"]),
        last_ms=_ms(row["last_purchase_at"]),
        orders=int(row["orders"]),
        spend_minor=_minor(row["spend"], row["currency"]),
        lifetime_orders=int(row["lifetime_orders"]),
        lifetime_spend_minor=_minor(row["lifetime_spend"], row["currency"]),
        r=row["r"],
        f=row["f"],
        m=row["m"],
        recency_days=row["recency_days"],
        segment=row["segment"],
        as_of_ms=_ms(row["as_of"]),
    )


def _cli(env: Mapping[str, str], *args: str) -> str:
    done = run_cli(env, *args)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


def stored_profiles(env: Mapping[str, str]) -> dict[str, Stored]:
    """``rfm-stream export --format jsonl``: every customer the product holds."""
    rows = [orjson.loads(line) for line in _cli(env, "export", "--format", "jsonl").splitlines()]
    profiles = {row["customer_id"]: _stored(row) for row in rows}
    assert len(profiles) == len(rows), "export listed a customer twice"
    return profiles


def segment_sizes(env: Mapping[str, str]) -> dict[str, int]:
    """``rfm-stream segments``: customers per segment (segments without any left out)."""
    sizes: dict[str, int] = {}
    for line in _cli(env, "segments").splitlines():
        name, count = line.split()[:2]
        sizes[name] = int(count)
    total = sizes.pop("total")
    assert total == sum(sizes.values()), sizes
    return {name: n for name, n in sizes.items() if n}
