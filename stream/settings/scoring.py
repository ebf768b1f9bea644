"""The scoring section: mode, segment rules, clock, currency and the score thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from state.model import MS_PER_DAY
from state.money import CurrencyTable, minor_unit_exponent, parse_rates
from state.scoring import Thresholds
from stream.settings.fields import (
    SettingsError,
    _choice,
    _currency,
    _days,
    _days_or_default,
    _four_amounts,
    _four_ints,
    _free_text,
    _positive_float,
    _Section,
    _setting,
    _text,
)

ScoringMode = Literal["thresholds", "quintiles"]
Clock = Literal["wall", "event"]


@dataclass(frozen=True, repr=False)
class ScoringSettings(_Section):
    mode: ScoringMode = _setting(
        "RFM_SCORING",
        "thresholds",
        _choice(ScoringMode),
        "Scoring mode: thresholds or quintiles",
    )
    segments: str = _setting(
        "RFM_SEGMENTS", "default", _text, "Segment rules: preset (default, classic) or TOML file"
    )
    clock: Clock = _setting(
        "RFM_CLOCK",
        "wall",
        _choice(Clock),
        "Recency measured against now (wall) or the latest event time (event)",
    )
    currency: str = _setting("RFM_CURRENCY", "USD", _currency, "Currency that spend is kept in")
    currency_rates: str = _setting(
        "RFM_CURRENCY_RATES", "", _free_text, "Rates of other currencies, e.g. EUR=1.08,GBP=1.27"
    )
    recency_days: tuple[int, int, int, int] = _setting(
        "RFM_RECENCY_DAYS",
        "30,60,90,120",
        _four_ints,
        "Thresholds: most days since the last purchase for R=5,4,3,2",
    )
    frequency: tuple[int, int, int, int] = _setting(
        "RFM_FREQUENCY", "2,4,7,10", _four_ints, "Thresholds: fewest orders for F=2,3,4,5"
    )
    monetary: tuple[str, str, str, str] = _setting(
        "RFM_MONETARY", "100,400,700,1000", _four_amounts, "Thresholds: least spend for M=2,3,4,5"
    )
    max_future_skew: float = _setting(
        "RFM_MAX_FUTURE_SKEW", "300", _positive_float, "Seconds an event time may lie in the future"
    )
    window_days: int = _setting(
        "RFM_WINDOW_DAYS",
        "365",
        _days,
        "Days of orders that F and M count, ending at the scoring time (0: the whole history)",
    )
    order_retention_days: int | None = _setting(
        "RFM_ORDER_RETENTION_DAYS",
        "",
        _days_or_default,
        "Days order records are kept to recognise duplicates; older events are dead-lettered "
        "`too_old` (empty: the window + 30, or 0 with a window of 0; 0: forever)",
    )
    currencies: CurrencyTable = field(init=False, repr=False, compare=False)
    thresholds: Thresholds = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            rates = parse_rates(self.currency_rates) if self.currency_rates.strip() else {}
        except ValueError as exc:
            raise SettingsError(f"RFM_CURRENCY_RATES: {exc}") from exc
        object.__setattr__(self, "currencies", CurrencyTable(self.currency, rates))
        try:
            thresholds = Thresholds.from_major_units(
                self.recency_days, self.frequency, self.monetary, self.exponent
            )
        except ValueError as exc:
            raise SettingsError(f"RFM_RECENCY_DAYS / RFM_FREQUENCY / RFM_MONETARY: {exc}") from exc
        object.__setattr__(self, "thresholds", thresholds)
        retention, window = self.retention_days, self.window_days
        if window == 0 and retention != 0:
            raise SettingsError(
                f"RFM_ORDER_RETENTION_DAYS={retention}: with RFM_WINDOW_DAYS=0 (the whole "
                "history) every order counts forever, so its record is kept forever: use 0"
            )
        if 0 < retention < window:
            raise SettingsError(
                f"RFM_ORDER_RETENTION_DAYS={retention}: must be at least RFM_WINDOW_DAYS "
                f"({window}), or 0 to keep order records forever"
            )

    @property
    def retention_days(self) -> int:
        """Order retention in days, the default resolved: 0 keeps order records forever."""
        if self.order_retention_days is not None:
            return self.order_retention_days
        return self.window_days + 30 if self.window_days > 0 else 0

    @property
    def window_ms(self) -> int:
        return self.window_days * MS_PER_DAY

    @property
    def retention_ms(self) -> int:
        return self.retention_days * MS_PER_DAY

    @property
    def exponent(self) -> int:
        return minor_unit_exponent(self.currency)
