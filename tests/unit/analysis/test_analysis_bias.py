"""Bias checks on constructed trade histories with known patterns, and on a clean one."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.analysis.bias import BiasConfig, BiasKind, detect_biases
from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.position import ExitReason, Trade

HOUR = 3_600_000_000_000


def mk(
    trade_id: str,
    entry_h: int,
    exit_h: int,
    pnl: float,
    *,
    quantity: float = 1.0,
    direction: int = 1,
    price: float = 100.0,
) -> Trade:
    """A trade on X entered and exited on hour boundaries."""
    return Trade(
        id=trade_id,
        symbol="X",
        direction=direction,
        quantity=quantity,
        entry_ts=entry_h * HOUR,
        entry_price=price,
        exit_ts=exit_h * HOUR,
        exit_price=price + direction * pnl / quantity,
        entry_fee=0.0,
        exit_fee=0.0,
        pnl=pnl,
        exit_reason=ExitReason.SIGNAL,
    )


def quiet_prices(n: int = 600, seed: int = 0) -> np.ndarray:
    """Closes of a quiet random walk (0.1% per hour)."""
    steps = np.random.default_rng(seed).normal(0.0, 0.001, n)
    return 100.0 * np.exp(np.cumsum(steps))


def bars_from(close: np.ndarray) -> BarArrays:
    ts = np.arange(close.size, dtype=np.int64) * HOUR
    return BarArrays("X", "1h", ts, close, close, close, close, np.ones(close.size))


def clean_history() -> list[Trade]:
    """Equal-size trades every 24 hours, wins and losses alternating."""
    return [mk(f"c{k}", 24 * k + 5, 24 * k + 15, 10.0 if k % 2 else -8.0) for k in range(20)]


# --------------------------------------------------------------------------- clean


def test_bias_clean_history_has_no_findings() -> None:
    # Arrange
    prices = {"X": bars_from(quiet_prices())}
    # Act
    report = detect_biases(clean_history(), HOUR, prices=prices)
    # Assert
    assert report.findings == ()
    assert report.counts() == {"fomo": 0, "revenge": 0, "overconfidence": 0, "overtrading": 0}
    assert all(report.checked.values())


def test_bias_without_prices_fomo_is_not_checked() -> None:
    # Arrange / Act
    report = detect_biases(clean_history(), HOUR)
    # Assert
    assert report.checked["fomo"] is False
    assert report.checked["revenge"] is True


# --------------------------------------------------------------------------- FOMO


def fomo_prices() -> np.ndarray:
    """Quiet, then +10% over the 10 hours before hour 300."""
    close = quiet_prices()
    close[290:] *= np.exp(np.linspace(0.0, np.log(1.10), 10).tolist() + [np.log(1.10)] * 300)[
        : close.size - 290
    ]
    return close


def test_bias_fomo_flags_long_entry_after_big_up_move() -> None:
    # Arrange: a long entered at hour 300 (after the jump) and one at hour 100 (quiet)
    prices = {"X": bars_from(fomo_prices())}
    trades = [mk("quiet", 100, 110, 1.0), mk("chase", 300, 310, -5.0)]
    # Act
    found = detect_biases(trades, HOUR, prices=prices).by_kind(BiasKind.FOMO)
    # Assert
    assert [f.trade_ids for f in found] == [("chase",)]
    assert found[0].ts == 300 * HOUR
    assert found[0].score > 2.5
    assert "+10" in found[0].message or "+9" in found[0].message


def test_bias_fomo_ignores_entries_against_the_move() -> None:
    # Arrange: a short after the up move is not chasing it
    prices = {"X": bars_from(fomo_prices())}
    trades = [mk("fade", 300, 310, 2.0, direction=-1)]
    # Act
    found = detect_biases(trades, HOUR, prices=prices).by_kind(BiasKind.FOMO)
    # Assert
    assert found == []


def test_bias_fomo_threshold_is_configurable() -> None:
    # Arrange
    prices = {"X": bars_from(fomo_prices())}
    trades = [mk("chase", 300, 310, -5.0)]
    # Act
    strict = detect_biases(trades, HOUR, prices=prices, config=BiasConfig(fomo_zscore=1000.0))
    # Assert
    assert strict.by_kind(BiasKind.FOMO) == []


# --------------------------------------------------------------------------- revenge


def test_bias_revenge_flags_bigger_quick_reentry_after_loss() -> None:
    # Arrange: loser closes at hour 10, a 2x re-entry at hour 11; a win closes at 40 and a
    # 2x entry follows at 41 (not revenge: no loss)
    trades = [
        mk("loss", 0, 10, -20.0),
        mk("again", 11, 20, 5.0, quantity=2.0),
        mk("win", 30, 40, 5.0),
    ]
    # Act
    found = detect_biases(trades, HOUR).by_kind(BiasKind.REVENGE)
    # Assert
    assert [f.trade_ids for f in found] == [("loss", "again")]
    assert found[0].score == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("gap_hours", "quantity"),
    [(10, 2.0), (1, 1.0)],  # too late; not bigger
)
def test_bias_revenge_needs_both_speed_and_size(gap_hours: int, quantity: float) -> None:
    # Arrange
    trades = [
        mk("loss", 0, 10, -20.0),
        mk("next", 10 + gap_hours, 30, 5.0, quantity=quantity),
    ]
    # Act
    found = detect_biases(trades, HOUR).by_kind(BiasKind.REVENGE)
    # Assert
    assert found == []


# --------------------------------------------------------------------------- overconfidence


def test_bias_overconfidence_flags_size_jump_after_win_streak() -> None:
    # Arrange: three winners of size 1, then a size-2 entry
    trades = [
        mk("w1", 0, 5, 3.0),
        mk("w2", 10, 15, 3.0),
        mk("w3", 20, 25, 3.0),
        mk("big", 30, 35, -9.0, quantity=2.0),
    ]
    # Act
    found = detect_biases(trades, HOUR).by_kind(BiasKind.OVERCONFIDENCE)
    # Assert
    assert [f.trade_ids for f in found] == [("w1", "w2", "w3", "big")]
    assert found[0].score == pytest.approx(2.0)


def test_bias_overconfidence_needs_the_configured_streak() -> None:
    # Arrange: only two winners before the bigger entry
    trades = [mk("w1", 0, 5, 3.0), mk("w2", 10, 15, 3.0), mk("big", 30, 35, 1.0, quantity=2.0)]
    # Act
    default = detect_biases(trades, HOUR).by_kind(BiasKind.OVERCONFIDENCE)
    loose = detect_biases(trades, HOUR, config=BiasConfig(overconfidence_streak=2))
    # Assert
    assert default == []
    assert len(loose.by_kind(BiasKind.OVERCONFIDENCE)) == 1


def test_bias_compounding_a_fixed_fraction_is_not_overconfidence() -> None:
    # Arrange: all-in trades whose notional grows only because equity grew (+10% each)
    trades, equity = [], []
    eq = 1_000.0
    for k in range(4):
        trades.append(mk(f"t{k}", 10 * k, 10 * k + 5, eq * 0.1, quantity=eq / 100.0))
        eq *= 1.1
    ts = np.arange(45, dtype=np.int64) * HOUR
    for h in range(45):
        done = sum(1 for t in trades if t.exit_ts is not None and t.exit_ts <= h * HOUR)
        equity.append(1_000.0 * 1.1**done)
    # Act
    by_equity = detect_biases(
        trades, HOUR, equity_ts=ts, equity=np.array(equity), initial_equity=1_000.0
    )
    by_notional = detect_biases(trades, HOUR, config=BiasConfig(overconfidence_size_ratio=1.2))
    # Assert: relative to equity every entry is 100%; in notional the 4th is 1.21x
    assert by_equity.by_kind(BiasKind.OVERCONFIDENCE) == []
    assert len(by_notional.by_kind(BiasKind.OVERCONFIDENCE)) == 1


# --------------------------------------------------------------------------- overtrading


def test_bias_overtrading_flags_the_burst_window_and_its_trades() -> None:
    # Arrange: one trade a day for 20 days, plus 7 more on day 10 (hours 240-247)
    trades = clean_history()
    trades += [mk(f"b{k}", 241 + k, 242 + k, 1.0) for k in range(7)]
    # Act
    found = detect_biases(trades, HOUR).by_kind(BiasKind.OVERTRADING)
    # Assert: the 24 bars from hour 241 hold the burst and c10 (hour 245): 8 entries; the
    # window from c9 (hour 221) reaches b0-b3 and joins the same burst
    assert len(found) == 1
    burst = {f"b{k}" for k in range(7)}
    assert burst <= set(found[0].trade_ids) <= burst | {"c9", "c10"}
    assert found[0].message.startswith("8 entries within 24 bars")
    assert found[0].ts in (221 * HOUR, 241 * HOUR)


def test_bias_overtrading_respects_min_trades() -> None:
    # Arrange: same burst, but windows need 20 entries to count
    trades = clean_history() + [mk(f"b{k}", 241 + k, 242 + k, 1.0) for k in range(7)]
    # Act
    found = detect_biases(trades, HOUR, config=BiasConfig(overtrading_min_trades=20)).by_kind(
        BiasKind.OVERTRADING
    )
    # Assert
    assert found == []


# --------------------------------------------------------------------------- report


def test_bias_report_is_json_friendly_and_time_ordered() -> None:
    # Arrange: revenge at hour 11 and overconfidence at hour 30 together
    trades = [
        mk("w1", 0, 5, 3.0),
        mk("w2", 6, 8, 3.0),
        mk("w3", 9, 9, 3.0),
        mk("loss", 9, 10, -20.0),
        mk("again", 11, 20, 5.0, quantity=2.0),
    ]
    # Act
    report = detect_biases(trades, HOUR)
    data = report.to_dict()
    # Assert
    assert [f.ts for f in report.findings] == sorted(f.ts for f in report.findings)
    assert data["counts"]["revenge"] == 1
    assert data["findings"][0]["time"].startswith("1970-01-01T")
    assert data["config"]["revenge_window_bars"] == 3


@pytest.mark.parametrize("bad", [{"fomo_lookback_bars": 0}, {"revenge_size_ratio": -1.0}])
def test_bias_config_rejects_bad_thresholds(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        BiasConfig(**bad)  # type: ignore[arg-type]
