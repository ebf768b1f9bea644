"""What every section is made of: ``_setting`` declarations, their parsers, and ``_Section``,
which parses and checks them on construction, so a value is checked however the section
is built (``load_settings``, ``Settings.with_values``, ``dataclasses.replace``)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import Field, field, fields
from decimal import Decimal
from typing import Any, get_args

from state.money import is_currency_code


class SettingsError(ValueError):
    """A setting has a wrong value; the message names it."""


class Secret:
    """A value that never shows: its repr and str are ``***`` (empty when unset), so it can
    sit in settings that end up in logs and tracebacks. ``get_secret_value()`` is for the
    one place that hands it to a client."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# ---------------------------------------------------------------------------- parsers
# Each takes the text of a value (from the environment, the config file, or a typed value
# rendered back to text) and returns the typed value, or raises ValueError saying why.


def _choice(kind: Any) -> Callable[[str], str]:
    allowed: tuple[str, ...] = get_args(kind)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a number > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a whole number > 0")
    return value


MAX_DAYS = 36_500  # a hundred years: more is a typo, and day counts stay exact in Lua


def _days(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_DAYS:
        raise ValueError(f"must be a whole number of days, 0-{MAX_DAYS}")
    return value


def _days_or_default(text: str) -> int | None:
    return None if not text.strip() else _days(text)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _free_text(text: str) -> str:
    return text


def _secret(text: str) -> Secret:
    return Secret(text)


def _redis_url(text: str) -> str:
    url = _text(text)
    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return url


def _ca_file(text: str) -> str:
    """Empty (the system's CAs), or a readable PEM file of CA certificates."""
    if not text.strip():
        return ""
    path = text.strip()
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"not a PEM file of CA certificates ({exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"cannot read the CA file: {exc.strerror}") from None
    return path


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port, 1-65535")
    return value


def _currency(text: str) -> str:
    if not is_currency_code(text):
        raise ValueError("must be an ISO 4217 code such as USD")
    return text


def _four_ints(text: str) -> tuple[int, int, int, int]:
    parts = tuple(int(p) for p in text.split(","))
    if len(parts) != 4:
        raise ValueError("needs four comma-separated whole numbers")
    return parts


def _four_amounts(text: str) -> tuple[str, str, str, str]:
    parts = tuple(p.strip() for p in text.split(","))
    if len(parts) != 4:
        raise ValueError("needs four comma-separated amounts")
    for p in parts:
        Decimal(p)
    return parts


def _as_text(value: Any) -> str:
    """A value as the text its parser reads: a typed value round-trips, a TOML array of
    numbers becomes the comma-separated form of the environment."""
    if value is None:
        return ""
    if isinstance(value, Secret):
        return value.get_secret_value()
    if isinstance(value, list | tuple):
        return ",".join(str(x) for x in value)
    return str(value)


def _redact_url(text: str) -> str:
    if "://" in text and "@" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return text


def _shown(f: Field[Any], text: str) -> str:
    """A value as it may appear in a repr, a log line or an error message."""
    if f.metadata["secret"]:
        return "***" if text else ""
    return _redact_url(text)


def _setting(
    env: str, default: str, parse: Callable[[str], Any], doc: str, *, secret: bool = False
) -> Any:
    return field(
        default=parse(default),
        metadata={"env": env, "parse": parse, "doc": doc, "raw": default, "secret": secret},
    )


def _setting_fields(section: Any) -> list[Field[Any]]:
    return [f for f in fields(section) if "env" in f.metadata]


# ---------------------------------------------------------------------------- sections


class _Section:
    """Parses and checks every field on construction; shows no secret in its repr."""

    def __post_init__(self) -> None:
        for f in _setting_fields(self):
            text = _as_text(getattr(self, f.name))
            try:
                value = f.metadata["parse"](text)
            except (ValueError, ArithmeticError) as exc:
                raise SettingsError(f"{f.metadata['env']}={_shown(f, text)!r}: {exc}") from exc
            object.__setattr__(self, f.name, value)

    def redacted(self) -> dict[str, str]:
        """``RFM_*`` variable -> value for display, credentials masked."""
        return {
            f.metadata["env"]: _shown(f, _as_text(getattr(self, f.name)))
            for f in _setting_fields(self)
        }

    def __repr__(self) -> str:
        values = ((f.name, getattr(self, f.name)) for f in _setting_fields(self))
        shown = ", ".join(
            f"{name}={(_redact_url(v) if isinstance(v, str) else v)!r}" for name, v in values
        )
        return f"{type(self).__name__}({shown})"
