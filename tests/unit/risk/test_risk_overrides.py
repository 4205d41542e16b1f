"""Signed overrides: valid tokens work once; bad, expired, early, replayed or unsigned ones are
refused, and every attempt is audited in an append-only, hash-chained log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.risk.config import OverridesConfig, RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.overrides import (
    AuditLog,
    Override,
    OverrideManager,
    OverrideRefused,
    issue_token,
    read_token_claims,
    verify_audit_chain,
    verify_token,
)

HOUR = 3_600_000_000_000
T0 = 1_704_067_200_000_000_000
SECRET = b"correct horse battery staple"


def token(**kw: object) -> str:
    args: dict[str, object] = {
        "who": "alice",
        "why": "false alarm on a data glitch",
        "action": "resume",
        "not_before": T0,
        "expires_at": T0 + HOUR,
    }
    args.update(kw)
    return issue_token(SECRET, **args)  # type: ignore[arg-type]


def test_valid_token_verifies_with_its_claims() -> None:
    # Arrange
    tok = token(action="set_limit", limit="max_position_pct", value=0.25)
    # Act
    result = verify_token(tok, SECRET, T0 + 1)
    # Assert
    assert isinstance(result, Override)
    assert (result.who, result.action, result.limit, result.value) == (
        "alice",
        "set_limit",
        "max_position_pct",
        0.25,
    )
    assert result.expires_at == T0 + HOUR


@pytest.mark.parametrize(
    ("make", "now", "reason"),
    [
        (lambda: token()[:-4] + "AAAA", T0 + 1, "bad_signature"),
        (
            lambda: issue_token(
                b"other", who="a", why="b", action="resume", not_before=T0, expires_at=T0 + HOUR
            ),
            T0 + 1,
            "bad_signature",
        ),
        (lambda: token(), T0 + HOUR, "expired"),
        (lambda: token(), T0 - 1, "not_yet_valid"),
        (lambda: "not-a-token", T0, "malformed"),
        (lambda: token(expires_at=T0 + 48 * HOUR), T0 + 1, "ttl_too_long"),
    ],
    ids=["tampered", "wrong-secret", "expired", "early", "garbage", "too-long"],
)
def test_bad_tokens_are_refused_with_a_reason(make: object, now: int, reason: str) -> None:
    # Arrange
    tok = make()  # type: ignore[operator]
    # Act
    result = verify_token(tok, SECRET, now, max_ttl_ns=24 * HOUR)
    # Assert
    assert isinstance(result, OverrideRefused)
    assert result.reason == reason


def test_tampered_payload_fails_the_signature() -> None:
    # Arrange: change the claimed limit value but keep the signature
    prefix, payload, sig = token(action="set_limit", limit="max_position_pct", value=0.2).split(".")
    claims = read_token_claims(f"{prefix}.{payload}.{sig}")
    assert claims is not None
    claims["value"] = 5.0
    import base64

    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    # Act
    result = verify_token(f"{prefix}.{forged_payload}.{sig}", SECRET, T0 + 1)
    # Assert
    assert isinstance(result, OverrideRefused)
    assert result.reason == "bad_signature"


def test_no_secret_refuses_everything() -> None:
    # Arrange / Act
    result = verify_token(token(), None, T0 + 1)
    # Assert
    assert isinstance(result, OverrideRefused)
    assert result.reason == "no_secret"


def test_issue_token_checks_its_input() -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="who asks"):
        token(who=" ")
    with pytest.raises(ConfigError, match="limit must be one of"):
        token(action="set_limit", limit="max_fun")
    with pytest.raises(ConfigError, match="expires before"):
        token(expires_at=T0)


def test_refused_and_accepted_overrides_are_audited_and_a_token_works_once(tmp_path: Path) -> None:
    # Arrange
    log = tmp_path / "audit.jsonl"
    manager = OverrideManager(SECRET, AuditLog(log), 24 * HOUR)
    good = token()
    # Act
    bad = manager.apply(good[:-4] + "AAAA", T0 + 1)
    expired = manager.apply(token(), T0 + 2 * HOUR)
    ok = manager.apply(good, T0 + 1)
    replay = manager.apply(good, T0 + 2)
    # Assert
    assert isinstance(ok, Override)
    assert [getattr(r, "reason", None) for r in (bad, expired, replay)] == [
        "bad_signature",
        "expired",
        "replayed",
    ]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["result"] for r in records] == ["refused", "refused", "accepted", "refused"]
    refused = records[0]
    assert (refused["who"], refused["why"], refused["reason"], refused["verified"]) == (
        "alice",
        "false alarm on a data glitch",
        "bad_signature",
        False,
    )
    assert records[2]["until"].startswith("2024-01-01T01:00:00")
    assert verify_audit_chain(log.read_text().splitlines()) is None


def test_audit_log_appends_across_restarts_and_detects_edits(tmp_path: Path) -> None:
    # Arrange
    log = tmp_path / "audit.jsonl"
    AuditLog(log).append({"result": "accepted", "who": "a"})
    AuditLog(log).append({"result": "refused", "who": "b"})  # a new process appends
    lines = log.read_text().splitlines()
    # Act
    intact = verify_audit_chain(lines)
    edited = [lines[0].replace('"a"', '"mallory"'), lines[1]]
    deleted = lines[1:]
    # Assert
    assert intact is None
    assert verify_audit_chain(edited) == 1
    assert verify_audit_chain(deleted) == 0


def test_overrides_in_force_and_used_tokens_survive_a_restart(tmp_path: Path) -> None:
    # Arrange: a limit override in force and a used resume token, then a "restart"
    log = tmp_path / "audit.jsonl"
    first = OverrideManager(SECRET, AuditLog(log), 24 * HOUR)
    resume = token()
    limit = token(action="set_limit", limit="max_position_pct", value=0.25)
    assert isinstance(first.apply(resume, T0 + 1), Override)
    assert isinstance(first.apply(limit, T0 + 2), Override)
    saved = json.loads(json.dumps(first.export_state()))  # the store keeps it as JSON
    # Act
    second = OverrideManager(SECRET, AuditLog(log), 24 * HOUR)
    second.restore_state(saved)
    replay = second.apply(resume, T0 + 3)
    # Assert: the limit holds until its expiry, and the used token stays used
    assert second.limit("max_position_pct", 0.10, T0 + 4) == 0.25
    assert second.limit("max_position_pct", 0.10, T0 + HOUR) == 0.10
    assert isinstance(replay, OverrideRefused)
    assert replay.reason == "replayed"


def test_a_restored_engine_reads_only_the_inbox_lines_added_while_it_was_down(
    tmp_path: Path,
) -> None:
    # Arrange: an engine reads one queued token and saves its state; a second line arrives
    inbox = tmp_path / "inbox.jsonl"
    config = RiskConfig(overrides=OverridesConfig(inbox=str(inbox)))
    inbox.write_text(json.dumps({"at": T0 + 10, "token": "first"}) + "\n")
    before = RiskEngine(config, secret=SECRET)
    saved = json.loads(json.dumps(before.export_state()))
    with inbox.open("a") as fh:
        fh.write(json.dumps({"at": T0 + 5, "token": "second"}) + "\n")
    # Act: a new process reads the whole inbox in its constructor, then restores
    after = RiskEngine(config, secret=SECRET)
    after.restore_state(saved)
    # Assert: the saved queue plus the new line, in time order, nothing twice
    assert after.export_state()["scheduled"] == [[T0 + 5, "second"], [T0 + 10, "first"]]
    assert after.export_state()["inbox_offset"] == inbox.stat().st_size
