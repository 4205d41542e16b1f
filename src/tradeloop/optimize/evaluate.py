"""One trial: a parameter set run as a backtest on data loaded once.

:class:`TrialEvaluator` holds the bars, the instrument, the trading rules and the strategy
class; :meth:`TrialEvaluator.evaluate` runs one parameter set through the fast path
(:mod:`tradeloop.optimize.fast_sma`) when it applies, or through the event kernel
(:func:`~tradeloop.engine.runner.run_on_bars`) otherwise, and returns the run's metrics plus
the per-block return sums the overfitting statistics need (PBO, combinatorial purged CV). No
file is written per trial.

Workers share the bars without copying: :func:`share_bars` writes the columns once as ``.npy``
files and :func:`open_shared_bars` maps them read-only, so every process reads the same pages.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.engine.config import RunConfig
from tradeloop.optimize.objective import metric_row

__all__ = [
    "FINE_BLOCKS",
    "EvalSpec",
    "TrialEvaluator",
    "TrialResult",
    "block_stats",
    "open_shared_bars",
    "peak_rss_mb",
    "share_bars",
]

logger = logging.getLogger(__name__)

#: the bar returns of every trial are summed over this many equal blocks
FINE_BLOCKS = 64
_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
#: the sma_cross parameters the fast kernel reproduces (others must keep their defaults)
_FAST_PARAMS = frozenset({"fast", "slow", "size", "short", "stop_loss", "take_profit"})


@dataclass(frozen=True, slots=True)
class EvalSpec:
    """What every worker needs to evaluate trials (small and picklable; the bars travel apart).

    Attributes
    ----------
    strategy
        Strategy reference (registry name, ``pkg.mod:Class`` or ``file.py:Class``).
    strategies_dir
        Folder of user strategies.
    config
        The trading rules of every trial.
    instrument
        The traded instrument (tick size, fees).
    fast
        ``auto`` uses the vectorized kernel where it applies, ``off`` always the event kernel.
    keep_equity
        Return each trial's equity curve (walk-forward and reports need it; sweeps do not).
    """

    strategy: str
    strategies_dir: str | None
    config: RunConfig
    instrument: Instrument
    fast: str = "auto"
    keep_equity: bool = False


@dataclass(slots=True)
class TrialResult:
    """What one trial produced.

    ``metrics`` is None and ``error`` says why for a parameter set the strategy refuses (e.g.
    ``fast >= slow``). ``blocks`` holds (count, sum, sum of squares) of the bar returns over
    :data:`FINE_BLOCKS` equal blocks.
    """

    params: dict[str, Any]
    metrics: dict[str, float] | None
    error: str | None = None
    blocks: list[list[float]] = field(default_factory=list)
    engine: str = "event"
    seconds: float = 0.0
    equity: np.ndarray | None = None
    ts: np.ndarray | None = None


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Read from ``VmHWM`` where the system has it: ``ru_maxrss`` survives ``exec`` on Linux, so
    a spawned worker would report its parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def block_stats(equity: np.ndarray, initial: float, blocks: int = FINE_BLOCKS) -> list[list[float]]:
    """(count, sum, sum of squares) of the bar returns of ``equity`` over ``blocks`` equal blocks.

    Returns are measured as the metrics measure them (the first from ``initial``); non-finite
    ones are left out.

    >>> stats = block_stats(np.array([11.0, 11.0, 12.1]), 10.0, 3)
    >>> [[round(x, 12) for x in block] for block in stats]
    [[1.0, 0.1, 0.01], [1.0, 0.0, 0.0], [1.0, 0.1, 0.01]]
    """
    series = np.concatenate(([initial], np.asarray(equity, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.diff(series) / series[:-1]
    ok = np.isfinite(rets)
    rets = np.where(ok, rets, 0.0)
    edges = np.linspace(0, rets.size, blocks + 1).astype(np.int64)
    n = np.add.reduceat(ok.astype(np.float64), edges[:-1]) if rets.size else np.zeros(blocks)
    s = np.add.reduceat(rets, edges[:-1]) if rets.size else np.zeros(blocks)
    q = np.add.reduceat(rets * rets, edges[:-1]) if rets.size else np.zeros(blocks)
    empty = edges[1:] == edges[:-1]  # reduceat repeats a value for an empty block
    n[empty] = s[empty] = q[empty] = 0.0
    return [[float(a), float(b), float(c)] for a, b, c in zip(n, s, q, strict=True)]


def share_bars(bars: BarArrays, folder: Path) -> Path:
    """Write ``bars`` as ``.npy`` columns under ``folder`` (once) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in _COLUMNS:
        np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(bars, name)))
    (folder / "meta.json").write_text(
        json.dumps({"symbol": bars.symbol, "timeframe": bars.timeframe}), encoding="utf-8"
    )
    return folder


def open_shared_bars(folder: str | Path) -> BarArrays:
    """Map the columns :func:`share_bars` wrote, read-only and without copying."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    cols = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _COLUMNS}
    return BarArrays(meta["symbol"], meta["timeframe"], **cols)


class TrialEvaluator:
    """Evaluates parameter sets of one strategy on one symbol's bars (see the module doc).

    Raises
    ------
    ConfigError
        On construction, for an unknown strategy.
    """

    def __init__(self, spec: EvalSpec, bars: BarArrays) -> None:
        from tradeloop.optimize.fast_sma import fast_path_blocker
        from tradeloop.strategy.registry import load_strategy_class

        self.spec = spec
        self.bars = bars
        self.strategy_cls = load_strategy_class(spec.strategy, spec.strategies_dir)
        self.blocker: str | None = (
            "disabled (--fast off)"
            if spec.fast == "off"
            else fast_path_blocker(self.strategy_cls, bars, spec.instrument, spec.config)
        )
        self._sweep: Any = None
        self.bar_ns = timeframe_ns(spec.config.timeframe or bars.timeframe)

    @property
    def engine(self) -> str:
        """``fast`` when the vectorized kernel runs the trials, else ``event``."""
        return "fast" if self.blocker is None else "event"

    def with_config(self, config: RunConfig) -> TrialEvaluator:
        """The same evaluator on other trading rules (e.g. a walk-forward window)."""
        from dataclasses import replace

        return TrialEvaluator(replace(self.spec, config=config), self.bars)

    def evaluate(self, params: dict[str, Any]) -> TrialResult:
        """Run one parameter set; a set the strategy refuses gives a result with ``error``.

        Raises
        ------
        StrategyError
            When the strategy's own code raises.
        """
        started = time.perf_counter()
        try:
            strategy = self.strategy_cls(**params)
        except ConfigError as exc:
            return TrialResult(dict(params), None, error=str(exc))
        full = dict(strategy.params)
        config = self.spec.config
        if self.blocker is None and self._fast_exact(full):
            run = self._sweep.run(full, keep=self.spec.keep_equity)
            equity, ts, metrics, engine = run.equity, run.ts, run.metrics, "fast"
        else:
            from tradeloop.engine.runner import run_on_bars

            result = run_on_bars(
                strategy,
                {self.bars.symbol: self.bars},
                config,
                instruments={self.bars.symbol: self.spec.instrument},
            )
            equity, ts, metrics, engine = result.equity, result.ts, result.metrics, "event"
        return TrialResult(
            params=dict(params),
            metrics=metric_row(metrics),
            blocks=block_stats(equity, config.balance),
            engine=engine,
            seconds=time.perf_counter() - started,
            equity=np.array(equity) if self.spec.keep_equity else None,
            ts=np.asarray(ts) if self.spec.keep_equity else None,
        )

    def backtest(self, params: dict[str, Any]) -> Any:
        """The full :class:`~tradeloop.engine.runner.BacktestResult` of one parameter set
        through the event kernel (trades, equity), e.g. for a trial's files.

        Raises
        ------
        ConfigError
            For a parameter set the strategy refuses.
        """
        from tradeloop.engine.runner import run_on_bars

        return run_on_bars(
            self.strategy_cls(**params),
            {self.bars.symbol: self.bars},
            self.spec.config,
            instruments={self.bars.symbol: self.spec.instrument},
        )

    def _fast_exact(self, params: dict[str, Any]) -> bool:
        from tradeloop.optimize.fast_sma import SmaCrossSweep

        declared = self.strategy_cls.parameters()
        for name, value in params.items():
            if name not in _FAST_PARAMS and value != declared[name].default:
                return False  # e.g. a trailing stop: the event kernel runs it
        if self._sweep is None:
            self._sweep = SmaCrossSweep(self.bars, self.spec.instrument, self.spec.config)
        return bool(self._sweep.exact(int(params["fast"]), int(params["slow"])))
