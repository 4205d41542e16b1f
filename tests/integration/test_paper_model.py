"""`tradeloop paper --model`: the run stores the model's name and version, a restart keeps that
version, and `tradeloop parity` replays with it. Real recorded Binance 1m data through the
local WebSocket replay and REST venue servers; the model is trained here on the same real
series by the project's own training code."""

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
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.parity import parity_report
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.model import MetaModel
from tradeloop.ml.registry import ModelCatalog
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.store.state import open_state_store
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.venue import LocalVenueServer, VenueData

START_MS = 1_747_699_200_000 + 1_000 * 60_000  # 2025-05-20 16:40 UTC, inside the 1m recording
MINUTE_MS = 60_000
RUN_ID = "paper-sma_cross-binance-BTCUSDT-1m"
PARAMS = {"fast": 5, "slow": 20, "short": True, "stop_loss": 0.004}


def _train(bars: BarArrays, n_estimators: int) -> MetaModel:
    plain = run_on_bars(SmaCross(**PARAMS), {bars.symbol: bars}, RunConfig(fee=0.001))
    events, sides = primary_events(plain, bars)
    cfg = TrainConfig(estimator_params={"n_estimators": n_estimators}, n_splits=3, horizon=30)
    return train_meta_model(bars, events, sides, cfg).model


@pytest.fixture(scope="module")
def btc_1m(shared_data: Path) -> BarArrays:
    """Real BTC/USDT 1m bars after the replayed stretch (the model's training data)."""
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    first = int(np.searchsorted(bars.ts, (START_MS + 2_000 * MINUTE_MS) * 1_000_000))
    return bars.slice(first, first + 8_000)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, btc_1m: BarArrays) -> Path:
    """A model folder with ``btc1m`` v0001 (the run's) and a later, different v0002."""
    root = tmp_path_factory.mktemp("models")
    registry = ModelCatalog(root).registry("btc1m")
    registry.save(_train(btc_1m, 40), bars=btc_1m)
    registry.save(_train(btc_1m.slice(0, 4_000), 15), bars=btc_1m.slice(0, 4_000))
    return root


def _paper(
    rest: LocalVenueServer, ws: ReplayServer, tmp_path: Path, until_ms: int, *model: str
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(TRADELOOP_BINANCE_URL=rest.url, TRADELOOP_BINANCE_WS_URL=ws.url)
    env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
    params = [f"-p{k}={str(v).lower()}" for k, v in PARAMS.items()]
    cmd = [
        sys.executable, "-m", "tradeloop", "paper", "--strategy", "sma_cross",
        "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m", *params,
        "--risk", "default", "--state", str(tmp_path / "state.db"),
        "--status-file", str(tmp_path / "status.json"), "--warmup", "150",
        "--until", to_iso(until_ms * 1_000_000), *model,
    ]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def _replay(venue: VenueData, start_ms: int, end_ms: int) -> ReplayServer:
    return ReplayServer(
        venue, start_ms=start_ms, end_ms=end_ms, bar_interval_s=0.01, advance_when_idle=False
    )


def test_paper_with_a_model_stores_it_restarts_with_it_and_parity_replays_with_it(
    rest: LocalVenueServer, venue: VenueData, models: Path, tmp_path: Path
) -> None:
    # Arrange: entries below 0.45 are dropped (about a quarter on this stretch)
    first_end = START_MS + 300 * MINUTE_MS
    second_end = first_end + 200 * MINUTE_MS
    with_model = ("--model", "btc1m:v0001", "--registry", str(models), "--min-confidence", "0.45")
    # Act: a run with v0001, then a restart naming only the model (v0002 is newer by then)
    with _replay(venue, START_MS, first_end) as ws:
        first = _paper(rest, ws, tmp_path, first_end - MINUTE_MS, *with_model)
    status = json.loads((tmp_path / "status.json").read_text())
    with _replay(venue, first_end, second_end) as ws:
        again = _paper(
            rest, ws, tmp_path, second_end - MINUTE_MS,
            "--model", "btc1m", "--registry", str(models), "--min-confidence", "0.45",
        )  # fmt: skip
        refused = _paper(
            rest, ws, tmp_path, second_end - MINUTE_MS,
            "--model", "btc1m:v0002", "--registry", str(models), "--min-confidence", "0.45",
        )  # fmt: skip
    # Assert: the first run scored its entries with v0001 and stored it
    assert first.returncode == 0, first.stderr[-3000:]
    assert status["model"]["name"] == "btc1m"
    assert status["model"]["version"] == "v0001"
    counts = status["model"]["counts"]
    assert counts["enriched"] > counts["dropped"] > 0  # weak entries dropped, others sized
    assert "model btc1m:v0001" in first.stdout
    # the restart kept v0001; naming v0002 is refused like any other changed setting
    assert again.returncode == 0, again.stderr[-3000:]
    assert "model btc1m:v0001" in again.stdout
    assert refused.returncode == 2
    assert "v0002" in refused.stderr
    assert "model" in refused.stderr
    with open_state_store(tmp_path / "state.db") as store:
        meta = store.load_run_meta(RUN_ID)
        assert meta is not None
        assert meta["model"] == {
            "name": "btc1m", "version": "v0001", "min_confidence": 0.45, "use_toxicity": False,
        }  # fmt: skip
        report = parity_report(store, RUN_ID)
        # the replay really uses the stored model: another model under the same name and
        # version gives other orders
        other = tmp_path / "other_models"
        ModelCatalog(other).registry("btc1m").save(ModelCatalog(models).load("btc1m:v0002")[0])
        mismatch = parity_report(store, RUN_ID, registry=other)
    assert report.live_bars == 500
    assert report.orders >= 5
    assert report.differences == []
    assert mismatch.differences
    state = str(tmp_path / "state.db")
    parity = subprocess.run(
        [sys.executable, "-m", "tradeloop", "parity", RUN_ID, "--state", state],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert "identical" in parity.stdout


def test_paper_with_an_unknown_model_is_refused_before_trading(
    rest: LocalVenueServer, venue: VenueData, models: Path, tmp_path: Path
) -> None:
    end = START_MS + 5 * MINUTE_MS
    with _replay(venue, START_MS, end) as ws:
        proc = _paper(rest, ws, tmp_path, end, "--model", "eth1m", "--registry", str(models))
    assert proc.returncode == 2
    assert "Available: btc1m" in proc.stderr
    with open_state_store(tmp_path / "state.db") as store:
        assert store.load_run_meta(RUN_ID) is None


def test_enrichment_of_a_stored_run_uses_its_name_version_and_threshold(models: Path) -> None:
    from tradeloop.engine.paper import enrichment_of

    meta = {
        "model": {"name": "btc1m", "version": "v0001", "min_confidence": 0.3,
                  "use_toxicity": True},
        "model_registry": str(models),
    }  # fmt: skip
    enrichment = enrichment_of(meta, threads=2)
    assert isinstance(enrichment, ModelEnrichment)
    assert (enrichment.spec, enrichment.min_confidence) == ("btc1m:v0001", 0.3)
    assert enrichment.use_toxicity
    assert enrichment.threads == 2
    assert enrichment_of({"model": None}) is None
