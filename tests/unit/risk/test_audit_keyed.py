"""The keyed override audit log: truncation from the end and rewriting are detected; applying
the same token twice (two processes) queues it once."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.risk.overrides import (
    AuditLog,
    OverrideManager,
    audit_key,
    audit_problem,
    issue_token,
    verify_audit_chain,
)

HOUR = 3_600_000_000_000
SECRET = b"correct horse battery staple"
KEY = audit_key(SECRET)


def _write(log: Path, n: int) -> None:
    for k in range(n):  # a new process (a new AuditLog) per record, as restarts would
        AuditLog(log, key=KEY).append({"result": "accepted", "who": f"user{k}"})


def test_keyed_log_verifies_and_survives_reopening(tmp_path: Path) -> None:
    # Arrange
    log = tmp_path / "audit.jsonl"
    # Act
    _write(log, 5)
    # Assert
    assert audit_problem(log, KEY) is None
    head = json.loads((tmp_path / "audit.jsonl.head").read_text())
    assert head["count"] == 5
    assert AuditLog(log, key=KEY).problem is None


def test_truncating_records_from_the_end_is_detected(tmp_path: Path) -> None:
    # Arrange
    log = tmp_path / "audit.jsonl"
    _write(log, 5)
    lines = log.read_text().splitlines()
    # Act: drop the last two records (the plain hash chain stays valid)
    log.write_text("\n".join(lines[:3]) + "\n")
    # Assert
    assert verify_audit_chain(log.read_text().splitlines()) is None  # what the old log missed
    problem = audit_problem(log, KEY)
    assert problem is not None
    assert "head says 5 records, the log holds 3" in problem
    assert AuditLog(log, key=KEY).problem == problem


def test_rewriting_a_record_with_a_recomputed_hash_chain_is_detected(tmp_path: Path) -> None:
    # Arrange: the attacker edits record 1 and recomputes every later prev hash
    log = tmp_path / "audit.jsonl"
    _write(log, 4)
    records = [json.loads(x) for x in log.read_text().splitlines()]
    records[1]["who"] = "mallory"
    prev = records[0]["prev"]
    out = []
    for rec in records:
        rec["prev"] = prev
        text = json.dumps(rec, sort_keys=True, separators=(",", ":"))
        out.append(text)
        prev = hashlib.sha256(text.encode()).hexdigest()
    log.write_text("\n".join(out) + "\n")
    # Act
    problem = audit_problem(log, KEY)
    # Assert
    assert verify_audit_chain(out) is None  # the unkeyed chain is fooled
    assert problem == "record 1: mac does not match (rewritten, or written with another key)"


def test_forged_head_is_detected(tmp_path: Path) -> None:
    # Arrange
    log = tmp_path / "audit.jsonl"
    _write(log, 3)
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:2]) + "\n")
    last_mac = json.loads(lines[1])["mac"]
    head = tmp_path / "audit.jsonl.head"
    head.write_text(json.dumps({"count": 2, "mac": last_mac, "head_mac": "0" * 64}))
    # Act / Assert
    assert audit_problem(log, KEY) == "head file forged (its mac does not match)"


def test_override_manager_keys_its_log_with_the_secret(tmp_path: Path) -> None:
    # Arrange
    log = tmp_path / "audit.jsonl"
    now = time.time_ns()
    tok = issue_token(
        SECRET, who="a", why="w", action="resume", not_before=now, expires_at=now + HOUR
    )
    # Act: the second process restores the first one's state (as the journal does)
    first = OverrideManager(SECRET, AuditLog(log))
    first.apply(tok, now)
    second = OverrideManager(SECRET, AuditLog(log))
    second.restore_state(first.export_state())
    replay = second.apply(tok, now + 1)
    # Assert
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["result"] for r in records] == ["accepted", "refused"]
    assert records[1]["reason"] == "replayed"
    assert getattr(replay, "reason", None) == "replayed"
    assert all("mac" in r for r in records)
    assert audit_problem(log, KEY) is None


@pytest.fixture
def risk_toml(tmp_path: Path) -> Path:
    path = tmp_path / "risk.toml"
    path.write_text(
        "[overrides]\n"
        f'audit_log = "{tmp_path / "audit.jsonl"}"\n'
        'secret_env = "TL_TEST_OVERRIDE_SECRET"\n'
    )
    return path


def test_applying_the_same_token_twice_queues_it_once(tmp_path: Path, risk_toml: Path) -> None:
    # Arrange
    env = {"TL_TEST_OVERRIDE_SECRET": SECRET.decode()}
    tok = issue_token(SECRET, who="ops", why="w", action="resume", expires_at=time.time_ns() + HOUR)
    inbox = tmp_path / "inbox.jsonl"
    runner = CliRunner()
    args = ["risk", "override", "apply", tok, "--inbox", str(inbox), "--config", str(risk_toml)]
    # Act: two separate invocations (two processes' worth of state: files only)
    first = runner.invoke(app, args, env=env)
    second = runner.invoke(app, args, env=env)
    checked = runner.invoke(
        app, ["risk", "override", "log", str(tmp_path / "audit.jsonl"), "--config", str(risk_toml)],
        env=env,
    )  # fmt: skip
    # Assert
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "already queued" in second.output
    assert len(inbox.read_text().splitlines()) == 1
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["result"] for r in audit] == ["queued"]
    assert checked.exit_code == 0, checked.output
    assert "verified with the key" in checked.output
