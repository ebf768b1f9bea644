"""The independent oracle (tests/reference) against the product's pure code.

On generated streams of order events (purchases, refunds, cancels, duplicates, bad records,
several currencies) the oracle must agree with ``stream.validation.parse_order`` event by
event, with the production parser's events folded as the apply script folds them
(``product_fold`` below, the product side of this comparison) on outcomes, event clock and
lifetime figures, and
with ``ThresholdScorer`` / ``QuintileBoundaries`` and ``load_segment_rules`` on scores and
segments. The window is 0 (the whole history): the product has no window yet.

Inputs on which the two differ on purpose are not generated here; each is pinned by
``test_known_disagreement`` below, with what the README says.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.model import OrderEvent, Rejection
from state.scoring import QuintileBoundaries, QuintileScorer, Scorer, ThresholdScorer
from state.segments import load_segment_rules
from stream.settings import Settings, load_settings
from stream.validation import ValidationRules, parse_order
from tests.reference import Config, DeadLetter, Event, expected, fold, parse_event
from tests.reference.records import record

NOW = 1_795_600_800_000  # 2026-11-25T10:00:00Z
DAY = 86_400_000

ENVS: tuple[dict[str, str], ...] = (
    {"RFM_CURRENCY_RATES": "EUR=1.08,GBP=1.5,JPY=0.0067,KWD=3.25"},
    {"RFM_CURRENCY": "JPY", "RFM_CURRENCY_RATES": "USD=150.5,EUR=161.27"},
    {
        "RFM_CURRENCY": "KWD",
        "RFM_CURRENCY_RATES": "USD=0.307,CLF=38.5,EUR=0.331",
        "RFM_MONETARY": "1,2,3,4",
    },
    {
        "RFM_CURRENCY_RATES": "EUR=1.08",
        "RFM_MAX_FUTURE_SKEW": "2.5",
        "RFM_FREQUENCY": "1,2,3,4",
        "RFM_RECENCY_DAYS": "1,2,3,4",
    },
)
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "KWD", "CLF", "XYZ")
CUSTOMERS = ("c1", "c 2", "ü3")
ORDERS = ("o1", "o2", "o3")


def production(env: Mapping[str, str]) -> tuple[Settings, ValidationRules]:
    settings_ = load_settings(env)
    rules = ValidationRules(
        currencies=settings_.scoring.currencies,
        max_future_skew_ms=round(settings_.scoring.max_future_skew * 1000),
    )
    return settings_, rules


# ------------------------------------------------------------------------------ events


def rfc3339(ms: int, offset_minutes: int, digits: int, separator: str, zulu: str) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    local = moment.astimezone(zone)
    text = local.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}{ms % 7}{ms % 3}{ms % 5}"[:digits]
    if offset_minutes == 0 and zulu:
        return text + zulu
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


occurred_ms = st.one_of(
    st.integers(NOW - 400 * DAY, NOW),
    st.integers(NOW - 2 * DAY, NOW + 400_000),  # near now and the future skew
    st.sampled_from([1, NOW - 30 * DAY, NOW - 31 * DAY, NOW + 2500, NOW + 2501]),
)


@st.composite
def occurred_at(draw: st.DrawFn) -> object:
    ms = draw(occurred_ms)
    if draw(st.booleans()):
        return ms
    return rfc3339(
        ms,
        draw(st.sampled_from([0, 0, 60, -300, 330, 23 * 60 + 59, -(23 * 60 + 59)])),
        draw(st.sampled_from([0, 0, 1, 3, 6, 9])),
        draw(st.sampled_from(["T", "t", " "])),
        draw(st.sampled_from(["Z", "z", ""])),
    )


@st.composite
def decimal_text(draw: st.DrawFn) -> str:
    whole = draw(st.one_of(st.integers(0, 2000), st.integers(0, 10**10)))
    places = draw(st.sampled_from([0, 1, 2, 2, 2, 2, 3, 4, 5]))
    fraction = draw(st.integers(0, 10**places - 1)) if places else 0
    text = f"{whole}.{fraction:0{places}d}" if places else str(whole)
    style = draw(st.sampled_from(["plain"] * 6 + ["exp", "lead", "trail", "neg"]))
    if style == "exp":
        return f"{whole}{fraction:0{places}d}e-{places}" if places else f"{whole}E0"
    if style == "lead":
        return "00" + text
    if style == "trail":
        return text + ("0" if "." in text else ".")
    if style == "neg":
        return "-" + text
    return text


tame_amounts = st.one_of(
    st.integers(0, 3000),
    st.integers(0, 300_000).map(lambda cents: f"{cents // 100}.{cents % 100:02d}"),
    st.floats(0, 3000, allow_nan=False).map(lambda x: round(x, 2)),
)
wild_amounts = st.one_of(
    decimal_text(),
    decimal_text(),
    st.integers(-5, 3000),
    st.floats(0, 3000, allow_nan=False).map(lambda x: round(x, 2)),
    st.floats(-1e3, 1e12, allow_nan=False),
    st.sampled_from(["1000000000", "1000000000.00", "1000000000.01", "0", "-0", ".5", "5."]),
)

# Values that are wrong somewhere: each replaces one field of an otherwise valid event.
BAD_VALUES: tuple[object, ...] = (
    None,
    "",
    " ",
    "\u3000",
    "x" * 257,
    "a\nb",
    "a\x85b",
    5,
    1.5,
    True,
    [],
    {},
    "abc",
    "1,00",
    "NaN",
    "Infinity",
    "1.23456",
    "+1",
    "1e",
    "-1",
    "1e12",
    "usd",
    "XYZ",
    "bogus",
    "refund",
    "2026-13-01T00:00:00Z",
    "2026-11-25T10:00:00",
    "2026-11-25",
    0,
    -1,
    253_402_300_800_000,
)
FIELDS = ("type", "order_id", "customer_id", "amount", "currency", "occurred_at", "refund_id")
GARBAGE = st.one_of(
    st.none(),
    st.sampled_from([b"", b"{", b"[]", b"null", b"1", b'"x"', b"{}", b'{"amount": NaN}']),
    st.binary(max_size=20),
)


@st.composite
def record_value(draw: st.DrawFn) -> bytes | None:
    """Mostly valid events over a few customers and order ids; one in four gets a wild
    amount or currency, one in six a bad value in some field, one in twenty is garbage."""
    if draw(st.integers(0, 19)) == 0:
        return draw(GARBAGE)
    wild = draw(st.integers(0, 3)) == 0
    kind = draw(st.sampled_from([None, "purchase", "purchase", "refund", "refund", "cancel"]))
    document: dict[str, object] = {
        "customer_id": draw(st.sampled_from(CUSTOMERS)),
        "order_id": draw(st.sampled_from(ORDERS)),
        "occurred_at": draw(occurred_at()),
    }
    if kind is not None:
        document["type"] = kind
    if kind != "cancel" or draw(st.booleans()):
        document["amount"] = draw(wild_amounts if wild else tame_amounts)
        choices = (None, *CURRENCIES) if wild else (None, None, None, "EUR")
        currency = draw(st.sampled_from(choices))
        if currency is not None:
            document["currency"] = currency
    if kind == "refund" and draw(st.booleans()):
        document["refund_id"] = draw(st.sampled_from(["r1", "r2"]))
    if draw(st.integers(0, 5)) == 0:
        document[draw(st.sampled_from(FIELDS))] = draw(st.sampled_from(BAD_VALUES))
    return json.dumps(document).encode()


streams = st.lists(record_value(), min_size=5, max_size=40)


def same_event(ours: Event | DeadLetter, theirs: OrderEvent | Rejection) -> bool:
    if isinstance(ours, DeadLetter) or isinstance(theirs, Rejection):
        return (
            isinstance(ours, DeadLetter)
            and isinstance(theirs, Rejection)
            and ours.reason == theirs.reason
        )
    return (ours.kind, ours.order_id, ours.customer_id, ours.amount_minor, ours.occurred_ms) == (
        theirs.kind,
        theirs.order_id,
        theirs.customer_id,
        theirs.amount_minor,
        theirs.occurred_ms,
    ) and ours.refund_id == theirs.refund_id


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=st.sampled_from(ENVS), raw=record_value())
def test_each_event_is_read_alike(env: dict[str, str], raw: bytes | None) -> None:
    _, rules = production(env)
    ours, theirs = parse_event(raw, Config.from_env(env), NOW), parse_order(raw, rules, NOW)
    assert same_event(ours, theirs), (raw, ours, theirs)


# ------------------------------------------------------------------------------ streams


@dataclass
class _Order:
    ts: int
    amount: int
    refunded: int = 0
    cancelled: bool = False
    refunds: set[str] = field(default_factory=set)


@dataclass
class _Customer:
    orders: dict[str, _Order] = field(default_factory=dict)

    @property
    def active(self) -> list[_Order]:
        return [o for o in self.orders.values() if not o.cancelled]

    @property
    def count(self) -> int:
        return len(self.active)

    @property
    def spend(self) -> int:
        return sum(o.amount - o.refunded for o in self.active)

    @property
    def first(self) -> int | None:
        return min((o.ts for o in self.active), default=None)

    @property
    def last(self) -> int | None:
        return max((o.ts for o in self.active), default=None)


@dataclass
class _Folded:
    customers: dict[str, _Customer]
    outcomes: Counter[str]
    clock_ms: int


def product_fold(values: list[bytes | None], rules: ValidationRules, now_ms: int) -> _Folded:
    """``parse_order``'s events applied in publish order as state/lua/apply_orders.lua does
    (duplicates by order id, refunds by refund id or time and amount, cancels)."""
    customers: dict[str, _Customer] = {}
    outcomes: Counter[str] = Counter()
    clock = 0
    for raw in values:
        event = parse_order(raw, rules, now_ms)
        if isinstance(event, Rejection):
            outcomes[f"dlq:{event.reason}"] += 1
            continue
        outcome = _product_apply(customers.setdefault(event.customer_id, _Customer()), event)
        if outcome.startswith("dlq:") and not customers[event.customer_id].orders:
            del customers[event.customer_id]
        if outcome == "applied":
            clock = max(clock, event.occurred_ms)
        outcomes[outcome] += 1
    return _Folded(customers, outcomes, clock)


def _product_apply(c: _Customer, e: OrderEvent) -> str:
    order = c.orders.get(e.order_id)
    if e.kind == "purchase":
        if order is not None:
            return "duplicate"
        c.orders[e.order_id] = _Order(e.occurred_ms, e.amount_minor)
        return "applied"
    if order is None:
        return "dlq:unknown_order"
    if e.kind == "cancel":
        if order.cancelled:
            return "duplicate"
        order.cancelled = True
        return "applied"
    if order.cancelled:
        return "dlq:order_cancelled"
    refund_key = e.refund_id or f"{e.occurred_ms}:{e.amount_minor}"
    if refund_key in order.refunds:
        return "duplicate"
    order.refunds.add(refund_key)
    order.refunded += min(e.amount_minor, order.amount - order.refunded)
    return "applied"


def scorer_for(settings_: Settings, population: list[tuple[int, int, int]]) -> Scorer:
    if settings_.scoring.mode == "thresholds":
        return ThresholdScorer(settings_.scoring.thresholds)
    days, orders, spend = zip(*population, strict=True)
    return QuintileScorer(QuintileBoundaries.from_population(days, orders, spend))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    env=st.sampled_from(ENVS),
    scoring=st.sampled_from(["thresholds", "quintiles"]),
    segments=st.sampled_from(["default", "classic"]),
    values=streams,
    as_of_delta=st.integers(-DAY, 200 * DAY),
)
def test_streams_fold_and_score_alike(
    env: dict[str, str], scoring: str, segments: str, values: list[bytes | None], as_of_delta: int
) -> None:
    # Whole histories: this fold of the product's rules has no window or retention (those
    # are checked end to end: tests/integration/test_windows.py).
    env = {**env, "RFM_SCORING": scoring, "RFM_SEGMENTS": segments, "RFM_WINDOW_DAYS": "0"}
    settings_, rules = production(env)
    config = Config.from_env(env)
    as_of = NOW + as_of_delta

    ours = fold(values, config, NOW)
    theirs = product_fold(values, rules, NOW)
    assert ours.outcomes == theirs.outcomes
    assert ours.clock_ms == theirs.clock_ms
    assert set(ours.customers) == set(theirs.customers)

    profiles = expected(ours, config, as_of)
    live = {cid: c for cid, c in theirs.customers.items() if c.count > 0}
    population = [
        (max(0, (as_of - c.last) // DAY), c.count, c.spend)
        for c in live.values()
        if c.last is not None
    ]
    scorer = scorer_for(settings_, population) if population else None
    segment_rules = load_segment_rules(settings_.scoring.segments)
    for cid, customer in theirs.customers.items():
        profile = profiles[cid]
        lifetime = (customer.first, customer.last, customer.count, customer.spend)
        assert (profile.first_ms, profile.last_ms, profile.lifetime_orders) == lifetime[:3]
        assert profile.lifetime_spend_minor == customer.spend
        assert (profile.orders, profile.spend_minor) == (customer.count, customer.spend)
        if cid not in live or customer.last is None:
            assert (profile.r, profile.f, profile.m, profile.segment) == (None,) * 4
            continue
        assert scorer is not None
        scores = scorer.score(customer.last, customer.count, customer.spend, as_of)
        assert (profile.r, profile.f, profile.m, profile.recency_days) == (
            scores.r,
            scores.f,
            scores.m,
            scores.recency_days,
        )
        assert profile.segment == segment_rules.segment_for(scores.r, scores.f, scores.m)


# ------------------------------------------------------------------------------ edges

# Inputs on which the product once differed from the README (fixed since), and the
# README's outcome for each: a reason, or "accepted". Both must give it.
EDGES: list[tuple[str, bytes, str]] = [
    # "occurred_at: RFC 3339 with a zone": not the other ISO 8601 forms.
    ("no seconds", record(occurred_at="2026-11-25T10:00Z"), "invalid_timestamp"),
    ("hour only", record(occurred_at="2026-11-25T10Z"), "invalid_timestamp"),
    ("basic time", record(occurred_at="2026-11-25T100000Z"), "invalid_timestamp"),
    ("offset without colon", record(occurred_at="2026-11-25T10:00:00+0100"), "invalid_timestamp"),
    ("offset in hours", record(occurred_at="2026-11-25T10:00:00+01"), "invalid_timestamp"),
    ("offset seconds", record(occurred_at="2026-11-25T10:00:00+01:00:30"), "invalid_timestamp"),
    ("comma fraction", record(occurred_at="2026-11-25T10:00:00,5Z"), "invalid_timestamp"),
    ("empty fraction", record(occurred_at="2026-11-25T10:00:00.Z"), "invalid_timestamp"),
    ("space before Z", record(occurred_at="2026-11-25T10:00:00 Z"), "invalid_timestamp"),
    ("space before offset", record(occurred_at="2026-11-25T10:00:00 +01:00"), "invalid_timestamp"),
    ("comma, no fraction", record(occurred_at="2026-11-25T10:00:00,-05"), "invalid_timestamp"),
    ("lower case and space", record(occurred_at="2026-11-25 10:00:00.5z"), "accepted"),
    # An integer beyond 64 bits is read as a double: not an integer any more.
    ("integer 2**64", record(occurred_at=2**64), "invalid_field"),
    ("integer -2**63-1", record(occurred_at=-(2**63) - 1), "invalid_field"),
    # An amount with an exponent of a million or more is judged by its sign and coefficient.
    ("huge exponent", record(amount="1e1000000000000000000"), "amount_too_large"),
    ("huge exponent, negative", record(amount="-1e1000000000000000000"), "negative_amount"),
    ("huge exponent of zero", record(amount="0e1000000000000000000"), "accepted"),
    ("huge negative exponent", record(amount="1e-1000000000000000000"), "invalid_amount"),
]


@pytest.mark.parametrize(("why", "raw", "readme"), EDGES)
def test_edges_follow_the_readme(why: str, raw: bytes, readme: str) -> None:
    ours = parse_event(raw, Config.from_env(ENVS[0]), NOW)
    outcome = ours.reason if isinstance(ours, DeadLetter) else "accepted"
    assert outcome == readme, why
    _, rules = production(ENVS[0])
    assert same_event(ours, parse_order(raw, rules, NOW)), why


def test_a_fractional_future_skew_is_exact() -> None:
    env = {"RFM_MAX_FUTURE_SKEW": "1.001"}
    assert Config.from_env(env).max_future_skew_ms == 1001
    _, rules = production(env)
    assert rules.max_future_skew_ms == 1001
