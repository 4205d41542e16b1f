"""loop.toml: a valid file reads; every kind of mistake is refused naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.engine.loop_config import load_loop_config

GOOD = """
[run]
id = "loop-1"
market = "perp"
symbols = ["BTC/USDT:USDT"]
timeframe = "1m"
state = "state.db"
until = "2025-06-01T00:00:00Z"

[risk]
profile = "default"

[[strategies]]
name = "zone_magnet"
weight = 0.5

[[strategies]]
name = "sma_cross"
weight = 0.5
params = { fast = 5, slow = 20 }

[feedback]
adapt_every = 3
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "loop.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_reads_with_paths_relative_to_it(tmp_path: Path) -> None:
    cfg = load_loop_config(_write(tmp_path, GOOD))
    assert cfg.run.id == "loop-1"
    assert [s.name for s in cfg.strategies] == ["zone_magnet", "sma_cross"]
    assert cfg.strategies[1].params == {"fast": 5, "slow": 20}
    assert cfg.path(cfg.run.state) == str(tmp_path / "state.db")
    assert cfg.path("postgresql://u@h/db") == "postgresql://u@h/db"
    assert cfg.risk_setting() == "default"
    assert cfg.feedback.adapt_every == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("adapt_every = 3", "adapt_every = 0"),
            r"feedback\.adapt_every: .*greater than or equal to 1",
        ),
        (
            ("weight = 0.5\n\n[[strategies]]", "weight = 0.9\n\n[[strategies]]"),
            r"strategies: .*add up to 1\.4",
        ),
        (
            ('timeframe = "1m"', 'timeframe = "1m"\ntimefrme = "5m"'),
            r"run\.timefrme: Extra inputs are not permitted",
        ),
        (('symbols = ["BTC/USDT:USDT"]', "symbols = []"), r"run\.symbols: "),
        (('until = "2025-06-01T00:00:00Z"', 'until = "next tuesday"'), r"run\.until: .*until"),
        (
            ('name = "sma_cross"', 'name = "zone_magnet"'),
            r"strategies: strategy 'zone_magnet' appears twice",
        ),
        (
            ('market = "perp"', 'market = "futures"'),
            r"run\.market: Input should be 'spot' or 'perp'",
        ),
    ],
)
def test_mistakes_name_the_file_and_the_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError, match=message) as err:
        load_loop_config(path)
    assert str(path) in str(err.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_loop_config(_write(tmp_path, "[run\nid = 1"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_loop_config(tmp_path / "nope.toml")


def test_a_risk_file_is_read_relative_to_the_loop_file(tmp_path: Path) -> None:
    (tmp_path / "risk.toml").write_text('profile = "default"\n[limits]\nmax_position_pct = 0.05\n')
    cfg = load_loop_config(
        _write(tmp_path, GOOD.replace('profile = "default"', 'file = "risk.toml"'))
    )
    assert cfg.risk_setting() == {"profile": "default", "limits": {"max_position_pct": 0.05}}
    (tmp_path / "risk.toml").write_text("[limits]\nmax_posiiton_pct = 0.05\n")
    with pytest.raises(ConfigError, match="max_posiiton_pct"):
        cfg.risk_setting()


def test_post_only_entries_in_loop_toml_reach_the_session(tmp_path: Path) -> None:
    from tradeloop.engine.loop import LoopSession

    assert load_loop_config(_write(tmp_path, GOOD)).run.post_only_entries is False
    text = GOOD.replace('timeframe = "1m"', 'timeframe = "1m"\npost_only_entries = true')
    cfg = load_loop_config(_write(tmp_path, text))
    assert cfg.run.post_only_entries is True
    assert LoopSession(cfg).config.post_only_entries is True
