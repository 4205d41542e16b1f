"""Synthetic bars for the ML unit tests."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays

T0 = 1_700_000_000_000_000_000
HOUR = 3_600_000_000_000


def _make_bars(n: int = 1500, seed: int = 3, symbol: str = "SYN/USDT") -> BarArrays:
    """Random-walk hourly bars with a little momentum so a model has something to find."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0, 0.01, n)
    rets = np.empty(n)
    rets[0] = shocks[0]
    for i in range(1, n):
        rets[i] = 0.15 * rets[i - 1] + shocks[i]
    close = 100 * np.exp(np.cumsum(rets))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = rng.lognormal(3, 0.5, n)
    ts = T0 + HOUR * np.arange(n, dtype=np.int64)
    return BarArrays(symbol, "1h", ts, open_, high, low, close, volume)


@pytest.fixture
def make_bars() -> object:
    """Factory: ``make_bars(n, seed)``."""
    return _make_bars


@pytest.fixture
def bars() -> BarArrays:
    return _make_bars()
