"""The README's bar-by-bar example strategy trades what it says: the SMA 10/30 crossover,
the same trades as the precomputed ``SmaCross`` (no entry at the end of the warm-up)."""

from __future__ import annotations

import re
from pathlib import Path

from tradeloop.data import load_ohlcv
from tradeloop.engine import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy import Strategy
from tradeloop.strategy.examples.sma_cross import SmaCross

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_strategy(class_name: str) -> type[Strategy]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    source = next(b for b in blocks if f"class {class_name}(" in b)
    namespace: dict[str, object] = {}
    exec(compile(source, f"README.md:{class_name}", "exec"), namespace)
    cls = namespace[class_name]
    assert isinstance(cls, type)
    assert issubclass(cls, Strategy)
    return cls


def test_readme_bar_by_bar_cross_trades_as_sma_cross(shared_data: Path) -> None:
    # Arrange: the oracle's synthetic 100k bars, whose first cross comes well after warm-up
    bars = load_ohlcv(shared_data / "oracles/synth_100000.parquet", symbol="SYN/USD").bars
    config = RunConfig(fee=0.0)
    # Act
    readme = run_on_bars(_readme_strategy("BarByBarCross")(), {"SYN/USD": bars}, config)
    reference = run_on_bars(SmaCross(fast=10, slow=30), {"SYN/USD": bars}, config)

    # Assert
    def times(result: object) -> list[tuple[int, int]]:
        return [(t.entry_ts, t.exit_ts) for t in result.trades]  # type: ignore[attr-defined]

    assert len(reference.trades) > 1000
    assert times(readme) == times(reference)
