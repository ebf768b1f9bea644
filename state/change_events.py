"""A segment-change event in its two forms: the record queued in the outbox with the segment
change, and the JSON the relay publishes to Kafka.

Why two forms: the record is queued in the same Redis step that changes the segment (so a
crash cannot keep one without the other), and building the JSON there (a uuid5 by SHA-1,
JSON escaping, money formatting) cost a Lua script ~31,000 instructions of Redis's single
thread per change, counted with callgrind: a third of a due pass, and time every other
Redis client waits. The record holds only numbers and names; the relay renders the JSON in
Python, outside Redis, just before it publishes it. Its numbers are in base 36, as the
packed profile holds them (state/lua/profile.lua), so that a script copies them from the
profile's text instead of converting each (decimal text cost ~6,600 more instructions a
change). Every route queues this same record:
``change_record`` here and ``rescore_in_redis.lua`` (tests/integration/test_rescore_in_redis.py
compares them byte for byte); tests/unit/test_change_events.py checks the rendering.

The outbox entry is ``t=chg, k=<customer id>, v=<record>`` (the id is the Kafka record's
key too); the record is ASCII, comma-separated (segment names match ``[a-z][a-z0-9_]*``,
currency codes are three letters; ``''`` for none):
``seq,previous,segment,scores,orders,spend_minor,exponent,currency,as_of_ms,cause,``
``lifetime_orders,lifetime_spend_minor,window_days,since,first,last,profile_previous``
where seq and the order counts and spends are base 36 (a leading ``-`` when negative),
orders and spend_minor are the window's (what F and M were scored on), scores is the
three digits r, f, m followed by the recency days in base 36 (``''`` without scores), and
exponent, as_of_ms and window_days are decimal. ``since`` is when the customer entered the
segment: ``''`` for a change (it entered it at as_of), base 36 for an announcement of the
segment it is in, ``?`` for an announcement whose since is unknown (a profile from before
the history). Records of the ten first fields only were queued by versions before windows:
their values are whole histories (window_days 0); records of thirteen by versions before
the history (since as ``''``). ``first`` and ``last`` are the customer's first purchase
(epoch ms) and last purchase minus first, base 36 as in the profile (``''`` for none), and
``profile_previous`` the segment before the one an announcement repeats (``''`` for a
change, whose previous segment is ``previous``): with them the relay renders the customer's
profile as of the change for the snapshot topic (``render_snapshot``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from functools import lru_cache

import orjson

from state.model import Scores, iso_utc
from state.money import format_minor

SCHEMA_VERSION = 2
# Namespace for segment-change event ids: uuid5(namespace, customer id + change number).
EVENT_NAMESPACE = uuid.UUID("5b0c4f57-3d3e-4f8e-9a3e-2f6f1f0d7a11")
_NAMESPACE = EVENT_NAMESPACE.bytes
RECORD_KIND = b"chg"  # outbox entry type of a change record
JSON_KIND = b"seg"  # outbox entry type of a rendered event (queued by earlier versions)
_FIELDS = 17
_FIELDS_BEFORE_HISTORY = 13
_FIELDS_BEFORE_WINDOWS = 10
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class ChangeRecordError(ValueError):
    """An outbox record this version cannot render: a bug or a foreign writer, never input."""


def event_id(customer_id: str, seq: int, previous: str | None, segment: str | None) -> str:
    """Deterministic: the n-th change of a customer, from and to the same segments, always
    has the same id, so a repeat is recognised. The segments are part of it because after a
    Redis restart that lost its last second (AOF everysec) the n-th change can be recomputed
    differently; it must then not be mistaken for the one already published."""
    key = f"{customer_id}\x1f{seq}\x1f{previous or ''}\x1f{segment or ''}"
    # uuid.uuid5 spelled out: the relay renders every change, and building a UUID object
    # took a third of rendering one (tests/unit/test_change_events.py checks they agree).
    digest = bytearray(hashlib.sha1(_NAMESPACE + key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def change_record(
    seq: int,
    previous: str | None,
    segment: str | None,
    scores: Scores | None,
    orders: int,
    spend_minor: int,
    exponent: int,
    currency: str,
    as_of_ms: int,
    cause: str,
    lifetime_orders: int,
    lifetime_spend_minor: int,
    window_days: int,
    since: int | str | None = None,
    first_ms: int | None = None,
    last_ms: int | None = None,
    profile_previous: str | None = None,
) -> bytes:
    """``seq`` is the change's own number (the customer's previous one + 1); ``orders`` and
    ``spend_minor`` the window's; ``since`` when the segment was entered, None for a change
    (as_of), ``"?"`` for an announcement whose since is unknown; ``first_ms`` and
    ``last_ms`` the customer's purchases, ``profile_previous`` the stored previous segment
    (announcements only)."""
    since_text = "" if since is None else since if isinstance(since, str) else base36(since)
    first = "" if first_ms is None else base36(first_ms)
    last = "" if first_ms is None or last_ms is None else base36(last_ms - first_ms)
    rfm = f"{scores.r}{scores.f}{scores.m}{base36(scores.recency_days)}" if scores else ""
    return (
        f"{base36(seq)},{previous or ''},{segment or ''},{rfm},{base36(orders)},"
        f"{base36(spend_minor)},{exponent},{currency},{as_of_ms},{cause},"
        f"{base36(lifetime_orders)},{base36(lifetime_spend_minor)},{window_days},{since_text},"
        f"{first},{last},{profile_previous or ''}"
    ).encode("ascii")


def base36(n: int) -> str:
    """As the scripts' ``enc``: lowercase digits, a leading '-' when negative."""
    if n < 0:
        return "-" + base36(-n)
    digits = ""
    while True:
        n, d = divmod(n, 36)
        digits = _DIGITS[d] + digits
        if n == 0:
            return digits


def render(customer_id: bytes, record: bytes) -> bytes:
    """The published event: orjson's compact JSON, fields in this order."""
    c = _parse(customer_id, record)
    try:
        return orjson.dumps(
            {
                "event_id": event_id(c.cid, c.seq, c.previous, c.segment),
                "customer_id": c.cid,
                "previous_segment": c.previous,
                "segment": c.segment,
                "r": c.r,
                "f": c.f,
                "m": c.m,
                "recency_days": c.days,
                "orders": c.orders,
                "spend": format_minor(c.spend, c.exponent),
                "lifetime_orders": c.lifetime_orders,
                "lifetime_spend": format_minor(c.lifetime_spend, c.exponent),
                "window_days": c.window_days,
                "currency": c.currency,
                "as_of": _iso(c.as_of),
                "segment_since": _since(c.since, c.as_of),
                "cause": c.cause,
                "sequence": c.seq,
                "schema_version": SCHEMA_VERSION,
            }
        )
    except ValueError as e:
        raise ChangeRecordError(f"change record of {customer_id!r} is malformed: {e}") from e


def render_snapshot(customer_id: bytes, record: bytes) -> bytes | None:
    """The customer's profile as of this change, for the snapshot topic (compacted, key =
    customer id): the fields of ``rfm-stream export`` in its order, then ``sequence`` (the
    change it is as of, to join the change topic). None (a tombstone) for an erasure."""
    c = _parse(customer_id, record)
    if c.cause == "erased":
        return None
    previous = c.previous if c.previous != c.segment else c.profile_previous
    try:
        return orjson.dumps(
            {
                "customer_id": c.cid,
                "first_purchase_at": None if c.first is None else _iso(c.first),
                "last_purchase_at": None if c.last is None else _iso(c.last),
                "orders": c.orders,
                "spend": format_minor(c.spend, c.exponent),
                "lifetime_orders": c.lifetime_orders,
                "lifetime_spend": format_minor(c.lifetime_spend, c.exponent),
                "window_days": c.window_days,
                "currency": c.currency,
                "recency_days": c.days,
                "r": c.r,
                "f": c.f,
                "m": c.m,
                "segment": c.segment,
                "previous_segment": previous,
                "segment_since": _since(c.since, c.as_of),
                "as_of": None if c.r is None else _iso(c.as_of),
                "sequence": c.seq,
            }
        )
    except ValueError as e:
        raise ChangeRecordError(f"change record of {customer_id!r} is malformed: {e}") from e


@dataclass(frozen=True, slots=True)
class _Change:
    cid: str
    seq: int
    previous: str | None
    segment: str | None
    r: int | None
    f: int | None
    m: int | None
    days: int | None
    orders: int
    spend: int
    exponent: int
    currency: str
    as_of: int
    cause: str
    lifetime_orders: int
    lifetime_spend: int
    window_days: int
    since: str
    first: int | None
    last: int | None
    profile_previous: str | None


def _parse(customer_id: bytes, record: bytes) -> _Change:
    commas = record.count(b",")
    if commas not in (_FIELDS - 1, _FIELDS_BEFORE_HISTORY - 1, _FIELDS_BEFORE_WINDOWS - 1):
        raise ChangeRecordError(f"change record of {customer_id!r} has not {_FIELDS} fields")
    try:
        parts = record.decode("ascii").split(",")
        if len(parts) == _FIELDS_BEFORE_WINDOWS:
            parts += [parts[4], parts[5], "0"]
        if len(parts) == _FIELDS_BEFORE_HISTORY:
            parts += ["", "", "", ""]
        seq_, prev, seg, scores, orders, spend, exponent, currency, as_of, cause = parts[:10]
        lifetime_orders, lifetime_spend, window_days, since, first_, last_, pprev = parts[10:]
        r, f, m, days = (
            (int(scores[0]), int(scores[1]), int(scores[2]), int(scores[3:], 36))
            if scores
            else (None, None, None, None)
        )
        first = int(first_, 36) if first_ else None
        last = first + int(last_, 36) if first is not None and last_ else None
        if since not in ("", "?"):
            int(since, 36)  # malformed: refused here, not half-way through a render
        return _Change(
            customer_id.decode("utf-8"),
            int(seq_, 36),
            prev or None,
            seg or None,
            r,
            f,
            m,
            days,
            int(orders, 36),
            int(spend, 36),
            int(exponent),
            currency,
            int(as_of),
            cause,
            int(lifetime_orders, 36),
            int(lifetime_spend, 36),
            int(window_days),
            since,
            first,
            last,
            pprev or None,
        )
    except (ValueError, IndexError) as e:  # UnicodeDecodeError included
        raise ChangeRecordError(f"change record of {customer_id!r} is malformed: {e}") from e


def _since(text: str, as_of: int) -> str | None:
    """When the segment was entered: the change's as_of, or what an announcement says."""
    if text == "":
        return _iso(as_of)
    if text == "?":
        return None
    return _iso(int(text, 36))


@lru_cache(maxsize=256)
def _iso(ms: int) -> str:
    """A pass gives every change it makes one as-of: formatted once, not once per event."""
    return iso_utc(ms)
