"""Value types shared by validation, the Redis store and scoring.

They are plain frozen dataclasses so the pure layers can be tested without Redis and the
batch oracle in the tests can reuse them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

EventKind = Literal["purchase", "refund", "cancel"]

MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A validated order event, money already converted to base-currency minor units."""

    kind: EventKind
    order_id: str
    customer_id: str
    amount_minor: int  # 0 for cancels
    occurred_ms: int  # epoch milliseconds, UTC
    refund_id: str | None = None  # identifies a refund so a retried refund is a duplicate


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input event cannot be applied: becomes a dead-letter record."""

    reason: str  # a stable machine-readable code, see stream.validation.REASONS
    message: str  # for humans


@dataclass(frozen=True, slots=True)
class History:
    """How much order history counts and is kept (README, "Window and retention").

    ``window_days``: F and M count the live purchases of the last this many days (0: all).
    ``retention_days``: order records are kept this long to recognise duplicates, and an
    event older than this when it arrives is dead-lettered ``too_old`` (0: forever).
    ``event_clock``: "now" is the latest event time applied (``RFM_CLOCK=event``).
    """

    window_days: int = 0
    retention_days: int = 0
    event_clock: bool = False

    @property
    def window_ms(self) -> int:
        return self.window_days * MS_PER_DAY

    @property
    def retention_ms(self) -> int:
        return self.retention_days * MS_PER_DAY

    def prune_before(self, clock_ms: int) -> int | None:
        """Order records at or before this time are past the retention (None: keep all)."""
        return clock_ms - self.retention_ms if self.retention_days > 0 else None


@dataclass(frozen=True, slots=True)
class Scores:
    r: int
    f: int
    m: int
    recency_days: int


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What the store holds for one customer, as read back for scoring."""

    customer_id: str
    first_ms: int | None  # None once every order is cancelled
    last_ms: int | None
    orders: int
    spend_minor: int
    version: int  # bumped on every write: compare-and-set token for score writes
    partition: int  # input partition the customer's events arrive on (outbox shard)
    segment: str | None
    seq: int  # number of segment changes so far; the next change gets seq + 1
    r: int | None = None
    f: int | None = None
    m: int | None = None
    recency_days: int | None = None
    as_of_ms: int | None = None
    due_ms: int | None = None  # when R next drops, as of the last scoring; None for never
    # The window as stored (None where none is: RFM_WINDOW_DAYS=0, every live order in the
    # window, or not computed yet); ``orders`` and ``spend_minor`` above are lifetime values.
    window_days: int | None = None
    window_orders: int | None = None
    window_spend: int | None = None

    def scored_window(self, window_days: int) -> tuple[int, int, int]:
        """(window days, orders, spend) that F and M were last scored on, with
        ``RFM_WINDOW_DAYS`` = ``window_days``. While the first purchase is in the window
        (so every live order is) the scripts score the lifetime values; else the stored
        window. A profile scored before windows existed, and not since, was scored on its
        whole history: window 0."""
        lifetime = (window_days, self.orders, self.spend_minor)
        if window_days == 0:
            return lifetime
        first, as_of = self.first_ms, self.as_of_ms
        if first is not None and as_of is not None and as_of - first < window_days * MS_PER_DAY:
            return lifetime  # as the scripts score it, whatever window may still be stored
        if self.window_days is not None:
            return self.window_days, self.window_orders or 0, self.window_spend or 0
        if first is None or as_of is None:
            return lifetime  # no live order, or not scored yet
        return 0, self.orders, self.spend_minor

    # The segment before this one and when this one was entered (the as_of of the change
    # that put the customer there); None where unknown (a profile from before the history)
    # or, for previous_segment, none.
    previous_segment: str | None = None
    segment_since_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ScoreWrite:
    """Scores for one customer, computed from the state at ``expected_version``."""

    customer_id: str
    expected_version: int
    partition: int  # outbox shard of the change event (the state's partition when read)
    scores: str  # "r,f,m,recency_days,as_of_ms", or "" once no order counts
    segment: str  # "" for none
    due_ms: int  # when R next drops; -1 for never
    change: bytes  # the segment-change event, b"" when the segment stays
    as_of_ms: int = 0  # the scoring's as_of: the segment's since when it changes


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def recency_days(last_ms: int, as_of_ms: int) -> int:
    """Whole days from the last purchase to ``as_of``; never negative.

    An event clock or a skewed producer can put the last purchase after ``as_of``; such a
    customer bought "today", not in the future.
    """
    return max(0, (as_of_ms - last_ms) // MS_PER_DAY)


def iso_utc(ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision, e.g. 2026-11-25T10:00:00.000Z."""
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def parse_instant(text: str) -> int:
    """Epoch ms from an RFC 3339 time with a zone (or a bare date, taken as UTC midnight)."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        if "T" in text or " " in text.strip():
            raise ValueError(f"time {text!r} has no zone; add Z or an offset like +01:00")
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)
