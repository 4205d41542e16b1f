"""`tradeloop live --config loop.toml`: `[regime]` reaches the live session's PaperConfig exactly
as `tradeloop run`'s, and the live session opens its kernel through the paper session's one
path (which adds the regime source to the kernel's side inputs)."""

from __future__ import annotations

from pathlib import Path

from tradeloop.engine.live_session import LiveLoopSession, LiveOptions, LiveSession
from tradeloop.engine.loop import LoopSession
from tradeloop.engine.loop_config import load_loop_config
from tradeloop.engine.paper import PaperSession
from tradeloop.engine.regime import RegimeOptions

LOOP = """
[run]
id = "live-regime-loop"
symbols = ["BTC/USDT"]
timeframe = "1m"

[[strategies]]
name = "sma_cross"

[regime]
name = "btc_regime:v0001"
registry = "my_models"
transition = "10m"
confirm_bars = 4
exposures = { high_vol = 0.2, uncertain = 0.4 }
"""


def test_live_loop_session_takes_the_regime_section_like_run(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "loop.toml"
    path.write_text(LOOP, encoding="utf-8")
    cfg = load_loop_config(path)
    # Act
    live = LiveLoopSession(cfg, config_path=path, live=LiveOptions(broker="ccxt"))
    paper = LoopSession(cfg, config_path=path)
    # Assert: the same regime options as `tradeloop run`, the registry resolved beside the file
    assert live.config.regime == paper.config.regime
    assert live.config.regime == RegimeOptions(
        "btc_regime:v0001",
        tmp_path / "my_models",
        transition="10m",
        confirm_bars=4,
        exposures={"high_vol": 0.2, "uncertain": 0.4},
    )
    # one kernel path: live sessions neither build their own kernel nor drop the regime
    for cls in (LiveLoopSession, LiveSession):
        assert cls._open_run is PaperSession._open_run
        assert cls._resolve_regime is PaperSession._resolve_regime
