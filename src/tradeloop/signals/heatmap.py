"""Liquidation-zone model: where would leveraged positions be liquidated?

Per bar, the newly opened interest is estimated from the increase in open interest
(``flow_source == "open_interest"``) or, when the bar has no open interest, from its volume
(``flow_source == "volume"``). It is split into longs and shorts by taker flow: the bar's
volume delta when known (``split == "volume_delta"``), otherwise the close's position in the
bar's range (``split == "range"``, ``0.5 + 0.5 * (close - open) / (high - low)``). Each side is
spread across the leverage tiers and placed at the tier's isolated-margin liquidation price for
an entry at the close (:func:`liquidation_price`). Every bar, levels decay by
``0.5 ** (1 / half_life_bars)``; a level is removed once price trades through it (the low
reaches a long level, the high a short level) or when it has decayed below 1e-9 of the
strongest level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.signals.models import LiquidationSignal, symbol_key

__all__ = [
    "HeatmapConfig",
    "LiquidationHeatmap",
    "liquidation_price",
    "price_time_heatmap",
    "tier_component",
]


def liquidation_price(
    entry: float, leverage: float, side: Literal["long", "short"], maintenance_margin: float
) -> float:
    """Return the isolated-margin liquidation price of a position (fees ignored).

    Long: ``entry * (1 - 1/leverage + mmr)``; short: ``entry * (1 + 1/leverage - mmr)``.

    >>> round(liquidation_price(100.0, 10, "long", 0.005), 10)
    90.5
    >>> round(liquidation_price(100.0, 10, "short", 0.005), 10)
    109.5
    """
    if leverage <= 0:
        raise ValueError(f"leverage must be positive, got {leverage}")
    if side == "long":
        return entry * (1.0 - 1.0 / leverage + maintenance_margin)
    return entry * (1.0 + 1.0 / leverage - maintenance_margin)


def tier_component(leverage: float) -> str:
    """Return the weight component name of a leverage tier.

    >>> tier_component(25)
    'lev_25x'
    """
    return f"lev_{leverage:g}x"


@dataclass(frozen=True, slots=True)
class HeatmapConfig:
    """Settings of :class:`LiquidationHeatmap`.

    Attributes
    ----------
    leverage_tiers
        Leverage of each tier.
    tier_shares
        Fraction of new interest assigned to each tier (default: equal).
    maintenance_margin
        Maintenance-margin rate used in the liquidation price.
    half_life_bars
        Levels lose half their strength over this many bars.
    bin_pct
        Levels are merged into log-price bins this wide (fraction of price); a zone is one bin.
    """

    leverage_tiers: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0, 100.0)
    tier_shares: tuple[float, ...] | None = None
    maintenance_margin: float = 0.004
    half_life_bars: float = 288.0
    bin_pct: float = 0.001
    components: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.leverage_tiers:
            raise ValueError("at least one leverage tier is needed")
        if self.tier_shares is not None and len(self.tier_shares) != len(self.leverage_tiers):
            raise ValueError("tier_shares needs one share per leverage tier")
        object.__setattr__(
            self, "components", tuple(tier_component(x) for x in self.leverage_tiers)
        )


class LiquidationHeatmap:
    """Incremental liquidation-level model for one symbol.

    Levels are kept merged per (price bin, side, tier), bins being ``bin_pct`` wide in log
    price: a bin holds its total strength and its strength-weighted price sum, so a bin fed
    by one entry reports that entry's exact liquidation price. Keys stay sorted, so the zones
    (bins summed over tiers) of :meth:`top_signals` are contiguous runs.

    Parameters
    ----------
    symbol
        Instrument symbol (any form; channel form is used in signal ids).
    config
        Model settings.
    """

    def __init__(self, symbol: str, config: HeatmapConfig | None = None) -> None:
        self.symbol = symbol
        self.config = config or HeatmapConfig()
        cfg = self.config
        n = len(cfg.leverage_tiers)
        self._nt = n
        shares = np.asarray(cfg.tier_shares or [1.0 / n] * n, dtype=np.float64)
        self._shares = shares / shares.sum()
        lev = np.asarray(cfg.leverage_tiers, dtype=np.float64)
        self._mult = np.concatenate(
            (1.0 - 1.0 / lev + cfg.maintenance_margin, 1.0 + 1.0 / lev - cfg.maintenance_margin)
        )
        self._new_long = np.concatenate((np.ones(n, np.int64), np.zeros(n, np.int64)))
        self._new_tier = np.concatenate((np.arange(n), np.arange(n))).astype(np.int64)
        self._log_step = math.log1p(cfg.bin_pct)
        self._decay = 0.5 ** (1.0 / cfg.half_life_bars) if cfg.half_life_bars > 0 else 1.0
        self.key = np.empty(0, dtype=np.int64)
        self.strength = np.empty(0)
        self._wprice = np.empty(0)
        self.last_close = math.nan
        self.last_ts = 0
        self._prev_oi = math.nan
        self.flow_source: str | None = None
        self.split: str | None = None

    def __len__(self) -> int:
        return int(self.key.shape[0])

    @property
    def price(self) -> np.ndarray:
        """Strength-weighted price of each stored level."""
        return self._wprice / self.strength

    @property
    def is_long(self) -> np.ndarray:
        """True for levels of long positions (below the price)."""
        return ((self.key // self._nt) & 1).astype(bool)

    @property
    def tier(self) -> np.ndarray:
        """Leverage-tier index of each stored level."""
        return self.key % self._nt

    def update(
        self,
        ts: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        open_interest: float | None = None,
        volume_delta: float | None = None,
    ) -> None:
        """Apply one completed bar: decay, remove traded-through levels, add new ones."""
        if len(self):
            self.strength *= self._decay
            self._wprice *= self._decay
            price = self._wprice / self.strength
            hit = np.where(self.is_long, low <= price, high >= price)
            hit |= self.strength < 1e-9 * self.strength.max()
            if hit.any():
                keep = ~hit
                self.key = self.key[keep]
                self.strength = self.strength[keep]
                self._wprice = self._wprice[keep]
        if open_interest is not None and not math.isnan(open_interest):
            self.flow_source = "open_interest"
            new = 0.0 if math.isnan(self._prev_oi) else max(open_interest - self._prev_oi, 0.0)
            self._prev_oi = open_interest
        else:
            self.flow_source = "volume"
            new = max(volume, 0.0)
        if volume_delta is not None and not math.isnan(volume_delta) and volume > 0:
            self.split = "volume_delta"
            long_frac = 0.5 + 0.5 * max(-1.0, min(1.0, volume_delta / volume))
        else:
            self.split = "range"
            span = high - low
            long_frac = 0.5 + 0.5 * (close - open_) / span if span > 0 else 0.5
        self.last_close = close
        self.last_ts = ts
        if new <= 0:
            return
        prices = close * self._mult
        amounts = np.concatenate(
            (new * long_frac * self._shares, new * (1.0 - long_frac) * self._shares)
        )
        live = amounts > 0
        bins = np.floor(np.log(prices) / self._log_step).astype(np.int64)
        keys = ((bins * 2 + self._new_long) * self._nt + self._new_tier)[live]
        amounts, prices = amounts[live], prices[live]
        order = np.argsort(keys, kind="stable")
        keys, amounts, prices = keys[order], amounts[order], prices[order]
        pos = np.searchsorted(self.key, keys)
        exists = pos < len(self)
        exists[exists] = self.key[pos[exists]] == keys[exists]
        if exists.any():
            np.add.at(self.strength, pos[exists], amounts[exists])
            np.add.at(self._wprice, pos[exists], amounts[exists] * prices[exists])
        fresh = ~exists
        if fresh.any():
            at = pos[fresh]
            self.key = np.insert(self.key, at, keys[fresh])
            self.strength = np.insert(self.strength, at, amounts[fresh])
            self._wprice = np.insert(self._wprice, at, amounts[fresh] * prices[fresh])

    def histogram(self, edges: np.ndarray, weights: dict[str, float] | None = None) -> np.ndarray:
        """Return the (weighted) strength of the current levels in the price bins ``edges``.

        Calling it after every :meth:`update` gives the rows of the price x time heatmap.
        """
        hist, _ = np.histogram(self.price, bins=edges, weights=self._weighted(weights))
        return hist

    def _weighted(self, weights: dict[str, float] | None) -> np.ndarray:
        if not weights:
            return self.strength
        w = np.array([weights.get(c, 1.0) for c in self.config.components], dtype=np.float64)
        return self.strength * w[self.tier]

    def top_signals(
        self, n: int, weights: dict[str, float] | None = None
    ) -> list[LiquidationSignal]:
        """Return the ``n`` strongest zones as signals, strongest first.

        A zone is one price bin of one side summed over the tiers (weighted by ``weights``); its
        price is the strength-weighted mean, its component the tier contributing most, its
        confidence its share of the total weighted strength.
        """
        if not len(self) or n <= 0 or math.isnan(self.last_close):
            return []
        strength = self._weighted(weights)
        total = float(strength.sum())
        if total <= 0:
            return []
        zone = self.key // self._nt
        starts = np.concatenate(([0], np.flatnonzero(np.diff(zone)) + 1))
        ends = np.append(starts[1:], len(zone))
        zone_strength = np.add.reduceat(strength, starts)
        zone_wprice = np.add.reduceat(strength * self.price, starts)
        k = min(n, zone_strength.shape[0])
        top = np.argpartition(-zone_strength, k - 1)[:k]
        top = top[np.lexsort((top, -zone_strength[top]))]
        key = symbol_key(self.symbol)
        out: list[LiquidationSignal] = []
        for z in top:
            zs = float(zone_strength[z])
            if zs <= 0:
                break
            lo, hi = int(starts[z]), int(ends[z])
            tier = int(self.key[lo + int(np.argmax(strength[lo:hi]))] % self._nt)
            zkey = int(zone[lo])
            side: Literal["long", "short"] = "long" if zkey & 1 else "short"
            level = float(zone_wprice[z]) / zs
            out.append(
                LiquidationSignal(
                    id=f"{key}-{self.last_ts}-{side}-{zkey >> 1}",
                    symbol=key,
                    price_level=level,
                    side=side,
                    strength=zs,
                    distance_pct=(level - self.last_close) / self.last_close,
                    confidence=min(1.0, zs / total),
                    ts=self.last_ts,
                    current_price=self.last_close,
                    component=self.config.components[tier],
                )
            )
        return out


BarUpdateArgs = tuple[int, float, float, float, float, float, float | None, float | None]
"""Positional arguments of :meth:`LiquidationHeatmap.update`."""


def bar_update_args(
    bars: BarArrays, i: int, volume_delta: np.ndarray | None = None
) -> BarUpdateArgs:
    """Return the :meth:`LiquidationHeatmap.update` arguments of bar ``i`` of ``bars``.

    Open interest is None when ``bars`` has none, volume delta when ``volume_delta`` is None.
    """
    oi = bars.open_interest
    return (
        int(bars.ts[i]),
        float(bars.open[i]),
        float(bars.high[i]),
        float(bars.low[i]),
        float(bars.close[i]),
        float(bars.volume[i]),
        None if oi is None else float(oi[i]),
        None if volume_delta is None else float(volume_delta[i]),
    )


def price_time_heatmap(
    bars: BarArrays,
    config: HeatmapConfig | None = None,
    *,
    bins: int = 200,
    every: int = 1,
    weights: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay ``bars`` through the model and return the price x time heatmap.

    Returns ``(ts, edges, matrix)``: the open times of the sampled bars (every ``every``-th),
    ``bins + 1`` price edges spanning the zones' possible range (the lowest and highest tier
    liquidation prices around the data's low and high), and a ``(len(ts), bins)`` matrix of
    zone strength per price bin after each sampled bar.

    >>> from tradeloop.core.bar import BarArrays
    >>> b = BarArrays("X", "1h", np.arange(3) * 3_600_000_000_000, [100.0] * 3, [101.0] * 3,
    ...               [99.0] * 3, [100.0] * 3, [10.0] * 3)
    >>> ts, edges, grid = price_time_heatmap(b, bins=50)
    >>> grid.shape, bool(grid[-1].sum() > 0)
    ((3, 50), True)
    """
    model = LiquidationHeatmap(bars.symbol, config)
    lo = float(np.min(bars.low)) * float(np.min(model._mult))
    hi = float(np.max(bars.high)) * float(np.max(model._mult))
    edges = np.linspace(lo, hi, bins + 1)
    rows: list[np.ndarray] = []
    stamps: list[int] = []
    for i in range(len(bars)):
        model.update(*bar_update_args(bars, i))
        if i % every == every - 1 or i == len(bars) - 1:
            rows.append(model.histogram(edges, weights))
            stamps.append(int(bars.ts[i]))
    matrix = np.vstack(rows) if rows else np.zeros((0, bins))
    return np.asarray(stamps, dtype=np.int64), edges, matrix
