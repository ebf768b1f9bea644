"""Segment rules: map an (r, f, m) score triple to a segment name.

Rules are data (a preset or an operator's TOML file) so marketing can change segmentation
without a code change. They are an ordered list where the first match wins, which keeps
overlapping rules readable ("high_value" before "new"). Because a bad rule file would silently
misclassify customers, construction rejects anything that leaves a score combination without
a segment or contains a rule that can never fire.

The score space is only 5*5*5, so the rules are compiled into a flat 125-entry table and the
hot path does one index per customer instead of walking the rules.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PRESETS = ("default", "classic")

Range = tuple[int, int]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_SCORES = range(1, 6)
_RULE_KEYS = frozenset({"name", "r", "f", "m"})


class SegmentRulesError(ValueError):
    """A rule set that cannot be used; the message says which rule or file and why."""


def _check_range(rule: str, axis: str, value: object) -> None:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise SegmentRulesError(f"segment rule {rule!r}: {axis} must be two integers [lo, hi]")
    lo, hi = value
    if not 1 <= lo <= hi <= 5:
        raise SegmentRulesError(
            f"segment rule {rule!r}: {axis} range [{lo}, {hi}] must satisfy 1 <= lo <= hi <= 5"
        )


@dataclass(frozen=True, slots=True)
class SegmentRule:
    """One rule: inclusive score ranges per axis; an omitted axis matches every score."""

    name: str
    r: Range = (1, 5)
    f: Range = (1, 5)
    m: Range = (1, 5)

    def __post_init__(self) -> None:
        # Names end up in Redis keys, metrics labels and output events, hence the strict shape.
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise SegmentRulesError(
                f"segment name {self.name!r} must match ^[a-z][a-z0-9_]{{0,39}}$"
            )
        for axis in ("r", "f", "m"):
            _check_range(self.name, axis, getattr(self, axis))

    def matches(self, r: int, f: int, m: int) -> bool:
        return (
            self.r[0] <= r <= self.r[1]
            and self.f[0] <= f <= self.f[1]
            and self.m[0] <= m <= self.m[1]
        )


def _index(r: int, f: int, m: int) -> int:
    return (r - 1) * 25 + (f - 1) * 5 + (m - 1)


class SegmentRules:
    """A validated, ordered rule set compiled into a lookup table."""

    __slots__ = ("_names", "_table", "rules")

    def __init__(self, rules: Sequence[SegmentRule]) -> None:
        self.rules = tuple(rules)
        if not self.rules:
            raise SegmentRulesError("segment rules must contain at least one rule")
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise SegmentRulesError(f"segment name {rule.name!r} is used by more than one rule")
            seen.add(rule.name)
        self._names = tuple(rule.name for rule in self.rules)
        self._table = self._compile()

    def _compile(self) -> tuple[str, ...]:
        table: list[str | None] = [None] * 125
        for rule in self.rules:
            claimed = 0
            for r in range(rule.r[0], rule.r[1] + 1):
                for f in range(rule.f[0], rule.f[1] + 1):
                    for m in range(rule.m[0], rule.m[1] + 1):
                        if table[_index(r, f, m)] is None:
                            table[_index(r, f, m)] = rule.name
                            claimed += 1
            if claimed == 0:
                raise SegmentRulesError(
                    f"segment rule {rule.name!r} can never match: earlier rules already "
                    "cover all of its combinations"
                )
        compiled: list[str] = []
        for r in _SCORES:
            for f in _SCORES:
                for m in _SCORES:
                    name = table[_index(r, f, m)]
                    if name is None:
                        raise SegmentRulesError(f"segment rules leave r={r} f={f} m={m} unmatched")
                    compiled.append(name)
        return tuple(compiled)

    @property
    def names(self) -> tuple[str, ...]:
        """Segment names in rule order; every one of them is reachable."""
        return self._names

    @property
    def table(self) -> tuple[str, ...]:
        """Segment of every score triple, at index (r-1)*25 + (f-1)*5 + (m-1)."""
        return tuple(self._table)

    def segment_for(self, r: int, f: int, m: int) -> str:
        # The range check keeps a bad score from silently indexing another segment's cell.
        if not (1 <= r <= 5 and 1 <= f <= 5 and 1 <= m <= 5):
            raise ValueError(f"scores must be within 1..5, got r={r} f={f} m={m}")
        return self._table[_index(r, f, m)]

    def __repr__(self) -> str:
        return f"SegmentRules({list(self.rules)!r})"


def load_segment_rules(spec: str) -> SegmentRules:
    """Load a preset by name, or else a TOML rule file by path.

    Preset names win over a file of the same name in the working directory, so ``default``
    always means the shipped rules, whatever files happen to sit next to the process.
    """
    if spec in PRESETS:
        source = f"segment preset {spec!r}"
        text = resources.files("state").joinpath("presets", f"{spec}.toml").read_text("utf-8")
        return _parse(source, text)
    path = Path(spec)
    source = f"segment rules file {spec!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SegmentRulesError(
            f"{source}: no such file, and not a preset (presets: {', '.join(PRESETS)})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SegmentRulesError(f"{source}: cannot read: {exc}") from exc
    return _parse(source, text)


def _parse(source: str, text: str) -> SegmentRules:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SegmentRulesError(f"{source}: invalid TOML: {exc}") from exc
    unknown = sorted(set(document) - {"segment"})
    if unknown:
        raise SegmentRulesError(f"{source}: unknown top-level keys {unknown}; expected [[segment]]")
    entries = document.get("segment")
    if not isinstance(entries, list) or not entries:
        raise SegmentRulesError(f"{source}: expected at least one [[segment]] table")
    try:
        return SegmentRules([_rule(i, entry) for i, entry in enumerate(entries, start=1)])
    except SegmentRulesError as exc:
        raise SegmentRulesError(f"{source}: {exc}") from exc


def _rule(position: int, entry: object) -> SegmentRule:
    where = f"segment #{position}"
    if not isinstance(entry, Mapping):
        raise SegmentRulesError(f"{where}: expected a table, got {entry!r}")
    unknown = sorted(set(entry) - _RULE_KEYS)
    if unknown:
        raise SegmentRulesError(f"{where}: unknown keys {unknown}; allowed: name, r, f, m")
    name = entry.get("name")
    if not isinstance(name, str):
        raise SegmentRulesError(f"{where}: name must be a string, got {name!r}")
    ranges: dict[str, Range] = {}
    for axis in ("r", "f", "m"):
        value = entry.get(axis, [1, 5])
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise SegmentRulesError(
                f"{where} ({name!r}): {axis} must be an array of two integers [lo, hi], "
                f"got {value!r}"
            )
        ranges[axis] = (value[0], value[1])
    return SegmentRule(name=name, r=ranges["r"], f=ranges["f"], m=ranges["m"])
