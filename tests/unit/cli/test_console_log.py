"""Console log lines are for people: plain extras once, structured extras left to the file."""

from __future__ import annotations

import json
import logging

from tradeloop.config.logging import ConsoleFormatter, JsonLinesFormatter


def _record() -> logging.LogRecord:
    record = logging.LogRecord(
        "tradeloop.risk.killswitch", logging.WARNING, __file__, 1,
        "risk state active -> halted: black_swan in %s", ("BTC/USDT",), None,
    )  # fmt: skip
    record.symbol = "BTC/USDT"  # already in the message
    record.bars = 42
    record.risk_event = {"cause": "black_swan", "from": "active", "to": "halted"}
    return record


def test_console_line_keeps_new_plain_extras_and_drops_repeats_and_dicts() -> None:
    # Act
    line = ConsoleFormatter().format(_record())
    # Assert
    assert line.endswith(
        "risk.killswitch: risk state active -> halted: black_swan in BTC/USDT (bars=42)"
    )
    assert "symbol=" not in line
    assert "risk_event" not in line


def test_json_log_line_keeps_every_extra() -> None:
    # Act
    payload = json.loads(JsonLinesFormatter().format(_record()))
    # Assert
    assert payload["symbol"] == "BTC/USDT"
    assert payload["bars"] == 42
    assert payload["risk_event"]["cause"] == "black_swan"
