"""Segment rules: both presets, table == first-match semantics, and every rejection path."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.segments import (
    PRESETS,
    SegmentRule,
    SegmentRules,
    SegmentRulesError,
    load_segment_rules,
)

ALL_SCORES = list(itertools.product(range(1, 6), repeat=3))


def _first_match(rules: SegmentRules, r: int, f: int, m: int) -> str:
    return next(rule.name for rule in rules.rules if rule.matches(r, f, m))


@pytest.mark.parametrize(
    ("scores", "segment"),
    [
        ((5, 5, 5), "high_value"),
        ((4, 4, 4), "high_value"),
        ((5, 1, 1), "new"),
        ((4, 2, 5), "new"),
        ((1, 5, 5), "at_risk"),
        ((2, 4, 4), "at_risk"),
        ((1, 1, 1), "lost"),
        ((1, 2, 2), "lost"),
        ((2, 3, 3), "dormant"),
        ((1, 1, 3), "dormant"),
        ((2, 5, 3), "dormant"),
        ((3, 3, 3), "general"),
        ((5, 5, 3), "general"),
        ((3, 1, 1), "general"),
    ],
)
def test_default_preset(scores: tuple[int, int, int], segment: str) -> None:
    assert load_segment_rules("default").segment_for(*scores) == segment


@pytest.mark.parametrize(
    ("scores", "segment"),
    [
        ((5, 5, 1), "champions"),
        ((5, 4, 5), "champions"),
        ((4, 5, 3), "loyal"),
        ((3, 4, 1), "loyal"),
        ((5, 2, 2), "potential_loyalist"),
        ((4, 3, 5), "potential_loyalist"),
        ((5, 1, 5), "new"),
        ((4, 1, 1), "promising"),
        ((3, 3, 3), "need_attention"),
        ((3, 1, 4), "about_to_sleep"),
        ((3, 2, 2), "about_to_sleep"),
        ((1, 5, 5), "cannot_lose"),
        ((2, 5, 1), "cannot_lose"),
        ((2, 3, 2), "at_risk"),
        ((1, 4, 5), "at_risk"),
        ((1, 1, 1), "hibernating"),
        ((2, 2, 5), "hibernating"),
    ],
)
def test_classic_preset(scores: tuple[int, int, int], segment: str) -> None:
    assert load_segment_rules("classic").segment_for(*scores) == segment


def test_preset_names_in_rule_order() -> None:
    assert load_segment_rules("default").names == (
        "high_value",
        "new",
        "at_risk",
        "lost",
        "dormant",
        "general",
    )
    classic = load_segment_rules("classic")
    assert len(classic.names) == 10
    assert {classic.segment_for(*s) for s in ALL_SCORES} == set(classic.names)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_table_equals_first_match(preset: str) -> None:
    rules = load_segment_rules(preset)
    for scores in ALL_SCORES:
        assert rules.segment_for(*scores) == _first_match(rules, *scores)


score_range = st.tuples(st.integers(1, 5), st.integers(1, 5)).map(lambda p: (min(p), max(p)))
rule_lists = st.lists(st.tuples(score_range, score_range, score_range), min_size=0, max_size=8).map(
    lambda ranges: (
        [SegmentRule(f"s{i}", r, f, m) for i, (r, f, m) in enumerate(ranges)]
        + [SegmentRule("rest")]
    )
)


@given(rule_lists)
def test_table_equals_first_match_for_any_valid_rules(rules: list[SegmentRule]) -> None:
    try:
        compiled = SegmentRules(rules)
    except SegmentRulesError as exc:
        assert "can never match" in str(exc)  # the catch-all guarantees coverage
        return
    for scores in ALL_SCORES:
        assert compiled.segment_for(*scores) == _first_match(compiled, *scores)


def test_load_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[segment]]\nname = "vip"\nm = [5, 5]\n\n[[segment]]\nname = "everyone"\n',
        encoding="utf-8",
    )
    rules = load_segment_rules(str(path))
    assert rules.names == ("vip", "everyone")
    assert rules.segment_for(1, 1, 5) == "vip"
    assert rules.segment_for(5, 5, 4) == "everyone"


def test_uncovered_combination_is_named() -> None:
    rules = [
        SegmentRule("a", r=(1, 2)),
        SegmentRule("b", r=(3, 3), f=(2, 5)),
        SegmentRule("c", r=(3, 3), f=(1, 1), m=(1, 1)),
        SegmentRule("d", r=(4, 5)),
    ]
    with pytest.raises(SegmentRulesError, match="leave r=3 f=1 m=2 unmatched"):
        SegmentRules(rules)


def test_shadowed_rule_is_named() -> None:
    rules = [SegmentRule("wide", r=(3, 5)), SegmentRule("narrow", r=(4, 4)), SegmentRule("rest")]
    with pytest.raises(SegmentRulesError, match="'narrow' can never match"):
        SegmentRules(rules)
    with pytest.raises(SegmentRulesError, match="'late' can never match"):
        SegmentRules([SegmentRule("all"), SegmentRule("late", m=(5, 5))])


def test_duplicate_name() -> None:
    with pytest.raises(SegmentRulesError, match="'x' is used by more than one rule"):
        SegmentRules([SegmentRule("x", r=(1, 2)), SegmentRule("x")])


def test_no_rules() -> None:
    with pytest.raises(SegmentRulesError, match="at least one rule"):
        SegmentRules([])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"r": (0, 5)},
        {"f": (1, 6)},
        {"m": (4, 3)},
        {"r": (1, 2, 3)},
        {"f": [1, 5]},
        {"m": (True, 5)},
    ],
)
def test_bad_range(kwargs: dict[str, object]) -> None:
    with pytest.raises(SegmentRulesError, match="segment rule 'x'"):
        SegmentRule("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "High", "1st", "with-dash", "a" * 41, "ok\n", " ok"])
def test_bad_name(name: str) -> None:
    with pytest.raises(SegmentRulesError, match="must match"):
        SegmentRule(name)


def test_longest_allowed_name() -> None:
    assert SegmentRule("a" * 40).name == "a" * 40


def test_segment_for_rejects_out_of_range_scores() -> None:
    rules = load_segment_rules("default")
    with pytest.raises(ValueError, match=r"within 1\.\.5"):
        rules.segment_for(0, 3, 3)
    with pytest.raises(ValueError, match=r"within 1\.\.5"):
        rules.segment_for(3, 3, 6)


def test_unknown_preset() -> None:
    with pytest.raises(SegmentRulesError, match=r"'fancy'.*not a preset.*default, classic"):
        load_segment_rules("fancy")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(SegmentRulesError, match=r"nope\.toml.*no such file"):
        load_segment_rules(str(path))


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SegmentRulesError, match="cannot read"):
        load_segment_rules(str(tmp_path))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[[segment]\nname = 'x'", "invalid TOML"),
        (b"\xff\xfe".decode("latin-1"), "invalid TOML"),
        ("", "at least one \\[\\[segment\\]\\]"),
        ("segment = 3", "at least one \\[\\[segment\\]\\]"),
        ("segment = [1]", "segment #1: expected a table"),
        ("[[segments]]\nname = 'x'", "unknown top-level keys \\['segments'\\]"),
        ("[[segment]]\nname = 'x'\nrecency = [1, 5]", "segment #1: unknown keys \\['recency'\\]"),
        ("[[segment]]\nr = [1, 5]", "segment #1: name must be a string"),
        ("[[segment]]\nname = 5", "segment #1: name must be a string"),
        ("[[segment]]\nname = 'x'\nr = 5", "segment #1 \\('x'\\): r must be an array"),
        ("[[segment]]\nname = 'x'\nf = [1, '5']", "f must be an array of two integers"),
        ("[[segment]]\nname = 'x'\nm = [1, 2, 3]", "m must be an array of two integers"),
        ("[[segment]]\nname = 'x'\nm = [0, 5]", "range \\[0, 5\\]"),
        ("[[segment]]\nname = 'Bad'", "must match"),
        ("[[segment]]\nname = 'x'\nr = [1, 4]", "leave r=5 f=1 m=1 unmatched"),
        ("[[segment]]\nname = 'x'\n[[segment]]\nname = 'x'", "used by more than one rule"),
    ],
)
def test_bad_toml_file(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SegmentRulesError, match=f"rules.toml.*{match}"):
        load_segment_rules(str(path))


def test_invalid_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(b"[[segment]]\nname = '\xff'\n")
    with pytest.raises(SegmentRulesError, match=r"rules\.toml.*cannot read"):
        load_segment_rules(str(path))
