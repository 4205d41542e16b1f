"""RiskReport: exposure, leverage, VaR, correlation clusters, limit usage, rejections and
kill-switch events of a portfolio, exportable to JSON and CSV.

Files written by :func:`write_risk_report`:

* ``risk_report.json`` - the whole report;
* ``risk_report.csv`` - one row per figure: ``section, name, value, limit, usage``;
* ``risk_rejections.csv`` - every rejection: ``time, symbol, reason, source, detail``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tradeloop.core.errors import DataError
from tradeloop.core.rejection import Rejection
from tradeloop.core.time import to_iso

__all__ = [
    "REPORT_FILES",
    "RiskReport",
    "halt_summary",
    "read_risk_report",
    "rejection_rows",
    "write_risk_report",
]

REPORT_FILES = ("risk_report.json", "risk_report.csv", "risk_rejections.csv")


def rejection_rows(rejections: Iterable[Rejection]) -> list[dict[str, str]]:
    """Return rejections as rows with an ISO time (for CSV and JSON)."""
    return [
        {
            "time": to_iso(r.ts),
            "symbol": r.symbol,
            "reason": str(r.reason),
            "source": r.source,
            "detail": r.detail,
        }
        for r in rejections
    ]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class RiskReport:
    """A snapshot of a portfolio's risk; see the module doc for the files.

    Attributes
    ----------
    time
        ISO-8601 UTC time of the snapshot.
    profile
        Risk profile in force (and the file that changed it, if any, in ``source``).
    state, state_cause
        Trading state (``active``, ``reducing``, ``halted``) and why.
    equity, cash
        Equity at the latest marks, and cash.
    exposure
        One row per open position: symbol, side, quantity, price, notional, weight.
    gross_exposure, net_exposure, leverage, max_leverage
        Sums of absolute and signed notionals, gross / equity, and the cap in force.
    var
        Historical and parametric VaR/CVaR per level, in currency and as a fraction of equity.
    var_horizon, var_observations
        Horizon the VaR is scaled to, and the bars of history used.
    correlation_symbols, correlation
        The open positions' return-correlation matrix.
    clusters
        Groups of open symbols linked by a correlation above the limit.
    limits
        Usage of every limit: name, value, limit, usage (value / limit).
    rejections, rejections_by_reason
        Every refused intent or order, and their counts by reason.
    events
        Kill-switch state changes with their causes.
    overrides
        The override audit records.
    accepted_orders, adjustments
        Orders the gate let through, and how often each limit cut an order down.
    """

    time: str
    profile: str
    source: str
    state: str
    state_cause: str | None
    equity: float
    cash: float
    exposure: list[dict[str, Any]] = field(default_factory=list)
    gross_exposure: float = 0.0
    net_exposure: float = 0.0
    leverage: float = 0.0
    max_leverage: float | None = None
    var: list[dict[str, float]] = field(default_factory=list)
    var_horizon: str = ""
    var_observations: int = 0
    correlation_symbols: list[str] = field(default_factory=list)
    correlation: list[list[float]] = field(default_factory=list)
    clusters: list[list[str]] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, str]] = field(default_factory=list)
    rejections_by_reason: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    accepted_orders: int = 0
    adjustments: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def count_reasons(rejections: Sequence[Rejection]) -> dict[str, int]:
        """Return rejection counts by reason, most frequent first."""
        return dict(Counter(str(r.reason) for r in rejections).most_common())

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (non-finite numbers become null)."""
        data: dict[str, Any] = _clean(asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskReport:
        """Rebuild a report from :meth:`to_dict` output (unknown keys are ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def rows(self) -> list[dict[str, Any]]:
        """Return the report as ``section, name, value, limit, usage`` rows."""
        rows: list[dict[str, Any]] = [
            {"section": "state", "name": "profile", "value": self.profile},
            {"section": "state", "name": "state", "value": self.state},
            {"section": "state", "name": "cause", "value": self.state_cause or ""},
            {"section": "portfolio", "name": "equity", "value": self.equity},
            {"section": "portfolio", "name": "cash", "value": self.cash},
            {"section": "portfolio", "name": "gross_exposure", "value": self.gross_exposure},
            {"section": "portfolio", "name": "net_exposure", "value": self.net_exposure},
            {
                "section": "portfolio",
                "name": "leverage",
                "value": self.leverage,
                "limit": self.max_leverage,
            },
        ]
        for pos in self.exposure:
            rows.append({"section": "exposure", "name": pos["symbol"], "value": pos["notional"]})
        for est in self.var:
            level = f"{est['level']:.0%}"
            for key in ("historical_var", "historical_cvar", "parametric_var", "parametric_cvar"):
                rows.append({"section": "var", "name": f"{key}_{level}", "value": est[key]})
        for k, sym in enumerate(self.correlation_symbols):
            for j in range(k + 1, len(self.correlation_symbols)):
                rows.append(
                    {
                        "section": "correlation",
                        "name": f"{sym}~{self.correlation_symbols[j]}",
                        "value": self.correlation[k][j],
                    }
                )
        for n, cluster in enumerate(self.clusters):
            rows.append({"section": "cluster", "name": str(n + 1), "value": " ".join(cluster)})
        for lim in self.limits:
            rows.append({"section": "limit", **lim})
        for reason, count in self.rejections_by_reason.items():
            rows.append({"section": "rejections", "name": reason, "value": count})
        for ev in self.events:
            rows.append(
                {
                    "section": "event",
                    "name": ev["time"],
                    "value": f"{ev['from']}->{ev['to']} {ev['cause']}: {ev['detail']}",
                }
            )
        return [{key: _clean(row.get(key, "")) for key in _CSV_COLUMNS} for row in rows]

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically) and return the path."""
        out = Path(path)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        tmp.replace(out)
        return out

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`rows` as CSV (atomically) and return the path."""
        out = Path(path)
        _write_rows(out, _CSV_COLUMNS, self.rows())
        return out


_CSV_COLUMNS = ("section", "name", "value", "limit", "usage")


def _write_rows(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    tmp.replace(path)


def write_risk_report(report: RiskReport, folder: str | Path) -> dict[str, Path]:
    """Write the report's JSON, CSV and rejections CSV into ``folder``; return the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "risk_report": report.to_json(out / REPORT_FILES[0]),
        "risk_csv": report.to_csv(out / REPORT_FILES[1]),
    }
    rejections = out / REPORT_FILES[2]
    _write_rows(rejections, ("time", "symbol", "reason", "source", "detail"), report.rejections)
    paths["risk_rejections"] = rejections
    return paths


def read_risk_report(path: str | Path) -> RiskReport:
    """Read a ``risk_report.json``.

    Raises
    ------
    DataError
        If the file is not a risk report.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read risk report: {exc}", file=str(file)) from None
    if not isinstance(data, dict) or "profile" not in data:
        raise DataError("not a risk report", file=str(file))
    return RiskReport.from_dict(data)


def halt_summary(
    events: Sequence[Any],
    end_ns: int,
    rejections_by_reason: Mapping[str, int],
    state_at_end: str,
) -> dict[str, Any]:
    """The halts of a run for its record, report and summary: when, why, for how long.

    ``events`` are the kill switch's :class:`~tradeloop.risk.killswitch.RiskEvent` in time
    order; a halt lasts from a change to ``halted`` until the next change away from it (or
    the end of the run, ``end_ns``: ``lasts_to_end``).
    """
    halts: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in events:
        to, frm = str(event.state_to.value), str(event.state_from.value)
        if to == "halted" and frm != "halted":
            current = {
                "start": to_iso(int(event.ts)),
                "cause": str(event.cause),
                "detail": str(event.detail),
                "start_ns": int(event.ts),
            }
            halts.append(current)
        elif to == "halted" and current is not None:
            current["cause"] = str(event.cause)  # re-caused (a black swan while halted)
            current["detail"] = str(event.detail)
        elif frm == "halted" and to != "halted" and current is not None:
            current["end"] = to_iso(int(event.ts))
            current["lifted_by"] = str(event.cause)
            current["days"] = (int(event.ts) - current.pop("start_ns")) / 86_400e9
            current = None
    if current is not None:
        current["end"] = None
        current["lifted_by"] = None
        current["days"] = (end_ns - current.pop("start_ns")) / 86_400e9
    last = halts[-1] if halts else None
    return {
        "state_at_end": state_at_end,
        "halts": halts,
        "halted_days": float(sum(h["days"] for h in halts)),
        "halted_at_end": bool(last is not None and last["end"] is None),
        "rejections_by_reason": dict(rejections_by_reason),
    }
