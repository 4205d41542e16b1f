"""Fees: maker/taker rates by 30-day traded volume tier, per venue.

One :class:`FeeModel` answers "what does this fill cost" in every mode. Its tiers come from a
:class:`FeeSchedule` (a venue's published VIP table, :data:`SCHEDULES`) or, when none is
given, from the instruments' own maker/taker rates (one tier). The model tracks the 30-day
volume the run traded (the venue broker records every live fill) so the tier moves up as a
real account's would; it is stored with the run.

>>> m = FeeModel(FeeSchedule("demo", ((0.0, 0.001, 0.002), (1_000_000.0, 0.0008, 0.0016))))
>>> m.taker("BTC/USDT")
0.002
>>> m.record_volume(2_000_000.0, 0)
>>> m.taker("BTC/USDT"), m.tier
(0.0016, 1)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.money import fee_for

__all__ = ["SCHEDULES", "FeeModel", "FeeSchedule"]

_DAY_NS = 86_400_000_000_000
_WINDOW_NS = 30 * _DAY_NS


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A venue's fee tiers: ``(min 30-day volume in quote, maker rate, taker rate)``,
    ascending by volume; the first tier's volume is 0."""

    venue: str
    tiers: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        if not self.tiers or self.tiers[0][0] != 0:
            raise ConfigError(f"fee schedule {self.venue}: the first tier must start at volume 0")
        volumes = [t[0] for t in self.tiers]
        if volumes != sorted(volumes):
            raise ConfigError(f"fee schedule {self.venue}: tiers must ascend by volume")
        for vol, maker, taker in self.tiers:
            if not (-0.01 < maker < 0.1 and 0 <= taker < 0.1):
                raise ConfigError(
                    f"fee schedule {self.venue}: tier {vol:g} has rates {maker}, {taker}"
                )

    def tier_for(self, volume_30d: float) -> int:
        """Index of the tier a 30-day volume falls in."""
        idx = 0
        for i, (vol, _m, _t) in enumerate(self.tiers):
            if volume_30d >= vol:
                idx = i
        return idx


#: published regular-account tiers (quote-currency 30-day volume; rates as fractions)
SCHEDULES: dict[str, FeeSchedule] = {
    "binance": FeeSchedule(
        "binance",
        (
            (0.0, 0.0010, 0.0010),
            (1_000_000.0, 0.0009, 0.0010),
            (5_000_000.0, 0.0008, 0.0010),
            (20_000_000.0, 0.00042, 0.0006),
        ),
    ),
    "binanceusdm": FeeSchedule(
        "binanceusdm",
        (
            (0.0, 0.0002, 0.0005),
            (15_000_000.0, 0.00016, 0.0004),
            (50_000_000.0, 0.00014, 0.00035),
            (100_000_000.0, 0.00012, 0.00032),
        ),
    ),
    "bybit": FeeSchedule("bybit", ((0.0, 0.001, 0.001), (1_000_000.0, 0.0006, 0.0008))),
    "alpaca": FeeSchedule("alpaca", ((0.0, 0.0, 0.0),)),
}


class FeeModel:
    """Maker/taker rates for a fill, at the tier of the run's 30-day volume.

    Parameters
    ----------
    schedule
        The venue's tiers; None uses each instrument's own rates (``instruments``).
    instruments
        Per-symbol maker/taker rates when there is no schedule.
    """

    def __init__(
        self,
        schedule: FeeSchedule | None = None,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        self.schedule = schedule
        self.instruments = dict(instruments or {})
        self._volume: deque[tuple[int, float]] = deque()
        self.volume_30d = 0.0

    @classmethod
    def from_instruments(cls, instruments: Mapping[str, Instrument]) -> FeeModel:
        """The instruments' own rates, one tier."""
        return cls(None, instruments)

    @classmethod
    def for_venue(cls, venue: str, instruments: Mapping[str, Instrument]) -> FeeModel:
        """The venue's published tiers when known, else the instruments' rates."""
        return cls(SCHEDULES.get(venue.lower()), instruments)

    @property
    def tier(self) -> int:
        """The current tier's index (0 without a schedule)."""
        return self.schedule.tier_for(self.volume_30d) if self.schedule is not None else 0

    def maker(self, symbol: str) -> float:
        """Maker rate for ``symbol`` now."""
        if self.schedule is not None:
            return self.schedule.tiers[self.tier][1]
        inst = self.instruments.get(symbol)
        return inst.maker_fee if inst is not None else 0.0

    def taker(self, symbol: str) -> float:
        """Taker rate for ``symbol`` now."""
        if self.schedule is not None:
            return self.schedule.tiers[self.tier][2]
        inst = self.instruments.get(symbol)
        return inst.taker_fee if inst is not None else 0.0

    def fee(self, symbol: str, quantity: float, price: float, *, maker: bool = False) -> float:
        """The fee of a fill (quote currency)."""
        return fee_for(quantity, price, self.maker(symbol) if maker else self.taker(symbol))

    def record_volume(self, notional: float, ts_ns: int) -> None:
        """Add a fill's notional to the rolling 30-day volume."""
        self._volume.append((ts_ns, abs(notional)))
        self.volume_30d += abs(notional)
        while self._volume and self._volume[0][0] < ts_ns - _WINDOW_NS:
            self.volume_30d -= self._volume.popleft()[1]

    def export_state(self) -> dict[str, Any]:
        """The 30-day volume by day (JSON-serializable)."""
        by_day: dict[int, float] = {}
        for ts, v in self._volume:
            by_day[ts // _DAY_NS] = by_day.get(ts // _DAY_NS, 0.0) + v
        return {"volume_by_day": [[d, v] for d, v in sorted(by_day.items())]}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`export_state`."""
        self._volume.clear()
        self.volume_30d = 0.0
        for day, vol in state.get("volume_by_day", []):
            self._volume.append((int(day) * _DAY_NS, float(vol)))
            self.volume_30d += float(vol)
