"""`tradeloop paper --regime`: the regime model runs in the paper kernel on real recorded
Binance 1m data (local WebSocket replay and REST venue servers), the status file shows it, the
run stores its name and version, a restart keeps that version and another one is refused."""

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
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.venue import LocalVenueServer, VenueData

START_MS = 1_747_699_200_000 + 1_000 * 60_000  # inside the 1m recording
MINUTE_MS = 60_000
RUN_ID = "paper-sma_cross-binance-BTCUSDT-1m"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """``btc_regime`` v0001 and a later v0002, fitted on real 1m bars after the replay."""
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    first = int(np.searchsorted(bars.ts, (START_MS + 2_000 * MINUTE_MS) * 1_000_000))
    train: BarArrays = bars.slice(first, first + 4_000)
    root = tmp_path_factory.mktemp("models")
    save_regime_model(root, "btc_regime", HMMDetector(3, seed=0, n_init=1).fit(train))
    save_regime_model(root, "btc_regime", HMMDetector(2, seed=1, n_init=1).fit(train))
    return root


def _paper(
    rest: LocalVenueServer, ws: ReplayServer, tmp_path: Path, until_ms: int, *regime: str
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(TRADELOOP_BINANCE_URL=rest.url, TRADELOOP_BINANCE_WS_URL=ws.url)
    env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
    cmd = [
        sys.executable, "-m", "tradeloop", "paper", "--strategy", "sma_cross",
        "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m", "-pfast=5",
        "-pslow=20", "--risk", "default", "--state", str(tmp_path / "state.db"),
        "--status-file", str(tmp_path / "status.json"), "--warmup", "150",
        "--until", to_iso(until_ms * 1_000_000), *regime,
    ]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def _replay(venue: VenueData, start_ms: int, end_ms: int) -> ReplayServer:
    return ReplayServer(
        venue, start_ms=start_ms, end_ms=end_ms, bar_interval_s=0.01, advance_when_idle=False
    )


def test_paper_with_a_regime_model_shows_stores_and_keeps_it(
    rest: LocalVenueServer, venue: VenueData, models: Path, tmp_path: Path
) -> None:
    # Arrange
    first_end = START_MS + 100 * MINUTE_MS
    second_end = first_end + 30 * MINUTE_MS
    opts = ("--registry", str(models), "--regime-transition", "5m", "--regime-confirm", "2")
    # Act: a run with v0001; a restart naming only the model; one naming v0002
    with _replay(venue, START_MS, first_end) as ws:
        first = _paper(rest, ws, tmp_path, first_end - MINUTE_MS, "--regime", "btc_regime:1", *opts)
    status = json.loads((tmp_path / "status.json").read_text())
    with _replay(venue, first_end, second_end) as ws:
        again = _paper(rest, ws, tmp_path, second_end - MINUTE_MS, "--regime", "btc_regime", *opts)
        status2 = json.loads((tmp_path / "status.json").read_text())
        refused = _paper(
            rest, ws, tmp_path, second_end - MINUTE_MS, "--regime", "btc_regime:v0002", *opts
        )
    # Assert: the regime ran on every bar (warm-up and live) and the status shows it
    assert first.returncode == 0, first.stderr[-3000:]
    regime = status["regime"]
    assert (regime["name"], regime["version"], regime["method"]) == ("btc_regime", "v0001", "hmm")
    assert regime["states"] == ["low_vol", "normal", "high_vol"]
    assert regime["bars"] == 150 + 100  # every warm-up bar and every live bar
    assert regime["current"]["label"] in regime["states"]
    assert 0.0 <= regime["current"]["exposure"] <= 1.0
    assert regime["transition_ns"] == 5 * MINUTE_MS * 1_000_000
    # the restart kept v0001 (v0002 is newer); naming v0002 is refused
    assert again.returncode == 0, again.stderr[-3000:]
    assert status2["regime"]["version"] == "v0001"
    assert refused.returncode == 2
    assert "regime" in refused.stderr
    assert "v0002" in refused.stderr
    with open_state_store(tmp_path / "state.db") as store:
        meta = store.load_run_meta(RUN_ID)
    assert meta is not None
    assert meta["regime"] == {
        "name": "btc_regime", "version": "v0001", "transition": "5m", "confirm_bars": 2,
        "exposures": {},
    }  # fmt: skip
