"""Secrets never reach output, logs or files: every command run with a DSN password, API keys
and a webhook token that are known strings, then all output and every file written is searched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

RunCli = Callable[..., Result]

PASSWORD = "pw-S3cr3t-7781"
API_KEY = "key-S3cr3t-4410"
API_SECRET = "sec-S3cr3t-9902"
HOOK_TOKEN = "hook-S3cr3t-5512"
SECRETS = (PASSWORD, API_KEY, API_SECRET, HOOK_TOKEN)
WEBHOOK = f"https://discord.com/api/webhooks/4242/{HOOK_TOKEN}"

LEAKY_STRATEGY = '''
import logging
import os

from tradeloop.strategy import Strategy

log = logging.getLogger("tradeloop.user")


class Leaky(Strategy):
    """A strategy whose library echoes its connection settings (what must not leak)."""

    name = "leaky"

    def on_bar(self, view, portfolio):
        key = os.environ["TRADELOOP_BINANCE_API_KEY"]
        log.warning("connecting with %s and key %s", os.environ["LEAKY_DSN"], key)
        if view.i > 40:
            raise RuntimeError(
                f"connect failed: {os.environ['LEAKY_DSN']} api_key={key} "
                f"secret {os.environ['TRADELOOP_BINANCE_SECRET']} hook {os.environ['LEAKY_HOOK']}"
            )
        return []
'''


@pytest.fixture
def env(pg_url: str) -> dict[str, str]:
    dsn = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    assert PASSWORD in dsn
    return {
        "TRADELOOP_BINANCE_API_KEY": API_KEY,
        "TRADELOOP_BINANCE_SECRET": API_SECRET,
        "TRADELOOP_DISCORD_WEBHOOK_URL": WEBHOOK,
        "LEAKY_DSN": dsn,
        "LEAKY_HOOK": WEBHOOK,
    }


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_every_command_keeps_secrets_out_of_output_logs_and_files(
    env: dict[str, str], run_cli: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange
    dsn = env["LEAKY_DSN"]
    dead_dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"
    strategy = tmp_path / "leaky.py"
    strategy.write_text(LEAKY_STRATEGY)
    loop = tmp_path / "loop.toml"
    loop.write_text(
        "[run]\n"
        'exchange = "binance"\nsymbols = ["BTC/USDT"]\ntimeframe = "1m"\n'
        f'state = "{dsn}"\nstatus = "{tmp_path / "loop_status.json"}"\n'
        f'[bus]\nurl = "redis://:{PASSWORD}@127.0.0.1:6379/0"\n'
        '[[strategies]]\nname = "sma_cross"\n'
    )
    commands = [
        ("paper-runs", "--state", dsn),
        ("paper-runs", "--state", dsn, "--json"),
        ("paper-runs", "--state", dead_dsn),
        ("backtest", "-s", f"{strategy}:Leaky", "-d", str(sample_1h), "--no-report", "-v",
         "--end", "2017-09-01", "--out", str(tmp_path / "leaky_run")),
        ("backtest", "-s", "sma_cross", "-d", str(sample_1h), "--end", "2017-10-01",
         "--out", str(tmp_path / "run")),
        ("paper", "-s", "sma_cross", "--exchange", "binance", "--symbol", "BTC/USDT",
         "--timeframe", "1m", "--state", dead_dsn, "--discord-webhook", WEBHOOK,
         "--log-file", str(tmp_path / "paper.log"),
         "--status-file", str(tmp_path / "status.json"), "-v"),
        ("run", "--config", str(loop), "--check", "--discord-webhook", WEBHOOK),
        ("data", "check", str(sample_1h)),
        ("strategies", "--strategies-dir", str(tmp_path)),
    ]  # fmt: skip
    # Act
    results = [run_cli(*args, env=env) for args in commands]
    # Assert: every command ran (and the leaky ones had the secrets to print)
    by_command = {" ".join(a[:2]): r for a, r in zip(commands, results, strict=True)}
    assert results[0].exit_code == 0, results[0].output
    assert results[2].exit_code != 0
    assert results[3].exit_code == 4, results[3].output  # the strategy's exception
    assert results[4].exit_code == 0, results[4].output
    leaky = results[3].output
    assert "postgres:***@" in leaky  # redacted, not dropped
    assert "api_key=***" in leaky
    assert leaky.count("***") >= 3  # the DSN password, the key, the secret and the webhook
    for args, result in zip(commands, results, strict=True):
        assert not _leaks(result.output), (args, result.output)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert not _leaks(str(result.exception)), args
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "leaky.py"]
    assert any(p.name == "run.json" for p in written)
    assert any(p.name == "paper.log" for p in written)
    for path in written:
        if path.name == "loop.toml":
            continue  # the user's own config file
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert not _leaks(text), path
    assert by_command  # every command's output was searched
