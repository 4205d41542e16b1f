"""The data gate on loaded bars and on a paper session's warm-up history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.errors import DataError
from tradeloop.data import load_ohlcv
from tradeloop.data.gate import enforce, gate_report
from tradeloop.engine.paper import PaperConfig, _gate_warmup

MINUTE = 60_000_000_000


def _warmup(n: int = 200) -> list[tuple[int, float, float, float, float, float]]:
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    return [
        (i * MINUTE, float(c), float(c) * 1.001, float(c) * 0.999, float(c), 1.0)
        for i, c in enumerate(close)
    ]


def _paper(tmp_path: Path, allow: bool) -> PaperConfig:
    return PaperConfig(
        exchange="binance",
        symbols=("BTC/USDT",),
        timeframe="1m",
        run_id="r",
        state_url=str(tmp_path / "state.db"),
        status_path=tmp_path / "status.json",
        allow_data_issues=allow,
    )


def test_clean_sample_passes_the_gate(sample_1h: Path) -> None:
    # Act
    report = gate_report(load_ohlcv(sample_1h))
    # Assert
    assert report.ok, report.failures
    assert enforce([report], allow=False) == []


def test_warmup_with_an_extreme_bar_stops_the_session(tmp_path: Path) -> None:
    # Arrange
    rows = _warmup()
    t, *_ = rows[150]
    rows[150] = (t, 1e300, 1e300, 1e300, 1e300, 1.0)
    # Act / Assert
    with pytest.raises(DataError, match=r"extreme values: 1 — row 150 \(1970-01-01T02:30:00Z\)"):
        _gate_warmup({"BTC/USDT": rows}, _paper(tmp_path, allow=False))
    _gate_warmup({"BTC/USDT": rows}, _paper(tmp_path, allow=True))  # allowed: logged only


def test_clean_warmup_passes(tmp_path: Path) -> None:
    # Act / Assert: no exception
    _gate_warmup({"BTC/USDT": _warmup()}, _paper(tmp_path, allow=False))


def test_interpolated_warmup_names_the_stretch(tmp_path: Path) -> None:
    # Arrange: bars 100..119 on a straight line
    rows = _warmup()
    a, b = rows[99][4], rows[120][4]
    for k in range(100, 120):
        c = a + (b - a) * (k - 99) / 21
        rows[k] = (rows[k][0], c, c, c, c, 1.0)
    # Act / Assert: bars 100..119 (flat OHLC on the line; 99 and 120 have real ranges)
    with pytest.raises(DataError, match=r"interpolated runs \(5\+ bars\): 1 — rows 100-119"):
        _gate_warmup({"BTC/USDT": rows}, _paper(tmp_path, allow=False))


def test_cache_key_taken_beside_the_load_is_the_key(tmp_path: Path) -> None:
    # Arrange: a data file, and a second cache that hashes it in the caller's thread
    import hashlib

    from tradeloop.data.gate import GateCache

    data = tmp_path / "BTC_USDT-1m.csv"
    data.write_bytes(b"timestamp,open,high,low,close,volume\n" + b"0,1,1,1,1,1\n" * 50_000)
    soon_cache, now_cache = GateCache(tmp_path / "a"), GateCache(tmp_path / "b")
    options = {"symbol": None, "repair": False}
    # Act
    soon = soon_cache.key_soon(data, options)
    missing = soon_cache.key_soon(tmp_path / "absent.csv", options)
    # Assert: the same key, the file's sha256 kept for the run record; no key for no file
    assert soon.result() == now_cache.key(data, options)
    assert soon_cache.digests == {
        str(data.resolve()): hashlib.sha256(data.read_bytes()).hexdigest()
    }
    assert missing.result() is None


def _csv(path: Path, rows: list[tuple[int, float, float, float, float, float]]) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{t // 1_000_000},{o!r},{h!r},{lo!r},{c!r},{v!r}" for t, o, h, lo, c, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("layout", ["newest_first", "duplicate_above", "outside_sessions"])
def test_findings_name_the_files_own_row(tmp_path: Path, layout: str) -> None:
    # Arrange: one 1e300 bar at file row 150 of a file whose bars are not its rows: stored
    # newest first, with a duplicated row above it dropped by --repair, or with bars outside
    # the XNYS session (2024-01-02 from 14:00 UTC, the session opens 14:30) dropped
    from tradeloop.data.gate import keep_sessions
    from tradeloop.data.sessions import sessions_for

    start = 1_704_204_000 * 10**9 if layout == "outside_sessions" else 0  # 2024-01-02 14:00
    rows = [(start + t, *rest) for t, *rest in _warmup()]  # type: ignore[misc]
    if layout == "newest_first":
        rows = rows[::-1]
    if layout == "duplicate_above":
        rows.insert(40, rows[39])
    t = rows[150][0]
    rows[150] = (t, 1e300, 1e300, 1e300, 1e300, 1.0)
    path = _csv(tmp_path / "BTC_USDT-1m.csv", rows)
    # Act
    item = load_ohlcv(path, repair=layout == "duplicate_above")
    if layout == "outside_sessions":
        item, dropped = keep_sessions(item, sessions_for("XNYS", start, start + 200 * MINUTE))
        assert dropped == 30
    report = gate_report(item)
    # Assert
    finding = next(f for f in report.findings if f.check == "extreme values")
    assert finding.rows == (150,)
    assert finding.where[0].startswith("row 150 (")
