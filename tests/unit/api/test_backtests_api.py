"""API: POST /backtests (validated at the boundary, run on the backtest pool), GET /runs/{id}."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tradeloop.api import create_app
from tradeloop.api.backtests import BacktestApiConfig
from tradeloop.bus import InProcessBus
from tradeloop.config.settings import Settings
from tradeloop.signals import SignalService

PROBE = '''"""Records the name of the thread it runs on, next to this file."""
import threading
from pathlib import Path

from tradeloop.strategy import NO_SIGNALS, Strategy


class ThreadProbe(Strategy):
    """Trades nothing; writes its thread's name once."""

    def on_bar(self, view, portfolio):
        Path(__file__).with_suffix(".thread").write_text(threading.current_thread().name)
        return NO_SIGNALS
'''


@pytest.fixture
def api_root(tmp_path: Path, sample_1h: Path) -> Path:
    """A server folder: data/ with the sample, strategies/ with the thread probe."""
    (tmp_path / "data").mkdir()
    shutil.copy(sample_1h, tmp_path / "data" / sample_1h.name)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "thread_probe.py").write_text(PROBE)
    return tmp_path


@pytest.fixture
def client(api_root: Path) -> Iterator[TestClient]:
    settings = Settings(signals_enabled=False, analytics_path=api_root / "api.duckdb")
    service = SignalService(settings, bus=InProcessBus())
    config = BacktestApiConfig(
        output_root=api_root / "output",
        data_root=api_root / "data",
        strategies_dir=api_root / "strategies",
    )
    with TestClient(create_app(service, backtests=config)) as test_client:
        yield test_client


def _body(sample_1h: Path, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "strategy": "sma_cross",
        "data": [{"path": sample_1h.name}],
        "timeframe": "4h",
        "fee": 0.001,
        "end": "2018-07-01",
        "params": {"fast": 10, "slow": 30},
        "report": False,
    }
    body.update(kw)
    return body


def test_post_backtests_records_the_run_and_get_runs_reads_it_back(
    client: TestClient, api_root: Path, sample_1h: Path
) -> None:
    # Act
    created = client.post("/backtests", json=_body(sample_1h))
    # Assert: 201, the run's summary and where its record is
    assert created.status_code == 201, created.text
    body = created.json()
    run_id = body["run_id"]
    folder = api_root / "output" / "runs" / run_id
    summary = json.loads((folder / "summary.json").read_text())
    assert created.headers["location"] == body["record"] == f"/runs/{run_id}"
    assert body["strategy"] == "sma_cross"
    assert (body["symbols"], body["timeframe"]) == (["BTC/USDT"], "4h")
    assert body["metrics"]["trade_count"] == summary["trade_count"] > 0
    assert body["metrics"]["final_equity"] == summary["final_equity"]
    assert {"trades", "equity", "run", "metrics"} <= set(body["files"])
    # the stored record, as written
    record = client.get(body["record"])
    assert record.status_code == 200
    assert record.json() == json.loads((folder / "run.json").read_text())
    assert record.json()["command"] == "POST /backtests"
    assert record.json()["config"]["fee"] == 0.001


def test_post_backtests_runs_the_job_on_the_backtest_pool(
    client: TestClient, api_root: Path, sample_1h: Path
) -> None:
    # Act
    created = client.post("/backtests", json=_body(sample_1h, strategy="thread_probe", params={}))
    # Assert: the strategy ran on a worker of the app's pool, not on the event loop's thread
    assert created.status_code == 201, created.text
    thread = (api_root / "strategies" / "thread_probe.thread").read_text()
    assert thread.startswith("backtest")


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"fee": -0.1}, ["body", "fee"], "greater than or equal to 0"),
        ({"balance": 0}, ["body", "balance"], "greater than 0"),
        ({"fill": "mid"}, ["body", "fill"], "next_open"),
        ({"timeframe": "7x"}, ["body", "timeframe"], "unknown timeframe '7x'"),
        ({"start": "yesterday"}, ["body", "start"], "start"),
        ({"risk": "defualt"}, ["body", "risk"], "Did you mean: 'default'"),
        ({"risk": {"limits": {"max_positon_pct": 0.1}}}, ["body", "risk"], "max_position_pct"),
        ({"strategy": "evil.py:Class"}, ["body", "strategy"], "pattern"),
        ({"strategy": "os:system"}, ["body", "strategy"], "pattern"),
        ({"data": [{"path": "../secrets.csv"}]}, ["body", "data", 0, "path"], "'..'"),
        ({"data": [{"path": "/etc/hosts"}]}, ["body", "data", 0, "path"], "relative"),
        ({"data": []}, ["body", "data"], "at least 1"),
        ({"model": {"name": "../m"}}, ["body", "model", "name"], "pattern"),
        ({"mc_sims": 0}, ["body", "mc_sims"], "greater than or equal to 1"),
        ({"outt": "x"}, ["body", "outt"], "Extra inputs"),
    ],
)
def test_post_backtests_bad_field_is_422_naming_it(
    client: TestClient,
    api_root: Path,
    sample_1h: Path,
    change: dict[str, Any],
    loc: list[Any],
    message: str,
) -> None:
    # Act
    response = client.post("/backtests", json=_body(sample_1h, **change))
    # Assert: FastAPI's shape, the field's location, nothing run or written
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert message in error["msg"]
    assert not (api_root / "output").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cache": {"exchange": "binance", "symbols": ["BTC/USDT"]}}, "exactly one of 'data'"),
        ({"data": None}, "exactly one of 'data'"),
        ({"start": "2019-01-01", "end": "2018-01-01"}, "'end' must be after 'start'"),
    ],
)
def test_post_backtests_inconsistent_request_is_422(
    client: TestClient, sample_1h: Path, change: dict[str, Any], message: str
) -> None:
    response = client.post("/backtests", json=_body(sample_1h, **change))
    assert response.status_code == 422
    assert message in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("change", "kind", "message"),
    [
        ({"strategy": "sma_crss"}, "ConfigError", "Did you mean: 'sma_cross'"),
        ({"params": {"slwo": 20}}, "ConfigError", "Did you mean: 'slow'"),
        ({"data": [{"path": "missing.csv"}]}, "DataError", "missing.csv"),
        ({"model": {"name": "nothing_here"}}, "ConfigError", "nothing_here"),
    ],
)
def test_post_backtests_job_the_engine_refuses_is_422_with_its_reason(
    client: TestClient,
    api_root: Path,
    sample_1h: Path,
    change: dict[str, Any],
    kind: str,
    message: str,
) -> None:
    # Act
    response = client.post("/backtests", json=_body(sample_1h, **change))
    # Assert
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == kind
    assert message in error["msg"]
    assert not (api_root / "output" / "runs").exists()


def test_get_runs_unknown_id_is_404_and_a_path_is_refused(client: TestClient) -> None:
    assert client.get("/runs/20200101T000000Z-sma_cross-000000").status_code == 404
    refused = client.get("/runs/.hidden")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["path", "run_id"]


def test_post_backtests_refuses_bad_data_unless_allowed(
    client: TestClient, api_root: Path, sample_1h: Path
) -> None:
    # Arrange: the sample with one bar near 1e300
    import pandas as pd

    frame = pd.read_csv(sample_1h).iloc[:2000]
    frame.loc[1234, ["open", "high", "low", "close"]] = 1e300
    frame.to_csv(api_root / "data" / "BTC_USDT-bad.csv", index=False)
    body = _body(sample_1h, data=[{"path": "BTC_USDT-bad.csv"}], timeframe=None, end=None)
    # Act
    refused = client.post("/backtests", json=body)
    allowed = client.post("/backtests", json={**body, "allow_data_issues": True})
    # Assert: 422 naming the check and the row; allowed runs record the finding
    assert refused.status_code == 422, refused.text
    assert "extreme values" in refused.text
    assert "row 1,234" in refused.text
    assert allowed.status_code == 201, allowed.text
    record = client.get(allowed.json()["record"]).json()
    assert [i["check"] for i in record["data_issues"]] == ["extreme values"]
    assert record["data_issues"][0]["rows"] == [1234]
