"""Segment rules: ``[[segment]]`` tables in TOML, the first rule that matches wins.

``default`` and ``classic`` are the shipped preset files, read as data; any other name is a
path to a TOML file of the same format.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["PRESETS_DIR", "SegmentRule", "load_rules", "segment_of"]

PRESETS_DIR: Final = Path(__file__).resolve().parents[2] / "state" / "presets"
_PRESETS: Final = ("default", "classic")

Range = tuple[int, int]


@dataclass(frozen=True)
class SegmentRule:
    """Inclusive score ranges; an axis the rule leaves out matches every score."""

    name: str
    r: Range = (1, 5)
    f: Range = (1, 5)
    m: Range = (1, 5)

    def matches(self, r: int, f: int, m: int) -> bool:
        return (
            self.r[0] <= r <= self.r[1]
            and self.f[0] <= f <= self.f[1]
            and self.m[0] <= m <= self.m[1]
        )


def load_rules(spec: str) -> tuple[SegmentRule, ...]:
    """The rules of a preset name or of a TOML file path, in file order."""
    path = PRESETS_DIR / f"{spec}.toml" if spec in _PRESETS else Path(spec)
    with path.open("rb") as file:
        document = tomllib.load(file)
    tables = document.get("segment")
    if not isinstance(tables, list) or not tables:
        raise ValueError(f"{path}: no [[segment]] tables")
    return tuple(_rule(path, table) for table in tables)


def _rule(path: Path, table: object) -> SegmentRule:
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise ValueError(f"{path}: a [[segment]] table needs a name")
    return SegmentRule(
        name=table["name"],
        r=_range(path, table, "r"),
        f=_range(path, table, "f"),
        m=_range(path, table, "m"),
    )


def _range(path: Path, table: dict[str, object], axis: str) -> Range:
    value = table.get(axis, [1, 5])
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 1 <= value[0] <= value[1] <= 5
    ):
        raise ValueError(f"{path}: segment {table['name']!r}: {axis} = {value!r} is not [lo, hi]")
    return (value[0], value[1])


def segment_of(rules: tuple[SegmentRule, ...], r: int, f: int, m: int) -> str:
    """The name of the first rule matching the scores."""
    for rule in rules:
        if rule.matches(r, f, m):
            return rule.name
    raise LookupError(f"no segment rule matches r={r} f={f} m={m}")
