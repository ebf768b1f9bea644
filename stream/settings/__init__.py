"""All settings, typed, in sections, and validated whichever way they are built.

Each setting comes from its ``RFM_<NAME>`` variable in the environment, else from
``--config FILE.toml`` (key ``<name>``: the variable's name in lower case without ``RFM_``,
one flat table), else its default. A wrong value fails at start with a message naming the
variable, never later in the middle of a stream. ``Settings`` groups them in sections
(``settings.kafka.bootstrap``, ``settings.redis.url``, ``settings.scoring.mode``,
``settings.operations.web_port``, ``settings.api.port``); the variable names stay flat, as
documented. Every section parses its fields in ``__post_init__``, so ``load_settings``,
``Settings.with_values`` and even ``dataclasses.replace`` or a direct constructor call all
check them the same way.
The README's table is made from these declarations (``python -m stream.settings`` prints it;
tests/unit/test_readme_settings.py keeps the README in step).

The package, one concern a module: ``fields`` (the ``_setting`` declaration, the parsers,
``Secret`` and the ``_Section`` base), one module per section (``kafka``, ``redis``,
``scoring``, ``operations``, ``api``), and ``loading`` (``Settings``, ``load_settings``, the
``--config`` file, the README tables). Import from ``stream.settings``, not the modules.

Why not pydantic-settings, the usual choice: it would bring pydantic and pydantic-core (a
compiled extension of several megabytes, in an image that otherwise needs neither) to
replace some 250 lines of parsers and loader, and it would not remove most of them. Its
sources map nested sections to ``RFM_KAFKA__BOOTSTRAP``-style names or a nested TOML
file, whereas the contract here is flat (``RFM_APP_ID`` and ``RFM_PARTITIONS`` live in the
Kafka section without a ``KAFKA_`` in their names) and the ``--config`` file is one flat
table: both would need custom settings sources. Its errors name model paths
(``kafka.partitions``), not ``RFM_PARTITIONS``, so every ``ValidationError`` would have to be
translated back to the variable, and values like ``30,60,90,120`` would need per-field
"no JSON decoding" annotations and validators anyway. What it would give, ``SecretStr`` and
``Literal`` checking, is a few lines here (``Secret``, ``_choice``), and the README table
comes from field metadata either way.
"""

from stream.settings.api import ApiSettings
from stream.settings.fields import Secret, SettingsError
from stream.settings.kafka import KafkaSettings, SaslMechanism, SecurityProtocol
from stream.settings.loading import Settings, load_settings, markdown_table, settings_table
from stream.settings.operations import LogFormat, LogLevel, OperationsSettings
from stream.settings.redis import RedisSettings
from stream.settings.scoring import Clock, ScoringMode, ScoringSettings

__all__ = [
    "ApiSettings",
    "Clock",
    "KafkaSettings",
    "LogFormat",
    "LogLevel",
    "OperationsSettings",
    "RedisSettings",
    "SaslMechanism",
    "ScoringMode",
    "ScoringSettings",
    "Secret",
    "SecurityProtocol",
    "Settings",
    "SettingsError",
    "load_settings",
    "markdown_table",
    "settings_table",
]
