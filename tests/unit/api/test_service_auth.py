"""The service's API key: control refused without a configured key, 401 without a header,
403 with a wrong key, reads open unless ``auth_reads``; every refused control call audited
before anything else is looked at (an engine or not)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tradeloop.api import create_app
from tradeloop.api.backtests import BacktestApiConfig
from tradeloop.risk.overrides import AuditLog, verify_audit_chain


def _client(tmp_path: Path, **kw: object) -> TestClient:
    return TestClient(create_app(backtests=BacktestApiConfig(output_root=tmp_path), **kw))  # type: ignore[arg-type]


def test_control_is_off_without_a_configured_key_and_refusals_are_audited(
    tmp_path: Path,
) -> None:
    client = _client(tmp_path)
    audit: AuditLog = client.app.state.auth.audit  # type: ignore[attr-defined]
    # Act
    anonymous = client.post("/control/pause")
    with_key = client.post("/control/flatten", headers={"X-API-Key": "anything"})
    # Assert
    assert anonymous.status_code == 403
    assert "no API key is configured" in anonymous.json()["detail"]
    assert with_key.status_code == 403
    assert [r["what"] for r in audit.records] == ["POST /control/pause", "POST /control/flatten"]
    assert all(r["result"] == "refused 403" for r in audit.records)
    assert "anything" not in str(audit.records)


def test_a_key_gates_control_and_optionally_reads(tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    open_reads = _client(tmp_path, api_key="k-123")
    closed_reads = _client(tmp_path, api_key="k-123", auth_reads=True)
    open_reads.app.state.auth.audit = AuditLog(audit_path)  # type: ignore[attr-defined]
    # Act
    missing = open_reads.post("/control/pause")
    wrong = open_reads.post("/control/pause", headers={"X-API-Key": "k-124"})
    right = open_reads.post("/control/pause", headers={"X-API-Key": "k-123"})
    read_open = open_reads.get("/runs")
    read_closed = closed_reads.get("/runs")
    read_keyed = closed_reads.get("/runs", headers={"X-API-Key": "k-123"})
    # Assert
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "APIKey"
    assert wrong.status_code == 403
    assert right.status_code == 404  # authenticated; this app runs no engine
    assert (read_open.status_code, read_closed.status_code, read_keyed.status_code) == (
        200,
        401,
        200,
    )
    lines = audit_path.read_text().splitlines()
    assert len(lines) == 2
    assert verify_audit_chain(lines) is None
    assert "k-12" not in audit_path.read_text()
