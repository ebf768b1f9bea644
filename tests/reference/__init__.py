"""An independent batch oracle for rfm-stream, written from the README's definitions.

It imports nothing from ``stream`` or ``state``; it reads the shipped segment presets
(``state/presets/*.toml``) as data. Typical use::

    config = Config.from_env({"RFM_SCORING": "quintiles"})
    history = fold(values, config, now_ms)          # record values in publish order
    profiles = expected(history, config, as_of_ms)  # customer id -> Expected
"""

from .config import MS_PER_DAY, Config, ConfigError
from .events import DeadLetter, Event, parse_event
from .fold import AmbiguousHistory, Expected, History, expected, fold, scoring_time

__all__ = [
    "MS_PER_DAY",
    "AmbiguousHistory",
    "Config",
    "ConfigError",
    "DeadLetter",
    "Event",
    "Expected",
    "History",
    "expected",
    "fold",
    "parse_event",
    "scoring_time",
]
