"""``POST /backtests`` and ``GET /runs/{run_id}``: backtests over HTTP, through the engine service.

The request body is checked at the boundary (a pydantic model): a bad value is a 422 whose
``detail`` names the field. A valid request becomes the same
:class:`~tradeloop.engine.service.BacktestJob` that ``tradeloop backtest`` builds from its
options, and :func:`~tradeloop.engine.service.run_backtest_job` runs it on the app's backtest
thread pool, so the event loop keeps serving while a run lasts. The run is recorded like a
command-line run (``<output root>/runs/<run id>/``) and read back by ``GET /runs/{run_id}``.

What a request may reach is bounded by the server (:class:`BacktestApiConfig`), never by the
request: data files are paths inside the data folder, strategies are names of the bundled
examples or of the server's strategies folder (never a module or file path), models come from
the server's model folder and runs are written under the server's output folder.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tradeloop.analysis.validation import ValidationConfig
from tradeloop.core.errors import ConfigError, DataError, StrategyError, TradeloopError
from tradeloop.core.time import parse_time
from tradeloop.core.timeframes import timeframe_minutes
from tradeloop.engine.config import RunConfig, risk_rules
from tradeloop.engine.runner import CacheSpec, DataSpec
from tradeloop.engine.service import (
    RUN_ID_PATTERN,
    BacktestJob,
    ModelOptions,
    load_run_record,
    run_backtest_job,
)
from tradeloop.ml.threads import DEFAULT_ML_THREADS

__all__ = [
    "BacktestApiConfig",
    "BacktestCreated",
    "BacktestRequest",
    "CacheSource",
    "DataFile",
    "ModelChoice",
    "backtests_router",
]

backtests_router = APIRouter(tags=["backtests"])

#: the route recorded as a run's command
_COMMAND = "POST /backtests"
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_MODEL_SPEC = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$"


@dataclass(frozen=True, slots=True)
class BacktestApiConfig:
    """Where the backtest routes read and write; set by whoever serves the app.

    Attributes
    ----------
    output_root
        Run folders go to ``<output_root>/runs/<run id>`` (as for ``tradeloop backtest``).
    data_root
        A request's data file paths are relative to this folder and cannot leave it.
    strategies_dir
        The user strategies a request may name (besides the bundled examples).
    model_registry
        The model folder a request's model is loaded from.
    cache_root
        The candle cache of ``cache`` requests (None: the configured one).
    workers
        Backtests run at the same time; further requests wait for a free worker.
    """

    output_root: Path = Path("output")
    data_root: Path = Path(".")
    strategies_dir: Path = Path("strategies")
    model_registry: Path = Path("models")
    cache_root: Path | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFile(_Body):
    """One OHLCV file (CSV, CSV.gz, Parquet, feather) inside the server's data folder."""

    path: str = Field(min_length=1, description="Path relative to the server's data folder.")
    symbol: str | None = Field(default=None, min_length=1, description="Default: file name.")
    time_unit: Literal["s", "ms", "us", "ns"] | None = None
    repair: bool = False
    timestamp_col: str | None = None
    open_col: str | None = None
    high_col: str | None = None
    low_col: str | None = None
    close_col: str | None = None
    volume_col: str | None = None

    @field_validator("path")
    @classmethod
    def _inside_data_folder(cls, value: str) -> str:
        parts = PurePosixPath(value.replace("\\", "/"))
        if parts.is_absolute() or Path(value).is_absolute() or ".." in parts.parts:
            raise ValueError("give a path relative to the server's data folder, without '..'")
        return value

    def spec(self, root: Path) -> DataSpec:
        """This file as a data source of a job, its path under ``root``."""
        from tradeloop.data.loader import ColumnMap

        names = (
            self.timestamp_col,
            self.open_col,
            self.high_col,
            self.low_col,
            self.close_col,
            self.volume_col,
        )
        columns = ColumnMap(*names) if any(n is not None for n in names) else None
        return DataSpec(root / self.path, self.symbol, columns, self.time_unit, self.repair)


class CacheSource(_Body):
    """Series of the server's candle cache (filled by ``tradeloop data fetch``)."""

    exchange: str = Field(pattern=r"^[a-z0-9_]+$")
    symbols: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    market: Literal["spot", "perp"] = "spot"


class ModelChoice(_Body):
    """The ML model of the server's model folder that scores every entry signal."""

    name: str = Field(pattern=_MODEL_SPEC, description="NAME or NAME:VERSION.")
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    use_toxicity: bool = False
    threads: int = Field(default=DEFAULT_ML_THREADS, ge=1)


def _config_error(exc: TradeloopError) -> ValueError:
    return ValueError(str(exc))


class BacktestRequest(_Body):
    """A backtest as ``tradeloop backtest`` takes it (the options of the same names).

    Give ``data`` (files) or ``cache`` (cached series), not both.
    """

    strategy: str = Field(
        pattern=_NAME,
        description="A strategy name (`tradeloop strategies` lists them); module and file "
        "paths are refused.",
    )
    data: list[DataFile] | None = Field(default=None, min_length=1)
    cache: CacheSource | None = None
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    timeframe: str | None = None
    start: str | None = Field(default=None, description="First bar: UTC date or ISO time.")
    end: str | None = Field(default=None, description="End, exclusive: UTC date or ISO time.")
    balance: float = Field(default=10_000.0, gt=0, allow_inf_nan=False)
    fee: float = Field(default=0.0, ge=0, lt=0.5, allow_inf_nan=False)
    slippage_bps: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    fill: Literal["next_open", "close"] = "next_open"
    close_at_end: bool = False
    risk: str | dict[str, Any] = Field(
        default="permissive", description="A profile name or a risk TOML table."
    )
    model: ModelChoice | None = None
    report: bool = True
    seed: int = 42
    trials: int = Field(default=1, ge=1)
    sharpe_bar: float = Field(default=1.0, allow_inf_nan=False)
    mc_sims: int = Field(default=1000, ge=1)
    allow_data_issues: bool = Field(
        default=False,
        description="Run on data that fails the data check; the findings are recorded.",
    )
    calendar: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_\-]{2,20}$",
        description="Market calendar (exchange_calendars name, e.g. XNYS): in-session bars only.",
    )
    periods_per_year: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Annualization override."
    )

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                timeframe_minutes(value)
            except ConfigError as exc:
                raise _config_error(exc) from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                parse_time(value, field=str(info.field_name))
            except ConfigError as exc:
                raise _config_error(exc) from None
        return value

    @field_validator("risk")
    @classmethod
    def _risk(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        try:
            risk_rules(value)
        except ConfigError as exc:
            raise _config_error(exc) from None
        return value

    @model_validator(mode="after")
    def _one_source_and_a_window(self) -> BacktestRequest:
        if (self.data is None) == (self.cache is None):
            raise ValueError("give exactly one of 'data' (files) and 'cache' (cached series)")
        start, end = self.start, self.end
        if start is not None and end is not None and parse_time(end) <= parse_time(start):
            raise ValueError("'end' must be after 'start'")
        return self

    def job(self, api: BacktestApiConfig) -> BacktestJob:
        """The engine's job for this request, within the server's folders.

        Raises
        ------
        ConfigError
            For a combination the engine refuses (checked again when the job is built).
        """
        specs: list[DataSpec | CacheSpec]
        if self.cache is not None:
            cache = self.cache
            tf = self.timeframe or "1m"
            specs = [
                CacheSpec(cache.exchange, sym, tf, cache.market, api.cache_root)
                for sym in cache.symbols
            ]
        else:
            specs = [item.spec(api.data_root) for item in self.data or ()]
        model = self.model
        return BacktestJob(
            strategy=self.strategy,
            data=tuple(specs),
            config=RunConfig(
                balance=self.balance,
                fee=self.fee,
                slippage_bps=self.slippage_bps,
                fill_price=self.fill,  # type: ignore[arg-type]
                timeframe=self.timeframe,
                start=parse_time(self.start, field="start") if self.start else None,
                end=parse_time(self.end, field="end") if self.end else None,
                close_at_end=self.close_at_end,
                risk=risk_rules(self.risk),
                periods_per_year=self.periods_per_year,
            ),
            params=dict(self.params),
            model=(
                ModelOptions(
                    model.name,
                    api.model_registry,
                    min_confidence=model.min_confidence,
                    use_toxicity=model.use_toxicity,
                    threads=model.threads,
                )
                if model is not None
                else None
            ),
            validation=ValidationConfig(
                seed=self.seed,
                min_sharpe=self.sharpe_bar,
                n_trials=self.trials,
                mc_sims=self.mc_sims,
            ),
            report=self.report,
            allow_data_issues=self.allow_data_issues,
            calendar=self.calendar,
            output_root=api.output_root,
            strategies_dir=api.strategies_dir,
            command=_COMMAND,
        )


class BacktestCreated(BaseModel):
    """A finished, recorded backtest: its id, summary metrics and the files written."""

    run_id: str
    strategy: str
    symbols: list[str]
    timeframe: str
    metrics: dict[str, Any]
    files: list[str]
    record: str = Field(description="Where the run record is read back.")


def _unprocessable(exc: TradeloopError) -> HTTPException:
    """A 422 in FastAPI's shape for an error the engine found in a valid-looking request."""
    return HTTPException(
        status_code=422,
        detail=[{"loc": ["body"], "msg": str(exc), "type": type(exc).__name__}],
    )


@backtests_router.post("/backtests", status_code=201, response_model=BacktestCreated)
async def create_backtest(
    body: BacktestRequest, request: Request, response: Response
) -> BacktestCreated:
    """Run a backtest to completion on the backtest pool, record it and return its summary.

    A request the engine refuses (unknown strategy or parameter, missing or malformed data,
    unknown model) is a 422 naming the problem; a strategy whose code raises is a 500.
    """
    api: BacktestApiConfig = request.app.state.backtests
    try:
        job = body.job(api)
        pool = request.app.state.backtest_pool
        outcome = await asyncio.get_running_loop().run_in_executor(
            pool, partial(run_backtest_job, job)
        )
    except StrategyError as exc:
        raise HTTPException(status_code=500, detail=f"StrategyError: {exc}") from None
    except (ConfigError, DataError) as exc:
        raise _unprocessable(exc) from None
    result = outcome.result
    location = f"/runs/{outcome.run_id}"
    response.headers["Location"] = location
    return BacktestCreated(
        run_id=outcome.run_id,
        strategy=result.strategy,
        symbols=list(result.symbols),
        timeframe=result.timeframe,
        metrics=outcome.summary(),
        files=sorted(outcome.paths),
        record=location,
    )


@backtests_router.get("/runs/{run_id}")
def get_run(
    run_id: Annotated[str, PathParam(pattern=f"^{RUN_ID_PATTERN.pattern}$")], request: Request
) -> dict[str, Any]:
    """The record (``run.json``) of a recorded run: strategy, parameters, rules, data, model."""
    api: BacktestApiConfig = request.app.state.backtests
    try:
        record = load_run_record(run_id, api.output_root)
    except (ConfigError, DataError) as exc:
        raise _unprocessable(exc) from None
    if record is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id!r}")
    return record
