"""The oracle folds and scores 50,000 events in well under a couple of seconds."""

from __future__ import annotations

import random
import time

from . import MS_PER_DAY, Config, expected, fold
from .records import record

NOW = 1_795_600_800_000


def _values(count: int) -> list[bytes]:
    rng = random.Random(7)
    values: list[bytes] = []
    for _ in range(count):
        customer, order = f"c{rng.randrange(5000)}", f"o{rng.randrange(20)}"
        at = NOW - rng.randrange(400 * MS_PER_DAY)
        roll = rng.random()
        if roll < 0.8:
            amount, currency = f"{rng.randrange(1, 100_000) / 100:.2f}", rng.choice(["USD", "EUR"])
            values.append(
                record(
                    customer_id=customer,
                    order_id=order,
                    occurred_at=at,
                    amount=amount,
                    currency=currency,
                )
            )
        elif roll < 0.9:
            values.append(
                record(type="refund", customer_id=customer, order_id=order, occurred_at=at)
            )
        else:
            values.append(
                record(type="cancel", customer_id=customer, order_id=order, occurred_at=at)
            )
    return values


def test_fifty_thousand_events() -> None:
    values = _values(50_000)
    config = Config.from_env(
        {"RFM_CURRENCY_RATES": "EUR=1.08", "RFM_SCORING": "quintiles", "RFM_WINDOW_DAYS": "365"}
    )
    started = time.perf_counter()
    history = fold(values, config, NOW)
    profiles = expected(history, config, NOW)
    elapsed = time.perf_counter() - started
    assert sum(history.outcomes.values()) == 50_000
    assert len(profiles) > 4000
    # About 0.7 s on a shared two-core machine; the bound leaves room for a busy one.
    assert elapsed < 4.0, elapsed
