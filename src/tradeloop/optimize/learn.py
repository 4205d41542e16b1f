"""The learning loop: what the journal says, what walk-forward proposes, and applying it.

* :func:`record_backtest` runs a backtest with the step publishing its events on an in-process
  bus and the :class:`~tradeloop.engine.signal_journal.SignalJournal` recording them (the same
  recorder ``tradeloop run`` attaches in paper and live).
* :func:`learn_report` — per strategy: signals, executed, rejected (by the risk engine's
  reason), closed trades, P&L and hit rate, broken down by regime (the realised-volatility
  tercile of the bars at the signal, when the data is given), UTC hour and symbol.
* :func:`propose` re-runs walk-forward optimisation on recent data and writes a proposal: the
  config diff, the expected out-of-sample figures (the walk-forward's stitched OOS) against the
  current parameters' on the same segments, and the deflated Sharpe ratio. Nothing is applied.
* :func:`apply_proposal` writes an accepted proposal's parameters into ``loop.toml`` (checked by
  the loop's own parser first, replaced atomically, comments kept), which a running
  ``tradeloop run`` picks up through its hot-reload path, and appends an audit record.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import math
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.time import to_iso
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec
from tradeloop.store.analytics import AnalyticsStore

__all__ = [
    "PROPOSAL_KIND",
    "apply_proposal",
    "learn_report",
    "propose",
    "record_backtest",
    "volatility_regimes",
]

logger = logging.getLogger(__name__)

PROPOSAL_KIND = "tradeloop.proposal/v1"
_DAY_NS = 86_400 * 10**9


def record_backtest(
    strategy: str,
    data: DataSpec,
    store: AnalyticsStore,
    *,
    params: dict[str, Any] | None = None,
    config: RunConfig | None = None,
    source: str | None = None,
    strategies_dir: str | Path | None = "strategies",
    allow_data_issues: bool = False,
) -> dict[str, Any]:
    """Backtest ``strategy`` with every signal journaled in ``store``; return the counts.

    The data passes the data gate as a backtest's does (``allow_data_issues`` to run anyway).

    Raises
    ------
    ConfigError
        For an unknown strategy or parameter.
    DataError
        For a malformed data file, or data that fails the data check.
    """
    from tradeloop.bus.base import InProcessBus
    from tradeloop.core.instrument import Instrument
    from tradeloop.engine.kernel import BacktestEngine
    from tradeloop.engine.market import MarketData
    from tradeloop.engine.runner import _instrument, load_data
    from tradeloop.engine.signal_journal import SignalJournal
    from tradeloop.strategy.registry import load_strategy_class

    config = config or RunConfig()
    strat = load_strategy_class(strategy, strategies_dir)(**dict(params or {}))
    (loaded,) = load_data([data], gate=True, allow_data_issues=allow_data_issues)
    symbol = loaded.bars.symbol
    instrument: Instrument = _instrument(loaded, config)
    base = config.timeframe or (strat.timeframes[0] if strat.timeframes else loaded.timeframe)
    market = MarketData(
        {symbol: loaded.bars},
        {symbol: instrument},
        base,
        tuple(strat.timeframes[1:]),
        start=config.start,
        end=config.end,
    )
    run_id = source or f"backtest-{strat.strategy_name()}-{uuid.uuid4().hex[:8]}"
    bus = InProcessBus()
    journal = SignalJournal(store, bus, run_id, "backtest")
    journal.attach()
    try:
        result = BacktestEngine(strat, market, config, bus=bus, run_id=run_id).run()
    finally:
        journal.detach()
    return {
        "source": run_id,
        "signals": len(result.signals),
        "trades": len(result.closed_trades),
        **journal.counts(),
    }


def volatility_regimes(bars: BarArrays, window: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Label each bar ``low``/``mid``/``high`` by the tercile of its trailing realised volatility
    (std of the last ``window`` log returns; ``warmup`` before that). Returns (ts, labels)."""
    close = np.asarray(bars.close, dtype=np.float64)
    rets = np.diff(np.log(close), prepend=np.log(close[0]))
    csum = np.cumsum(np.concatenate(([0.0], rets)))
    csq = np.cumsum(np.concatenate(([0.0], rets * rets)))
    n = close.size
    vol = np.full(n, np.nan)
    if n > window:
        s = csum[window:] - csum[:-window]
        q = csq[window:] - csq[:-window]
        var = np.maximum(q / window - (s / window) ** 2, 0.0)
        vol[window - 1 :] = np.sqrt(var)
    labels = np.full(n, "warmup", dtype=object)
    ok = np.isfinite(vol)
    if ok.any():
        lo, hi = np.quantile(vol[ok], [1 / 3, 2 / 3])
        labels[ok] = np.where(vol[ok] <= lo, "low", np.where(vol[ok] <= hi, "mid", "high"))
    return np.asarray(bars.ts), labels


def _group(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], str(r[key])), []).append(r)
    out = []
    for (strategy, value), items in sorted(groups.items()):
        out.append({"strategy": strategy, key: value, **_stats(items)})
    return out


def _stats(items: list[dict[str, Any]]) -> dict[str, Any]:
    executed = [r for r in items if r["executed"]]
    rejected = [r for r in items if not r["executed"]]
    closed = [r for r in executed if r["pnl"] is not None and r["action"] != "close"]
    wins = sum(1 for r in closed if r["pnl"] > 0)
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[str(r["reason"])] = reasons.get(str(r["reason"]), 0) + 1
    return {
        "signals": len(items),
        "executed": len(executed),
        "rejected": len(rejected),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "closed_trades": len(closed),
        "pnl": math.fsum(r["pnl"] for r in closed),
        "hit_rate": wins / len(closed) if closed else math.nan,
    }


def learn_report(
    store: AnalyticsStore, *, source: str | None = None, bars: BarArrays | None = None
) -> dict[str, Any]:
    """Per-strategy P&L and hit rates, by regime, UTC hour and symbol (see the module doc).

    ``bars`` (the traded symbol's data) labels each signal's volatility regime; without them
    the regime is ``n/a``.
    """
    rows = store.journal(source)
    if bars is not None:
        ts, labels = volatility_regimes(bars)
    for r in rows:
        r["hour"] = f"{(int(r['ts']) // 3_600_000_000_000) % 24:02d}"
        if bars is not None and r["symbol"] == bars.symbol:
            i = int(np.searchsorted(ts, int(r["ts"]), side="right")) - 1
            r["regime"] = str(labels[i]) if i >= 0 else "before data"
        else:
            r["regime"] = "n/a"
    strategies = sorted({r["strategy"] for r in rows})
    return {
        "source": source,
        "rows": len(rows),
        "by_strategy": [
            {"strategy": s, **_stats([r for r in rows if r["strategy"] == s])} for s in strategies
        ],
        "by_regime": _group(rows, "regime"),
        "by_hour": _group(rows, "hour"),
        "by_symbol": _group(rows, "symbol"),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strategy_entry(cfg: Any, label: str) -> Any:
    for s in cfg.strategies:
        if (s.label or s.name) == label:
            return s
    names = [s.label or s.name for s in cfg.strategies]
    raise ConfigError(f"loop config has no strategy {label!r}; it runs {names}")


def propose(
    config_path: Path,
    label: str,
    data: DataSpec,
    param_specs: list[str],
    out_dir: Path,
    *,
    recent_days: float | None = None,
    folds: int = 4,
    ratio: float = 3.0,
    mode: str = "rolling",
    method: str = "grid",
    trials: int | None = None,
    objective: str = "sharpe",
    min_trades: int = 0,
    fee: float = 0.0,
    strategies_dir: Path | None = Path("strategies"),
    allow_data_issues: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Write a parameter proposal for strategy ``label`` of ``config_path`` (never applied).

    The data passes the data gate as a backtest's does (``allow_data_issues`` to go on).

    Raises
    ------
    ConfigError
        For an unknown strategy label, bad parameter specs, or a window where no trial meets
        the constraints.
    DataError
        For malformed data, or no bars in the recent window.
    """
    from tradeloop.analysis.run_analysis import bar_returns, metrics_dict
    from tradeloop.analysis.validation import deflated_sharpe
    from tradeloop.engine.loop_config import load_loop_config
    from tradeloop.engine.runner import _instrument, load_data
    from tradeloop.optimize.evaluate import EvalSpec, TrialEvaluator
    from tradeloop.optimize.objective import Constraints, parse_objectives
    from tradeloop.optimize.space import SearchSpace
    from tradeloop.optimize.study import StudyOptions
    from tradeloop.optimize.walkforward import stitch_fixed, walk_forward
    from tradeloop.strategy.registry import load_strategy_class

    cfg = load_loop_config(config_path)
    entry = _strategy_entry(cfg, label)
    strategy_cls = load_strategy_class(entry.name, strategies_dir)
    current = dict(strategy_cls(**entry.params).params)
    space = SearchSpace.parse(param_specs, strategy_cls.parameters())
    (loaded,) = load_data([data], gate=True, allow_data_issues=allow_data_issues)
    bars = loaded.bars
    if recent_days is not None:
        start = int(bars.ts[-1]) - int(recent_days * _DAY_NS)
        lo = int(np.searchsorted(bars.ts, start, side="left"))
        if len(bars) - lo < 10:
            raise DataError(
                f"fewer than 10 bars in the last {recent_days} days", file=str(data.path)
            )
        bars = bars.slice(lo, len(bars))
    config = RunConfig(fee=fee)
    spec = EvalSpec(
        entry.name,
        str(strategies_dir) if strategies_dir else None,
        config,
        _instrument(loaded, config),
    )
    evaluator = TrialEvaluator(spec, bars)
    options = StudyOptions(
        method=method,
        trials=trials,
        objectives=parse_objectives([objective]),
        constraints=Constraints(min_trades=min_trades),
    )
    wf = walk_forward(evaluator, space, options, folds=folds, ratio=ratio, mode=mode)
    proposed = {**current, **wf.chosen[-1]}
    _, current_metrics = stitch_fixed(evaluator, wf.folds, current)
    trials_run = int(sum(wf.trials_per_fold))
    sig = deflated_sharpe(bar_returns(wf.equity, config.balance), max(1, trials_run))
    diff = {k: [current.get(k), v] for k, v in proposed.items() if current.get(k) != v}
    created = datetime.now(tz=UTC)
    pid = f"{created.strftime('%Y%m%dT%H%M%SZ')}-{label}-{uuid.uuid4().hex[:6]}"
    proposal = {
        "kind": PROPOSAL_KIND,
        "id": pid,
        "created": created.isoformat().replace("+00:00", "Z"),
        "status": "proposed",
        "config": str(config_path),
        "config_sha256": _sha256(config_path),
        "strategy": label,
        "strategy_name": entry.name,
        "current": current,
        "proposed": proposed,
        "diff": diff,
        "expected_oos": metrics_dict(wf.metrics),
        "current_oos": metrics_dict(current_metrics),
        "deflated_sharpe": {"dsr": sig.dsr, "psr": sig.psr, "n_trials": sig.n_trials},
        "walk_forward": wf.to_dict(bars.ts),
        "data": {
            "path": str(data.path),
            "start": to_iso(int(bars.ts[0])),
            "end": to_iso(int(bars.ts[-1])),
            "bars": len(bars),
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{pid}.json"
    _write_json(path, proposal)
    logger.info("proposal %s written to %s (not applied)", pid, path)
    return path, proposal


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from tradeloop.engine.output import json_safe

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2), encoding="utf-8")
    os.replace(tmp, path)


def apply_proposal(
    proposal_path: Path,
    *,
    config_path: Path | None = None,
    audit_path: Path | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """Apply a proposal to ``loop.toml`` (see the module docstring); return the audit record.

    Raises
    ------
    ConfigError
        For a file that is not a proposal, one already applied, a config whose strategy
        parameters changed since the proposal (stale), or a result the loop's parser refuses
        (the config file is left untouched).
    """
    import tomlkit

    from tradeloop.engine.loop_config import load_loop_config

    try:
        proposal = json.loads(proposal_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{proposal_path}: not a readable proposal: {exc}") from None
    if not isinstance(proposal, dict) or proposal.get("kind") != PROPOSAL_KIND:
        raise ConfigError(f"{proposal_path}: not a tradeloop proposal (kind {PROPOSAL_KIND})")
    if proposal.get("status") == "applied":
        raise ConfigError(f"{proposal_path}: proposal {proposal['id']} was applied already")
    target = config_path or Path(proposal["config"])
    label = proposal["strategy"]
    running = load_loop_config(target)
    entry = _strategy_entry(running, label)
    from tradeloop.strategy.registry import load_strategy_class

    cls = load_strategy_class(entry.name, target.parent / "strategies")
    in_force = dict(cls(**entry.params).params)
    if in_force != proposal["current"]:
        raise ConfigError(
            f"{target}: the parameters of {label!r} changed since proposal {proposal['id']} "
            f"(now {in_force}, proposed against {proposal['current']}); propose again"
        )
    if not proposal["diff"]:
        raise ConfigError(f"proposal {proposal['id']} changes nothing")
    before_text = target.read_text(encoding="utf-8")
    doc = tomlkit.parse(before_text)
    for table in doc.get("strategies", []):
        if (table.get("label") or table.get("name")) == label:
            params = tomlkit.inline_table()
            for k, v in proposal["proposed"].items():
                if k in entry.params or k in proposal["diff"]:
                    params[k] = v
            table["params"] = params
            break
    after_text = tomlkit.dumps(doc)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    staged.write_text(after_text, encoding="utf-8")
    try:
        load_loop_config(staged)  # the loop's own check, before the file changes
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    record = {
        "ts": datetime.now(tz=UTC).isoformat().replace("+00:00", "Z"),
        "proposal": proposal["id"],
        "config": str(target),
        "strategy": label,
        "before": proposal["current"],
        "after": proposal["proposed"],
        "diff": proposal["diff"],
        "sha256_before": hashlib.sha256(before_text.encode()).hexdigest(),
        "sha256_after": hashlib.sha256(after_text.encode()).hexdigest(),
        "user": user or getpass.getuser(),
    }
    audit = audit_path or target.with_name(f"{target.stem}.audit.jsonl")
    with audit.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    proposal = {**proposal, "status": "applied", "applied": record["ts"]}
    _write_json(proposal_path, proposal)
    logger.info("proposal %s applied to %s", record["proposal"], target)
    return record
