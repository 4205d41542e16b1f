"""Secrets that reach the process by a flag, a file or a driver's error stay masked, also
where the terminal wraps them and where they show without their URL around them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table

from tradeloop.cli.console import Console
from tradeloop.config.redact import redact, register_arguments, register_credentials
from tradeloop.config.toml_file import read_toml
from tradeloop.core.errors import ConfigError
from tradeloop.store.backup import _pg_args
from tradeloop.store.state import PostgresStateStore

LONG_PASSWORD = "LongS3cretPassw0rd-abcdefghijklmnopqrstuvwxyz-0123456789"


def _rendered(console_width: int, *objects: object) -> str:
    out = io.StringIO()
    console = Console(file=out, width=console_width, color_system=None)
    console.print(*objects)
    return out.getvalue()


def test_a_long_dsn_wrapped_by_the_console_keeps_its_password_masked() -> None:
    # Arrange: a DSN longer than the line, in plain text and in a table cell
    dsn = f"postgresql://postgres:{LONG_PASSWORD}@127.0.0.1:5432/test"
    table = Table("state")
    table.add_row(dsn)
    # Act
    text = _rendered(40, f"Runs in {dsn}")
    cell = _rendered(30, table)
    # Assert: not the whole password, and no wrapped piece of it either
    for out in (text, cell):
        flat = "".join(out.split())
        assert LONG_PASSWORD[:12] not in flat
        assert "***" in flat
    assert "127.0.0.1:5432" in "".join(text.split())


def test_command_line_secrets_are_registered_and_masked_on_their_own() -> None:
    # Arrange: a DSN with a percent-encoded password, a webhook without its scheme, a key
    args = [
        "paper",
        "--state",
        "postgresql://postgres:Pw%2FSecret77@127.0.0.1:5999/test",
        "--discord-webhook",
        "discord.com/api/v10/webhooks/1/HookToken9911",
        "--api-key=ApiKey5566aa",
    ]
    # Act
    register_arguments(args)
    # Assert: each secret masked where it shows alone (as a driver's or a validator's error
    # quotes it), raw and decoded; the DSN's host stays readable
    assert "Pw%2FSecret77" not in redact('invalid percent-encoded token: "Pw%2FSecret77"')
    assert "Pw/Secret77" not in redact("password Pw/Secret77 refused")
    assert "HookToken9911" not in redact(
        "must start with https://, got 'discord.com/x/HookToken9911'"
    )
    assert "ApiKey5566aa" not in redact("key ApiKey5566aa rejected")
    assert redact("127.0.0.1:5999/test") == "127.0.0.1:5999/test"


def test_a_toml_file_registers_its_credentials(tmp_path: Path) -> None:
    # Arrange: a loop.toml with a DSN and a key named as a secret
    path = tmp_path / "loop.toml"
    path.write_text(
        '[run]\nstate = "postgresql://u:TomlPass4242@db/x"\n'
        '[alerts]\nwebhook = "https://example.test/hook/TomlHook8181"\n'
    )
    # Act
    read_toml(path, "loop file")
    # Assert
    assert redact("token TomlPass4242") == "token ***"
    assert redact("POST https://example.test/hook/TomlHook8181 failed") == "POST *** failed"


def test_a_password_with_a_raw_at_sign_is_registered_whole() -> None:
    # Act
    register_credentials("postgresql://postgres:AtPass@Word12@127.0.0.1:5999/test")
    # Assert
    assert "AtPass@Word12" not in redact("login AtPass@Word12 failed")


def test_pg_dump_gets_the_decoded_password_in_its_environment_only() -> None:
    # Act
    url, env = _pg_args("postgresql://postgres:Pct%40Pass99@127.0.0.1:5432/test")
    query_url, query_env = _pg_args(
        "postgresql://postgres@127.0.0.1:5432/test?sslmode=disable&password=QueryPass77"
    )
    # Assert: the driver reads "%40" as "@"; a password= query leaves the command line
    assert env["PGPASSWORD"] == "Pct@Pass99"
    assert url == "postgresql://postgres@127.0.0.1:5432/test"
    assert query_env["PGPASSWORD"] == "QueryPass77"
    assert "QueryPass77" not in query_url
    assert query_url.endswith("?sslmode=disable")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://postgres:Bad%ZZPass31@127.0.0.1:5999/test", "invalid PostgreSQL URL"),
        ("postgresql://postgres:Raw@Pass31@127.0.0.1:5999/test", "raw '@'"),
    ],
)
def test_an_unreadable_postgres_url_is_a_config_error_without_its_password(
    url: str, words: str
) -> None:
    # Act
    with pytest.raises(ConfigError) as info:
        PostgresStateStore(url)
    # Assert
    assert words in str(info.value)
    assert "Pass31" not in redact(str(info.value))


def test_the_cli_keeps_a_wrapped_long_password_out_of_a_narrow_terminal(pg_url: str) -> None:
    # Arrange: the real entry point, 40 columns, a password longer than the line
    dsn = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{LONG_PASSWORD}@")
    assert LONG_PASSWORD in dsn
    env = {**os.environ, "COLUMNS": "40", "TRADELOOP_STATE_URL": ""}
    # Act
    out = subprocess.run(
        [sys.executable, "-m", "tradeloop", "paper-runs", "--state", dsn],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    # Assert: the command ran (listing or "no runs"), and no piece of the password shows
    both = "".join((out.stdout + out.stderr).split())
    assert out.returncode == 0, out.stderr
    assert "127.0.0.1" in both
    for k in range(0, len(LONG_PASSWORD) - 10, 5):
        assert LONG_PASSWORD[k : k + 10] not in both


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET http://127.0.0.1:8766?auth_token=QuerySecret1/x", "QuerySecret1"),
        ("wss://stream?listenKey=QuerySecret2&x=1", "QuerySecret2"),
        ("u?access_key=QuerySecret3", "QuerySecret3"),
        ("https://discord.com/api/v10/webhooks/123/HookSecret4", "HookSecret4"),
        ("notify via tgram://123:TgSecret5/chat", "TgSecret5"),
        ("slack://A/B/SlackSecret6", "SlackSecret6"),
        ("Authorization: token HeaderSecret7", "HeaderSecret7"),
        ("X-API-Key: HeaderSecret8", "HeaderSecret8"),
        (
            "{'X-MBX-APIKEY': 'HeaderSecret9', 'APCA-API-SECRET-KEY': 'HeaderSecret9'}",
            "HeaderSecret9",
        ),
        ("token='KvSecret10'", "KvSecret10"),
    ],
)
def test_redact_masks_keys_tokens_and_channel_urls(text: str, secret: str) -> None:
    # Act
    out = redact(text)
    # Assert
    assert secret not in out
    assert "***" in out


@pytest.mark.parametrize(
    "text",
    ["the token expired yesterday", "sma_cross: fast=10 slow=30", "GET /v1/klines?symbol=BTCUSDT"],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    # Act / Assert
    assert redact(text) == text
