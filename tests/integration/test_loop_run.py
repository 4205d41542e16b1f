"""`tradeloop run` end to end: two strategies (one trading the liquidation zones) on one
account, the real Redis bus with a raw redis-py subscriber (not our code), a local replay of
the recorded Binance USD-M klines, the real SQLite state store and DuckDB analytics file, and
kill -9 three times mid-run. Every stage is counted; nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradeloop.bus.base import InProcessBus
from tradeloop.bus.events import TOPICS, event_codec
from tradeloop.core.time import to_iso
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.inputs import ZoneSource
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.loop import build_strategy, feedback_loop_for
from tradeloop.engine.loop_config import load_loop_config
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.paper import instrument_from_dict
from tradeloop.engine.parity import trade_key
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.registry import ModelCatalog
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.store.state import open_state_store
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.raw_redis import RawSubscriber
from tradeloop.testing.replay import ReplayServer, status_answered
from tradeloop.testing.venue import LocalVenueServer, VenueData

START_MS = 1_748_169_180_000 + 600 * 60_000  # inside the USD-M 1m recording (2025-05-25 ...)
RUN_ID = "loop-e2e"
SYMBOL = "BTC/USDT:USDT"
PERP_1M = "crypto_1m/binance_usdm_2025/BTC_USDT_USDT-1m-futures.feather"
MIN_CONFIDENCE = 0.3


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A registry with ``perp1m`` v0001: the project's own training on sma_cross's entries of
    the perp bars after the replayed stretch."""
    bars = load_ohlcv(shared_data / PERP_1M).bars
    bars = bars.slice(3_000, 11_000)
    plain = run_on_bars(SmaCross(fast=5, slow=20, short=True), {bars.symbol: bars}, RunConfig())
    events, sides = primary_events(plain, bars)
    cfg = TrainConfig(estimator_params={"n_estimators": 30}, n_splits=3, horizon=30)
    root = tmp_path_factory.mktemp("models")
    ModelCatalog(root).registry("perp1m").save(
        train_meta_model(bars, events, sides, cfg).model, bars=bars
    )
    return root


def _loop_toml(tmp_path: Path, redis_url: str, until_ms: int, models: Path) -> Path:
    path = tmp_path / "loop.toml"
    path.write_text(
        f"""
[run]
id = "{RUN_ID}"
exchange = "binance"
market = "perp"
symbols = ["{SYMBOL}"]
timeframe = "1m"
balance = 10000
state = "state.db"
analytics = "analytics.duckdb"
status = "status.json"
warmup_bars = 120
until = "{to_iso(until_ms * 1_000_000)}"

[bus]
url = "{redis_url}"

[risk]
profile = "permissive"

[model]
name = "perp1m"
registry = "{models}"
min_confidence = {MIN_CONFIDENCE}

[[strategies]]
name = "zone_magnet"
weight = 0.5
params = {{ max_distance = 0.004, min_share = 0.0, stop_loss = 0.0015 }}

[[strategies]]
name = "sma_cross"
weight = 0.5
params = {{ fast = 5, slow = 20 }}

[feedback]
adapt_every = 2
adapt_interval_s = 3600
min_component_samples = 1
alpha = 0.5
""",
        encoding="utf-8",
    )
    return path


def _env(rest: LocalVenueServer, ws: ReplayServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TRADELOOP_BINANCE_URL=rest.url, TRADELOOP_BINANCE_WS_URL=ws.url)
    env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
    return env


def _cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "tradeloop", "run", "--config", str(config)]


def test_the_loop_runs_every_stage_survives_kill_9_and_closes_the_feedback_loop(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path, redis_url: str, models: Path
) -> None:
    # Arrange
    end_ms = START_MS + 1_400 * 60_000
    until = end_ms - 60_000
    config = _loop_toml(tmp_path, redis_url, until, models)
    check = subprocess.run([*_cmd(config), "--check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr[-2000:]
    rng = random.Random(11)
    with (
        RawSubscriber(redis_url, [*TOPICS, "liquidation:weights"]) as raw,
        ReplayServer(
            venue,
            start_ms=START_MS,
            end_ms=end_ms,
            bar_interval_s=0.005,
            advance_when_idle=False,
            binance_market="linear",
            # the market moves on once the run has acted on a bar (not on a wall clock that a
            # loaded machine lets run out before the last process is up)
            client_ready=status_answered(tmp_path / "status.json"),
        ) as ws,
    ):
        env = _env(rest, ws)
        # Act: kill -9 three times at random moments mid-run (after a random number of bars,
        # within a bar's step), the market running on for a random stretch while the run is
        # dead (a gap the restart backfills over REST), then run to the end
        for _ in range(3):
            proc = subprocess.Popen(
                _cmd(config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            assert ws.wait_for_clients(1, timeout=120), "the run did not subscribe"
            assert ws.wait_for((ws.cursor_ms or START_MS) + rng.randint(20, 80) * 60_000, 120)
            time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is not None:
                pytest.fail(f"run exited early: {proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            ws.skip(rng.randint(200, 300))
        final = subprocess.run(_cmd(config), env=env, capture_output=True, text=True, timeout=300)
        unanswered = ws.client_timeouts
        finished_at = time.monotonic()
        time.sleep(0.5)  # the last pub/sub messages reach the raw subscriber
    # Assert: a clean finish with the stage table
    assert final.returncode == 0, final.stderr[-4000:]
    assert unanswered == 0  # the market never left a bar the run had not answered
    assert "stages" in final.stdout
    status = json.loads((tmp_path / "status.json").read_text())
    stages = status["stages"]
    with open_state_store(str(tmp_path / "state.db")) as store:
        state = store.load_run(RUN_ID)
        assert state is not None
        assert state.portfolio is not None
        closed = [t for t in state.portfolio.trades if t.exit_ts is not None]
        fills = store.load_fills(RUN_ID)
        rows = store.load_bars(RUN_ID, SYMBOL, "1m")
    # nothing doubled: unique trades, unique fills per order and reason, bars once each
    assert len({t.id for t in closed}) == len(closed)
    assert len({(f.order_id, f.reason, f.ts, f.side) for f in fills}) == len(fills)
    assert len({r[0] for r in rows}) == len(rows)
    assert rows[-1][0] == until * 1_000_000
    # both strategies traded, and the zone strategy through its side input
    owners = {t.id.split(":")[0] for t in closed}
    assert owners == {"zone_magnet", "sma_cross"}, owners
    assert len(closed) >= 20
    # every stage counted (cumulative over the restarts)
    live_bars = sum(1 for r in rows if r[6])
    assert stages["bars"] == live_bars
    assert stages["trades"] == len(closed)
    assert stages["fills"] == len(fills)
    assert stages["orders"] >= stages["trades"]
    assert stages["signals"] >= stages["orders"]
    # the model scored every entry and dropped the weak ones before the risk gate
    assert stages["enriched"] + stages["dropped_by_model"] <= stages["signals"]
    assert stages["dropped_by_model"] > 0
    assert stages["enriched"] > 0
    # one feedback row per closed trade, keyed by the opening signal's id: none lost, none twice
    analytics = AnalyticsStore(tmp_path / "analytics.duckdb", read_only=True, hold=False)
    feedback = [r for r in analytics.feedback() if r["source"] == RUN_ID]
    assert sorted(r["signal_id"] for r in feedback) == sorted(t.id for t in closed)
    assert stages["feedback_rows"] == len(closed)
    # the weights moved while the run was going, and the final process saw the latest version
    weights = raw.on("liquidation:weights")
    assert weights, "no weight version was broadcast"
    assert weights[0][1] < finished_at
    codec = event_codec()
    assert stages["weight_version"] >= 2
    # the raw subscriber got the closed trades of the last process, decodable, with signal ids
    trade_msgs = [codec.decode(d).message for d, _ in raw.on("tradeloop.trades")]
    assert trade_msgs
    assert {m.signal_id for m in trade_msgs} <= {t.id for t in closed}  # type: ignore[attr-defined]
    # and the killed-and-restarted run equals one uninterrupted pass over the same bars
    reference = _uninterrupted(config, tmp_path)
    assert [trade_key(t) for t in closed] == [trade_key(t) for t in reference.portfolio.trades]
    assert state.portfolio.positions == reference.portfolio.positions


def _uninterrupted(config: Path, tmp_path: Path) -> LiveKernel:
    """The stored bars replayed in one go through a fresh kernel with the loop's strategies,
    zone input and adapting weights (its own analytics file)."""
    cfg = load_loop_config(config)
    bus, zones = InProcessBus(), ZoneSource(top=cfg.zones.top)
    feedback = feedback_loop_for(cfg, AnalyticsStore(tmp_path / "reference.duckdb"), bus, zones)
    feedback.attach()
    with open_state_store(str(tmp_path / "state.db")) as store:
        meta = store.load_run_meta(RUN_ID)
        assert meta is not None
        instruments = {s: instrument_from_dict(d) for s, d in meta["instruments"].items()}
        rows = store.load_bars(RUN_ID, SYMBOL, "1m")
    assert cfg.model is not None
    kernel = LiveKernel(
        build_strategy(cfg),
        instruments,
        "1m",
        RunConfig(balance=10_000),
        run_id=RUN_ID,
        bus=bus,
        inputs=[zones],
        enrichment=ModelEnrichment.from_registry(
            "perp1m:v0001", cfg.model.registry, min_confidence=MIN_CONFIDENCE
        ),
    )
    kernel.warm_up({SYMBOL: [r[:6] for r in rows if not r[6]]})
    for ts, o, h, low, c, v, _live in (r for r in rows if r[6]):
        kernel.on_price(SYMBOL, ts, o, o, o, o)
        kernel.on_bar(SYMBOL, ts, o, h, low, c, v)
    return kernel
