"""``Settings``, the five sections together, and where their values come from: the
environment, then the ``--config`` TOML file, then the defaults; and the README's tables."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, field, replace
from pathlib import Path
from typing import Any

from stream.settings.api import ApiSettings
from stream.settings.fields import SettingsError, _Section, _setting_fields
from stream.settings.kafka import KafkaSettings
from stream.settings.operations import OperationsSettings
from stream.settings.redis import RedisSettings
from stream.settings.scoring import ScoringSettings

_SECTIONS: tuple[tuple[str, str, type[_Section]], ...] = (
    ("kafka", "Kafka", KafkaSettings),
    ("redis", "Redis", RedisSettings),
    ("scoring", "Scoring", ScoringSettings),
    ("operations", "Operations", OperationsSettings),
    ("api", "Query API", ApiSettings),
)


def _all_fields() -> Iterator[tuple[str, Field[Any]]]:
    for name, _, section in _SECTIONS:
        for f in _setting_fields(section):
            yield name, f


# RFM_* variable -> (section attribute, field name)
_VARIABLES: dict[str, tuple[str, str]] = {f.metadata["env"]: (s, f.name) for s, f in _all_fields()}


@dataclass(frozen=True, repr=False)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    operations: OperationsSettings = field(default_factory=OperationsSettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    def __post_init__(self) -> None:
        for name, _, section in _SECTIONS:
            if not isinstance(getattr(self, name), section):
                raise TypeError(f"Settings.{name} must be a {section.__name__}")

    def with_values(self, values: Mapping[str, str]) -> Settings:
        """These settings with some replaced, given as ``RFM_*`` variables and parsed and
        checked as ``load_settings`` does (``rfm-stream demo`` points them at its servers)."""
        changes: dict[str, dict[str, str]] = {}
        for variable, text in values.items():
            if variable not in _VARIABLES:
                raise SettingsError(f"{variable}: no such setting")
            section, name = _VARIABLES[variable]
            changes.setdefault(section, {})[name] = text
        return replace(self, **{s: replace(getattr(self, s), **kw) for s, kw in changes.items()})

    def redacted(self) -> dict[str, str]:
        """Every setting for display, ``RFM_*`` variable -> value, credentials masked."""
        shown: dict[str, str] = {}
        for name, _, _ in _SECTIONS:
            shown.update(getattr(self, name).redacted())
        return shown

    def __repr__(self) -> str:
        # Settings end up in tracebacks and logs: never with a secret in them.
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name, _, _ in _SECTIONS)
        return f"Settings({inner})"


def load_settings(
    env: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Settings from ``env`` (default: the process environment), then ``config_file``, then
    the defaults; raises SettingsError naming the first wrong value."""
    env = os.environ if env is None else env
    from_file = {} if config_file is None else _read_config(Path(config_file))
    raw: dict[str, dict[str, Any]] = {name: {} for name, _, _ in _SECTIONS}
    for section, f in _all_fields():
        variable = f.metadata["env"]
        value = env.get(variable, from_file.get(_config_key(variable)))
        if value is not None:
            raw[section][f.name] = value
    return Settings(
        kafka=KafkaSettings(**raw["kafka"]),
        redis=RedisSettings(**raw["redis"]),
        scoring=ScoringSettings(**raw["scoring"]),
        operations=OperationsSettings(**raw["operations"]),
        api=ApiSettings(**raw["api"]),
    )


def _config_key(variable: str) -> str:
    return variable.removeprefix("RFM_").lower()


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"--config {path}: not valid TOML: {exc}") from exc
    known = {_config_key(variable) for variable in _VARIABLES}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"--config {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, section by section."""
    return [(f.metadata["env"], f.metadata["raw"], f.metadata["doc"]) for _, f in _all_fields()]


def markdown_table() -> str:
    """The README's settings tables, one per section: ``python -m stream.settings``."""
    lines: list[str] = []
    for _, title, section in _SECTIONS:
        lines += ["", f"**{title}**", "", "| variable | default | meaning |", "|---|---|---|"]
        for f in _setting_fields(section):
            default = f"`{f.metadata['raw']}`" if f.metadata["raw"] else ""
            row = f"| `{f.metadata['env']}` | {default} | {f.metadata['doc']} |"
            lines.append(row.replace("|  |", "| |"))
    return "\n".join(lines[1:]) + "\n"
