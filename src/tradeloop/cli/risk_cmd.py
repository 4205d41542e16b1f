"""``tradeloop risk ...``: risk reports of runs, VaR backtests, signed overrides.

Commands
--------
``tradeloop risk report RUN``
    The risk report of a run (a run folder, a run id under ``output/runs`` or ``latest``):
    exposure, leverage, VaR/CVaR, correlation clusters, limit usage, rejections by reason and
    kill-switch events; ``--json``/``--csv`` export it.
``tradeloop risk var-backtest --data FILE``
    Rolling VaR breaches over a price history and the Kupiec test.
``tradeloop risk override issue|apply|log``
    Sign an override token, verify and queue one (audited), show the audit log.

Functions for the ``backtest`` command: :func:`backtest_risk_engine`
and :func:`write_run_risk_report`.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail
from tradeloop.core.errors import ConfigError, DataError, TradeloopError
from tradeloop.risk.overrides import OVERRIDABLE_LIMITS

if TYPE_CHECKING:
    from tradeloop.risk.config import RiskConfig
    from tradeloop.risk.engine import RiskEngine
    from tradeloop.risk.report import RiskReport

__all__ = [
    "backtest_risk_engine",
    "register",
    "report_from_run_dir",
    "risk_app",
    "write_run_risk_report",
]

risk_app = typer.Typer(
    help="Risk: run reports, VaR backtests and signed overrides.", no_args_is_help=True
)
override_app = typer.Typer(
    help="Signed, expiring overrides (resume from HALTED, or a temporary limit), audited.",
    no_args_is_help=True,
)
risk_app.add_typer(override_app, name="override")

console = Console()
err_console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``risk`` command group to ``app``."""
    app.add_typer(risk_app, name="risk")


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


# --------------------------------------------------------------------------- backtest wiring


def backtest_risk_engine(path: Path | None = None) -> RiskEngine:
    """Return the risk engine of ``tradeloop backtest [--risk PATH]``.

    Without a path: the permissive profile (instrument rules only, results as without a
    gate). With one: that file's profile and changes.

    Raises
    ------
    ConfigError
        If the file cannot be read or holds an invalid setting.
    """
    from tradeloop.risk.config import RiskConfig, load_risk_config
    from tradeloop.risk.engine import RiskEngine

    return RiskEngine(load_risk_config(path) if path is not None else RiskConfig.permissive())


def write_run_risk_report(engine: RiskEngine, folder: str | Path) -> dict[str, Path]:
    """Write the risk report of a finished run into its folder; return the paths by name."""
    from tradeloop.risk.report import write_risk_report

    return write_risk_report(engine.report(), folder)


# --------------------------------------------------------------------------- run folders


def _run_folder(run: str) -> Path:
    candidates = [Path(run), Path("output") / "runs" / run, Path("output") / run]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise ConfigError(f"no run folder {run!r} (looked in {', '.join(str(c) for c in candidates)})")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def report_from_run_dir(folder: Path) -> RiskReport:
    """Return the run's ``risk_report.json``, or a report rebuilt from its record.

    A rebuilt report (runs written without the risk files) holds the profile of the run
    record, VaR/CVaR of the equity curve's bar returns, the positions open at the end and the
    rejection count; it has no correlation or kill-switch history.

    Raises
    ------
    DataError
        If the folder holds no run record (``equity.parquet`` or ``equity.csv``).
    """
    import numpy as np

    from tradeloop.risk.report import REPORT_FILES, RiskReport, read_risk_report
    from tradeloop.risk.var import var_estimates

    stored = folder / REPORT_FILES[0]
    if stored.is_file():
        return read_risk_report(stored)
    from tradeloop.analysis.runs import read_equity
    from tradeloop.core.time import to_iso

    if not (folder / "equity.parquet").is_file() and not (folder / "equity.csv").is_file():
        raise DataError("not a run folder: no equity.parquet or equity.csv", file=str(folder))
    summary: dict[str, Any] = {}
    if (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    risk_cfg = (summary.get("config") or {}).get("risk") or {}
    curve = read_equity(folder)
    if not curve.equity.size:
        raise DataError("the equity curve has no rows", file=str(folder))
    equity = np.asarray(curve.equity, dtype=np.float64)
    cash = float(curve.cash[-1]) if curve.cash.size else math.nan
    last_equity = float(equity[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = equity[1:] / equity[:-1] - 1.0
    rets = rets[np.isfinite(rets)]
    var_rows: list[dict[str, float]] = []
    for est in var_estimates(rets * last_equity, (0.95, 0.99)):
        row = est.as_dict()
        for key in ("historical_var", "historical_cvar", "parametric_var", "parametric_cvar"):
            row[key + "_pct"] = row[key] / last_equity if last_equity > 0 else math.nan
        var_rows.append(row)
    exposure: list[dict[str, Any]] = []
    trades_file = folder / "trades.csv"
    if trades_file.is_file():
        open_trades = [t for t in _read_csv(trades_file) if not t.get("exit_time")]
        held = last_equity - cash if math.isfinite(cash) else math.nan
        for t in open_trades:
            size = float(t["size"])
            side = t.get("side", "long")
            sign = 1.0 if side == "long" else -1.0
            price = float(t["entry_price"])
            if t.get("pnl") and size > 0:
                # the open trade's P&L is marked at the last close, net of its entry fee
                fee = float(t.get("fees") or 0.0)
                price += (float(t["pnl"]) + fee) / (sign * size)
            elif len(open_trades) == 1 and math.isfinite(held) and size > 0:
                price = held / (sign * size)  # equity - cash is the position at the last close
            exposure.append(
                {
                    "symbol": t.get("symbol", ""),
                    "side": side,
                    "quantity": size,
                    "price": price,
                    "notional": size * price,
                    "weight": size * price / last_equity if last_equity > 0 else math.nan,
                }
            )
    gross = sum(p["notional"] for p in exposure)
    net = sum(p["notional"] * (1 if p["side"] == "long" else -1) for p in exposure)
    rejections: list[dict[str, str]] = []
    if (folder / REPORT_FILES[2]).is_file():
        rejections = _read_csv(folder / REPORT_FILES[2])
    by_reason: dict[str, int] = {}
    for r in rejections:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
    if not rejections and summary.get("rejected_orders"):
        by_reason = {"(not recorded by reason)": int(summary["rejected_orders"])}
    return RiskReport(
        time=to_iso(int(curve.ts[-1])),
        profile=str(risk_cfg.get("profile", "unknown")),
        source=str(risk_cfg.get("source", "")),
        state="unknown",
        state_cause=None,
        equity=last_equity,
        cash=cash,
        exposure=exposure,
        gross_exposure=gross,
        net_exposure=net,
        leverage=gross / last_equity if last_equity > 0 else math.nan,
        var=var_rows,
        var_horizon="1 bar (equity curve)",
        var_observations=int(rets.size),
        rejections=rejections,
        rejections_by_reason=by_reason,
    )


def _num(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        if pct:
            return f"{value:.2%}"
        return f"{value:,.2f}" if abs(value) >= 1_000 else f"{value:.4g}"
    return str(value)


def _print_report(report: RiskReport) -> None:
    head = Table(title=f"Risk report · {report.time}", show_header=False)
    head.add_column("item", style="cyan")
    head.add_column("value", justify="right")
    profile = report.profile + (f" ({report.source})" if report.source else "")
    head.add_row("profile", profile)
    head.add_row("state", report.state + (f" ({report.state_cause})" if report.state_cause else ""))
    head.add_row("equity", _num(report.equity))
    head.add_row("cash", _num(report.cash))
    head.add_row("gross exposure", _num(report.gross_exposure))
    head.add_row("net exposure", _num(report.net_exposure))
    lev = _num(report.leverage)
    if report.max_leverage is not None:
        lev += f" (max {report.max_leverage:g}x)"
    head.add_row("leverage", lev)
    head.add_row("orders accepted", str(report.accepted_orders))
    if report.clusters:
        head.add_row("correlation clusters", "; ".join(" ".join(c) for c in report.clusters))
    console.print(head)
    if report.exposure:
        table = Table(title="Exposure")
        for col in ("symbol", "side", "quantity", "price", "notional", "weight"):
            table.add_column(col, justify="left" if col in ("symbol", "side") else "right")
        for p in report.exposure:
            table.add_row(
                str(p["symbol"]),
                str(p["side"]),
                _num(float(p["quantity"])),
                _num(float(p["price"])),
                _num(float(p["notional"])),
                _num(p["weight"], pct=True),
            )
        console.print(table)
    if report.var:
        table = Table(title=f"VaR / CVaR ({report.var_horizon}, {report.var_observations} bars)")
        for col in ("level", "hist VaR", "hist CVaR", "param VaR", "param CVaR", "hist VaR %"):
            table.add_column(col, justify="right")
        for v in report.var:
            table.add_row(
                f"{v['level']:.0%}",
                _num(v["historical_var"]),
                _num(v["historical_cvar"]),
                _num(v["parametric_var"]),
                _num(v["parametric_cvar"]),
                _num(v.get("historical_var_pct"), pct=True),
            )
        console.print(table)
    if report.limits:
        table = Table(title="Limit usage")
        for col in ("limit", "value", "max", "usage"):
            table.add_column(col, justify="left" if col == "limit" else "right")
        for lim in report.limits:
            integer = lim["name"] == "max_open_positions"
            pct = (
                not integer
                and lim["name"] != "max_gross_leverage"
                and "correlation" not in lim["name"]
            )
            table.add_row(
                str(lim["name"]),
                _num(lim["value"], pct=pct),
                _num(lim["limit"], pct=pct) if lim["limit"] is not None else "off",
                _num(lim["usage"], pct=True),
            )
        console.print(table)
    table = Table(title=f"Rejections ({sum(report.rejections_by_reason.values())})")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, n in report.rejections_by_reason.items():
        table.add_row(reason, str(n))
    console.print(table)
    if report.events:
        table = Table(title="Kill-switch events")
        for col in ("time", "from", "to", "cause", "detail"):
            table.add_column(col)
        for ev in report.events:
            table.add_row(ev["time"], ev["from"], ev["to"], ev["cause"], ev["detail"])
        console.print(table)


@risk_app.command("report")
def report_cmd(
    run: Annotated[str, typer.Argument(help="Run folder, run id (output/runs/ID) or 'latest'.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Also write the report as CSV here.")
    ] = None,
) -> None:
    """Show the risk report of a backtest run (exposure, VaR, limits, rejections, events)."""
    try:
        report = report_from_run_dir(_run_folder(run))
        _print_report(report)
        if json_out is not None:
            console.print(f"json: {report.to_json(json_out)}")
        if csv_out is not None:
            console.print(f"csv: {report.to_csv(csv_out)}")
    except TradeloopError as exc:
        raise _fail(exc) from None


@risk_app.command("var-backtest")
def var_backtest_cmd(
    data: Annotated[Path, typer.Option("--data", "-d", help="OHLCV file (CSV, Parquet, feather).")],
    window: Annotated[int, typer.Option(help="Bars of history behind each forecast.")] = 500,
    level: Annotated[
        list[float] | None, typer.Option(help="VaR level(s) (repeatable; default 0.95 and 0.99).")
    ] = None,
) -> None:
    """Count VaR breaches over a price history and run the Kupiec test (is VaR calibrated?)."""
    import numpy as np

    from tradeloop.data.loader import load_ohlcv
    from tradeloop.risk.backtest_var import var_backtest

    try:
        bars = load_ohlcv(data).bars
        close = np.asarray(bars.close, dtype=np.float64)
        returns = close[1:] / close[:-1] - 1.0
        table = Table(title=f"VaR backtest · {bars.symbol} {bars.timeframe} · window {window}")
        table.add_column("method", no_wrap=True, min_width=10)
        for col in ("level", "forecasts", "breaches", "rate", "expected", "Kupiec LR", "p", "ok"):
            table.add_column(col, justify="right")
        table.caption = "ok: calibrated at 5% (Kupiec proportion-of-failures test)"
        for lv in level or [0.95, 0.99]:
            for method in ("historical", "parametric"):
                k = var_backtest(returns, lv, window, method).kupiec
                table.add_row(
                    method,
                    f"{lv:.1%}",
                    f"{k.observations:,}",
                    f"{k.breaches:,}",
                    f"{k.breach_rate:.3%}",
                    f"{k.expected_rate:.3%}",
                    f"{k.lr:.2f}",
                    f"{k.p_value:.4f}",
                    "no" if k.rejects(0.05) else "yes",
                )
        console.print(table)
    except TradeloopError as exc:
        raise _fail(exc) from None


# --------------------------------------------------------------------------- overrides


def _secret(env: str) -> bytes:
    from tradeloop.risk.overrides import secret_from_env

    secret = secret_from_env(env)
    if secret is None:
        raise ConfigError(f"set the override secret in the environment variable {env}")
    return secret


def _config(path: Path | None) -> RiskConfig:
    from tradeloop.risk.config import RiskConfig, load_risk_config

    return load_risk_config(path) if path is not None else RiskConfig.default()


@override_app.command("issue")
def override_issue(
    action: Annotated[str, typer.Option(help="'resume' (leave HALTED) or 'set-limit'.")],
    who: Annotated[str, typer.Option(help="Who asks for the override.")],
    why: Annotated[str, typer.Option(help="Why (goes to the audit log).")],
    ttl: Annotated[str, typer.Option(help="Validity, e.g. 30m, 4h.")] = "1h",
    limit: Annotated[
        str | None, typer.Option(help=f"For set-limit: one of {', '.join(OVERRIDABLE_LIMITS)}.")
    ] = None,
    value: Annotated[
        str | None, typer.Option(help="For set-limit: the temporary value, or 'off'.")
    ] = None,
    not_before: Annotated[
        str | None, typer.Option(help="Valid from (UTC ISO time; default now).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Risk TOML (secret variable, max TTL).")
    ] = None,
) -> None:
    """Sign an override token with the secret from the environment and print it."""
    from tradeloop.core.time import parse_time
    from tradeloop.risk.config import duration_ns
    from tradeloop.risk.overrides import issue_token

    try:
        cfg = _config(config)
        secret = _secret(cfg.overrides.secret_env)
        kind = action.replace("-", "_")
        start = parse_time(not_before, field="--not-before") if not_before else time.time_ns()
        lifetime = duration_ns(ttl, field_name="--ttl")
        if lifetime > duration_ns(cfg.overrides.max_ttl):
            raise ConfigError(
                f"--ttl {ttl} is longer than overrides.max_ttl {cfg.overrides.max_ttl}"
            )
        number: float | None = None
        if kind == "set_limit":
            if value is None:
                raise ConfigError("set-limit needs --value (a number, or 'off')")
            if value.strip().lower() != "off":
                try:
                    number = float(value)
                except ValueError:
                    raise ConfigError(f"--value must be a number or 'off', got {value!r}") from None
        token = issue_token(
            secret,
            who=who,
            why=why,
            action=kind,
            expires_at=start + lifetime,
            not_before=start,
            limit=limit,
            value=number,
        )
    except TradeloopError as exc:
        raise _fail(exc) from None
    console.print(token, soft_wrap=True, highlight=False)


@override_app.command("apply")
def override_apply(
    token: Annotated[str, typer.Argument(help="The signed override token.")],
    inbox: Annotated[
        Path, typer.Option(help="Queue file the risk engine reads (JSON lines).")
    ] = Path("risk_overrides.jsonl"),
    at: Annotated[
        str | None,
        typer.Option(
            help="When the engine applies it (UTC ISO time; default now). "
            "A past time replays the override in a backtest."
        ),
    ] = None,
    audit_log: Annotated[
        Path | None, typer.Option(help="Audit log (default: overrides.audit_log of --config).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Risk TOML.")] = None,
) -> None:
    """Verify a token now (refusals are audited) and queue it for the risk engine."""
    from tradeloop.core.time import parse_time, to_iso
    from tradeloop.risk.config import duration_ns
    from tradeloop.risk.overrides import (
        AuditLog,
        Override,
        audit_key,
        secret_from_env,
        verify_token,
    )

    try:
        cfg = _config(config)
        log_path = audit_log or (Path(cfg.overrides.audit_log) if cfg.overrides.audit_log else None)
        if log_path is None:
            raise ConfigError("give --audit-log or set overrides.audit_log in --config")
        secret = secret_from_env(cfg.overrides.secret_env)
        audit = AuditLog(log_path, key=audit_key(secret) if secret is not None else None)
        when = parse_time(at, field="--at") if at else time.time_ns()
        result = verify_token(
            token,
            secret,
            when,
            max_ttl_ns=duration_ns(cfg.overrides.max_ttl),
        )
        if not isinstance(result, Override):
            claims = dict(result.claims or {})
            audit.append(
                {
                    "at": to_iso(when),
                    "result": "refused",
                    "reason": result.reason,
                    "detail": result.detail,
                    "who": claims.get("who"),
                    "what": claims.get("action"),
                    "why": claims.get("why"),
                    "token_id": claims.get("id"),
                    "verified": False,
                }
            )
            err_console.print(f"[bold red]override refused:[/] {result.reason} ({result.detail})")
            raise typer.Exit(1)
        if result.id in _queued_ids(inbox):
            console.print(
                f"already queued: {result.describe()} (token {result.id}) in {inbox}; "
                "nothing changed"
            )
            return
        audit.append(result.audit_record(to_iso(when), "queued"))
        inbox.parent.mkdir(parents=True, exist_ok=True)
        with inbox.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"at": when, "token": token}) + "\n")
    except TradeloopError as exc:
        raise _fail(exc) from None
    console.print(
        f"queued: {result.describe()} by {result.who} until {to_iso(result.expires_at)} -> {inbox}"
    )


def _queued_ids(inbox: Path) -> set[str]:
    """Ids of the tokens already in ``inbox`` (applying a token twice queues it once)."""
    from tradeloop.risk.overrides import read_token_claims

    if not inbox.is_file():
        return set()
    ids: set[str] = set()
    for line in inbox.read_text(encoding="utf-8").splitlines():
        try:
            claims = read_token_claims(str(json.loads(line)["token"]))
        except (ValueError, KeyError, TypeError):
            continue
        if claims and claims.get("id"):
            ids.add(str(claims["id"]))
    return ids


@override_app.command("log")
def override_log(
    audit_log: Annotated[Path, typer.Argument(help="The audit log (JSON lines).")],
    config: Annotated[
        Path | None, typer.Option("--config", help="Risk TOML (names the secret's variable).")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the records and the check's verdict as JSON."),
    ] = False,
) -> None:
    """Show the override audit log and check it: the hash chain, and with the override secret
    in the environment every record's HMAC and the head (truncation and rewriting)."""
    from tradeloop.risk.overrides import audit_key, audit_problem, secret_from_env

    try:
        lines = audit_log.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise _fail(DataError(f"cannot read: {exc.strerror}", file=str(audit_log))) from None
    records: list[dict[str, Any]] = []
    unreadable: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            unreadable.append(number)
            continue
        records.append(rec if isinstance(rec, dict) else {"record": rec})
    try:
        secret = secret_from_env(_config(config).overrides.secret_env)
    except TradeloopError as exc:
        raise _fail(exc) from None
    problem = audit_problem(audit_log, audit_key(secret) if secret is not None else None)
    if problem is None and unreadable:
        problem = f"line {unreadable[0]} is not a JSON record"
    if as_json:
        verdict = {
            "records": records,
            "count": len(records),
            "verified_with_key": secret is not None and problem is None,
            "problem": problem,
        }
        print(json.dumps(verdict, indent=2, default=str))
        if problem is not None:
            raise typer.Exit(1)
        return
    table = Table(title=f"Override audit · {audit_log}")
    for col in ("at", "result", "who", "what", "why", "until", "reason"):
        table.add_column(col)
    for rec in records:
        what = str(rec.get("what") or "")
        if rec.get("limit"):
            what += f" {rec['limit']}={rec.get('value')}"
        table.add_row(
            str(rec.get("at") or ""),
            str(rec.get("result") or ""),
            str(rec.get("who") or ""),
            what,
            str(rec.get("why") or ""),
            str(rec.get("until") or ""),
            str(rec.get("reason") or ""),
        )
    console.print(table)
    if problem is None:
        keyed = "records and head verified with the key" if secret else "hash chain intact"
        console.print(f"{keyed} ({len(records)} records)")
        if secret is None:
            console.print("set the override secret to check the HMAC chain and the head too")
    else:
        err_console.print(f"[bold red]audit log tampered: {problem}[/]")
        raise typer.Exit(1)
