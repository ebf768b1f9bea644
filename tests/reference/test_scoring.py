"""Threshold and quintile scores, segment rules and settings, computed by hand."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from . import MS_PER_DAY, Config, ConfigError, expected, fold
from .records import record
from .rules import load_rules, segment_of
from .scoring import Quintiles, at_least_score, recency_score

NOW = 1_795_600_800_000  # 2026-11-25T10:00:00Z
DAY = MS_PER_DAY


@pytest.mark.parametrize(
    ("days", "r"),
    [(0, 5), (30, 5), (31, 4), (60, 4), (61, 3), (90, 3), (91, 2), (120, 2), (121, 1), (9999, 1)],
)
def test_recency_thresholds(days: int, r: int) -> None:
    assert recency_score(days, (30, 60, 90, 120)) == r


@pytest.mark.parametrize(
    ("orders", "f"), [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (6, 3), (7, 4), (9, 4), (10, 5)]
)
def test_frequency_thresholds(orders: int, f: int) -> None:
    assert at_least_score(orders, (2, 4, 7, 10)) == f


@pytest.mark.parametrize(
    ("spend", "m"),
    [(0, 1), (9999, 1), (10000, 2), (39999, 2), (40000, 3), (70000, 4), (99999, 4), (100000, 5)],
)
def test_monetary_thresholds(spend: int, m: int) -> None:
    assert at_least_score(spend, (10_000, 40_000, 70_000, 100_000)) == m


def test_threshold_boundaries_through_the_fold() -> None:
    """30 days -> R5, 31 -> R4; 9 orders -> F4, 10 -> F5; 999.99 -> M4, 1000.00 -> M5."""
    values = [
        record(customer_id="a", order_id=f"a{i}", occurred_at=NOW - 31 * DAY, amount="111.11")
        for i in range(9)
    ] + [
        record(customer_id="b", order_id=f"b{i}", occurred_at=NOW - 30 * DAY - 1, amount="100")
        for i in range(10)
    ]
    profiles = expected(fold(values, Config(), NOW), Config(), NOW)
    a, b = profiles["a"], profiles["b"]
    assert (a.recency_days, a.orders, a.spend_minor, a.r, a.f, a.m) == (31, 9, 99999, 4, 4, 4)
    assert (b.recency_days, b.orders, b.spend_minor, b.r, b.f, b.m) == (30, 10, 100000, 5, 5, 5)
    assert (a.segment, b.segment) == ("high_value", "high_value")


def test_a_purchase_after_as_of_is_zero_days_ago() -> None:
    history = fold([record(occurred_at=NOW + 60_000)], Config(), NOW)
    assert expected(history, Config(), NOW)["c1"].recency_days == 0


def test_configured_thresholds() -> None:
    config = Config.from_env(
        {"RFM_RECENCY_DAYS": "1,2,3,4", "RFM_FREQUENCY": "1,2,3,4", "RFM_MONETARY": "1,2,3,4.50"}
    )
    history = fold([record(occurred_at=NOW - 2 * DAY, amount="4.50")], config, NOW)
    profile = expected(history, config, NOW)["c1"]
    assert (profile.r, profile.f, profile.m) == (4, 2, 5)


# ------------------------------------------------------------------------------ quintiles


def test_quintiles_of_distinct_values() -> None:
    population = [(days, orders, spend) for days, orders, spend in zip(
        [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [10, 20, 30, 40, 50], strict=True
    )]  # fmt: skip
    quintiles = Quintiles(population)
    assert [quintiles.recency(d) for d in (1, 2, 3, 4, 5)] == [5, 4, 3, 2, 1]
    assert [quintiles.frequency(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 5]
    assert [quintiles.monetary(s) for s in (10, 20, 30, 40, 50)] == [1, 2, 3, 4, 5]


def test_a_big_tie_scores_where_it_starts() -> None:
    # Ten customers: seven with one order, then 2, 3 and 4 orders.
    orders = [1, 1, 1, 1, 1, 1, 1, 2, 3, 4]
    quintiles = Quintiles([(0, n, 0) for n in orders])
    # 1 + floor(5 * below / 10): below = 0, 7, 8, 9
    assert [quintiles.frequency(n) for n in (1, 2, 3, 4)] == [1, 4, 5, 5]
    # Everyone with the same recency and spend: nobody is worse, all score 1.
    assert (quintiles.recency(0), quintiles.monetary(0)) == (1, 1)


def test_quintile_recency_counts_customers_with_more_days() -> None:
    days = [0, 0, 0, 10, 10, 40]
    quintiles = Quintiles([(d, 1, 1) for d in days])
    # 1 + floor(5 * worse / 6): worse = 3 (0 days), 1 (10 days), 0 (40 days)
    assert [quintiles.recency(d) for d in (0, 10, 40)] == [3, 1, 1]


def test_quintiles_through_the_fold() -> None:
    config = Config.from_env({"RFM_SCORING": "quintiles"})
    values = [
        record(customer_id=f"c{i}", order_id=f"o{i}{j}", occurred_at=NOW - i * DAY, amount=i)
        for i in range(1, 6)
        for j in range(i)
    ]
    values.append(record(type="cancel", customer_id="c5", order_id="o50", occurred_at=NOW))
    values.append(record(customer_id="gone", order_id="g", occurred_at=NOW))
    values.append(record(type="cancel", customer_id="gone", order_id="g", occurred_at=NOW))
    profiles = expected(fold(values, config, NOW), config, NOW)
    # c5 keeps 4 orders of 5.00 = 20.00, like c4 (4 x 4.00 = 16.00 is less).
    scores = {cid: (p.r, p.f, p.m) for cid, p in profiles.items()}
    assert scores == {
        "c1": (5, 1, 1),
        "c2": (4, 2, 2),
        "c3": (3, 3, 3),
        "c4": (2, 4, 4),
        "c5": (1, 4, 5),
        "gone": (None, None, None),  # not part of the population
    }


# ------------------------------------------------------------------------------ segments


@pytest.mark.parametrize(
    ("scores", "segment"),
    [
        ((5, 5, 5), "high_value"),
        ((4, 4, 4), "high_value"),
        ((5, 5, 3), "general"),
        ((4, 2, 1), "new"),
        ((5, 1, 5), "new"),
        ((2, 4, 4), "at_risk"),
        ((1, 5, 5), "at_risk"),
        ((1, 2, 2), "lost"),
        ((1, 1, 1), "lost"),
        ((1, 1, 3), "dormant"),
        ((2, 1, 1), "dormant"),
        ((1, 5, 3), "dormant"),
        ((3, 3, 3), "general"),
        ((3, 5, 5), "general"),
    ],
)
def test_default_preset(scores: tuple[int, int, int], segment: str) -> None:
    assert segment_of(load_rules("default"), *scores) == segment


@pytest.mark.parametrize(
    ("scores", "segment"),
    [
        ((5, 4, 1), "champions"),
        ((5, 5, 5), "champions"),
        ((3, 5, 5), "loyal"),
        ((4, 4, 1), "loyal"),
        ((4, 2, 1), "potential_loyalist"),
        ((5, 3, 5), "potential_loyalist"),
        ((5, 1, 5), "new"),
        ((4, 1, 1), "promising"),
        ((3, 3, 1), "need_attention"),
        ((3, 2, 5), "about_to_sleep"),
        ((3, 1, 1), "about_to_sleep"),
        ((2, 5, 1), "cannot_lose"),
        ((1, 3, 1), "at_risk"),
        ((2, 4, 5), "at_risk"),
        ((1, 1, 5), "hibernating"),
        ((2, 2, 2), "hibernating"),
    ],
)
def test_classic_preset(scores: tuple[int, int, int], segment: str) -> None:
    assert segment_of(load_rules("classic"), *scores) == segment


def test_both_presets_cover_every_score() -> None:
    for preset in ("default", "classic"):
        rules = load_rules(preset)
        for r in range(1, 6):
            for f in range(1, 6):
                for m in range(1, 6):
                    assert segment_of(rules, r, f, m)


def test_a_rule_file_first_match_wins(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[segment]]\nname = "top"\nm = [5, 5]\n\n'
        '[[segment]]\nname = "recent"\nr = [4, 5]\nm = [4, 5]\n\n'
        '[[segment]]\nname = "rest"\n'
    )
    rules = load_rules(str(path))
    assert [segment_of(rules, *s) for s in ((1, 1, 5), (5, 1, 5), (5, 1, 4), (3, 3, 4))] == [
        "top",
        "top",
        "recent",
        "rest",
    ]
    config = Config.from_env({"RFM_SEGMENTS": str(path)})
    history = fold([record(amount="1000")], config, NOW)
    assert expected(history, config, NOW)["c1"].segment == "top"


# ------------------------------------------------------------------------------ settings


def test_defaults_follow_the_readme() -> None:
    config = Config.from_env({})
    assert config == Config()
    assert (config.currency, config.rates, config.scoring, config.segments, config.clock) == (
        "USD",
        {},
        "thresholds",
        "default",
        "wall",
    )
    assert config.recency_days == (30, 60, 90, 120)
    assert config.frequency == (2, 4, 7, 10)
    assert config.monetary_minor == (10_000, 40_000, 70_000, 100_000)
    assert (config.max_future_skew_ms, config.window_days, config.retention_days) == (
        300_000,
        365,
        395,
    )


def test_settings_from_the_environment() -> None:
    config = Config.from_env(
        {
            "RFM_CURRENCY": "KWD",
            "RFM_CURRENCY_RATES": " EUR = 0.33 , USD=0.307",
            "RFM_SCORING": "quintiles",
            "RFM_SEGMENTS": "classic",
            "RFM_CLOCK": "event",
            "RFM_MONETARY": "1,2.5,3.125,4",
            "RFM_MAX_FUTURE_SKEW": "2.5",
            "RFM_WINDOW_DAYS": "90",
            "RFM_ORDER_RETENTION_DAYS": "100",
            "RFM_KAFKA_BOOTSTRAP": "ignored:9092",
        }
    )
    assert config.rates == {"EUR": Fraction("0.33"), "USD": Fraction("0.307")}
    assert config.monetary_minor == (1000, 2500, 3125, 4000)
    assert (config.scoring, config.segments, config.clock) == ("quintiles", "classic", "event")
    assert (config.max_future_skew_ms, config.window_days, config.retention_days) == (
        2500,
        90,
        100,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RFM_CURRENCY", "usd"),
        ("RFM_CURRENCY_RATES", "EUR"),
        ("RFM_CURRENCY_RATES", "EUR=0"),
        ("RFM_CURRENCY_RATES", "USD=1"),  # the base currency
        ("RFM_CURRENCY_RATES", "EUR=1,EUR=2"),
        ("RFM_SCORING", "ranks"),
        ("RFM_CLOCK", "local"),
        ("RFM_RECENCY_DAYS", "30,60,90"),
        ("RFM_FREQUENCY", "2,2,7,10"),
        ("RFM_MONETARY", "100,400,700,1000.001"),
        ("RFM_MAX_FUTURE_SKEW", "-1"),
        ("RFM_WINDOW_DAYS", "-1"),
        ("RFM_ORDER_RETENTION_DAYS", "1.5"),
    ],
)
def test_a_wrong_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})
