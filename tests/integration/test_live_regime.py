"""`tradeloop live --regime`: the regime model reaches the live kernel exactly as in paper (the
same PaperConfig, session and kernel step), on recorded Binance 1m bars through the local
WebSocket replay and the local Binance trading venue (signed REST orders, user-data stream)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.time import to_iso
from tradeloop.data.loader import load_ohlcv
from tradeloop.ml.regimes import HMMDetector, save_regime_model
from tradeloop.store.state import open_state_store
from tradeloop.testing.replay import ReplayServer, status_answered
from tradeloop.testing.venue import VenueData
from tradeloop.testing.venue.trading_server import API_KEY, API_SECRET, LocalBinanceExchange

START_MS = 1_747_699_200_000 + 1_000 * 60_000  # inside the 1m recording
MINUTE_MS = 60_000
WARMUP, LIVE = 100, 60


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """``btc_regime`` v0001, fitted on real 1m bars after the replayed ones."""
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    first = int(np.searchsorted(bars.ts, (START_MS + 2_000 * MINUTE_MS) * 1_000_000))
    train: BarArrays = bars.slice(first, first + 4_000)
    root = tmp_path_factory.mktemp("models")
    save_regime_model(root, "btc_regime", HMMDetector(3, seed=0, n_init=1).fit(train))
    return root


def test_live_runs_the_regime_model_in_its_kernel_like_paper(
    venue: VenueData, models: Path, tmp_path: Path
) -> None:
    # Arrange
    end_ms = START_MS + LIVE * MINUTE_MS
    env = dict(os.environ)
    env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
    cmd = [
        sys.executable, "-m", "tradeloop", "live", "--strategy", "sma_cross",
        "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m", "-pfast=5",
        "-pslow=20", "-pshort=false", "--risk", "default", "--state", str(tmp_path / "state.db"),
        "--status-file", str(tmp_path / "status.json"), "--warmup", str(WARMUP),
        "--until", to_iso((end_ms - MINUTE_MS) * 1_000_000), "--run-id", "live-regime",
        "--registry", str(models), "--regime", "btc_regime", "--regime-transition", "5m",
        "--regime-confirm", "2", "--regime-exposure", "high_vol=0.25",
    ]  # fmt: skip
    # Act
    with (
        ReplayServer(
            venue,
            start_ms=START_MS,
            end_ms=end_ms,
            bar_interval_s=0.01,
            advance_when_idle=False,
            client_ready=status_answered(tmp_path / "status.json"),
        ) as ws,
        LocalBinanceExchange(venue, lambda: ws.cursor_ms) as ex,
    ):
        env.update(
            TRADELOOP_BINANCE_URL=ex.url,
            TRADELOOP_BINANCE_WS_URL=ws.url,
            TRADELOOP_BINANCE_API_KEY=API_KEY,
            TRADELOOP_BINANCE_API_SECRET=API_SECRET,
        )
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        unanswered = ws.client_timeouts
    # Assert: a live run whose kernel filtered every warm-up and live bar with the model
    assert run.returncode == 0, run.stderr[-3000:]
    assert unanswered == 0  # the venue's clock never left a bar live had not answered
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["mode"] == "live"
    regime = status["regime"]
    assert (regime["name"], regime["version"], regime["method"]) == ("btc_regime", "v0001", "hmm")
    assert regime["states"] == ["low_vol", "normal", "high_vol"]
    assert regime["bars"] == WARMUP + LIVE
    assert regime["transition_ns"] == 5 * MINUTE_MS * 1_000_000
    assert regime["confirm_bars"] == 2
    assert regime["exposures"]["high_vol"] == 0.25
    assert regime["current"]["label"] in regime["states"]
    with open_state_store(tmp_path / "state.db") as store:
        meta = store.load_run_meta("live-regime")
        state = store.load_run("live-regime")
    assert meta is not None
    assert meta["regime"] == {
        "name": "btc_regime", "version": "v0001", "transition": "5m", "confirm_bars": 2,
        "exposures": {"high_vol": 0.25},
    }  # fmt: skip
    # the transition manager's state is journaled with the step (a restart continues it)
    assert state is not None
    stored = state.engine_state["inputs"]["regime"]
    assert stored["bars_seen"] == WARMUP + LIVE
    assert stored["manager"]["label"] == regime["current"]["label"]
    assert stored["manager"]["switches"] == regime["switches"] >= 1
    assert API_SECRET not in run.stdout + run.stderr
