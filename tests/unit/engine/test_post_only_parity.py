"""Post-only entries give the same orders and trades in paper (LiveKernel, bars streamed) as in
the backtest, on recorded Binance 1m data: some entries fill at their limit (the signal bar's
close) with the maker fee, the others expire."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.market import MarketData
from tradeloop.engine.parity import trade_key
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

WARMUP = 300


@pytest.fixture(scope="module")
def btc_1m(shared_data: Path) -> BarArrays:
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    return bars.slice(0, 3_000)


def test_post_only_entries_trade_identically_in_paper_and_backtest(btc_1m: BarArrays) -> None:
    sym = btc_1m.symbol
    inst = test_instrument(sym)
    cfg = RunConfig(post_only_entries=True, trade_start=int(btc_1m.ts[WARMUP]), fee=0.001)
    market = MarketData({sym: btc_1m}, {sym: inst}, btc_1m.timeframe, ())
    engine = BacktestEngine(SmaCross(), market, cfg)
    result = engine.run()
    kernel = LiveKernel(SmaCross(), {sym: inst}, btc_1m.timeframe, cfg)
    kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    stream_bars(kernel, {sym: btc_1m}, WARMUP, len(btc_1m))

    closed = [t for t in result.trades if t.exit_ts is not None]
    assert [trade_key(t) for t in kernel.portfolio.trades] == [trade_key(t) for t in closed]
    expired = [r for r in result.rejections if r.reason == "post_only_expired"]
    assert expired
    assert len(result.trades) > 3
    # every entry is at the close of the bar before it (the limit), inside that next bar's range
    ts_index = {int(t): i for i, t in enumerate(btc_1m.ts)}
    for t in result.trades:
        i = ts_index[t.entry_ts]
        assert t.entry_price == float(btc_1m.close[i - 1])
        if t.direction > 0:
            assert float(btc_1m.low[i]) < t.entry_price
        else:
            assert float(btc_1m.high[i]) > t.entry_price
        assert t.entry_fee == pytest.approx(t.quantity * t.entry_price * inst.maker_fee)
    refused = [r for r in result.rejections if r.reason == "post_only_would_take"]
    assert refused
    for r in refused:  # long-only: the open was already at or below the buy limit
        i = ts_index[r.ts]
        assert float(btc_1m.open[i]) <= float(btc_1m.close[i - 1])
    # an expired entry's next bar never traded through the close
    for r in expired:
        i = ts_index[r.ts]
        limit = float(btc_1m.close[i - 1])
        assert not (float(btc_1m.low[i]) < limit and float(btc_1m.high[i]) > limit)
    assert np.isfinite(result.equity).all()
