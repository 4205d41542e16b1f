"""The report's plotly.js is packed once and cached in the run store
(:mod:`tradeloop.analysis.report_assets`): reused while sound, packed again when damaged,
and the report built from it still carries the whole bundle."""

from __future__ import annotations

import base64
import gzip
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tradeloop.analysis.report import write_report
from tradeloop.analysis.report_assets import (
    REPORT_ASSETS_FOLDER,
    packed_plotly,
    plotly_js,
    plotly_script,
)
from tradeloop.analysis.validation import ValidationConfig
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec
from tradeloop.engine.service import BacktestJob, run_backtest_job


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return plotly_js().encode("utf-8")


def _cached(cache: Path) -> list[Path]:
    return sorted(cache.glob("plotly-*.js.gz"))


def _unpacked_from(html: str) -> bytes:
    """plotly.js as the report's script tag carries it (base64 of gzip)."""
    found = re.search(r'var b64 = "([A-Za-z0-9+/=]+)";', html)
    assert found is not None
    return gzip.decompress(base64.b64decode(found.group(1)))


def test_packed_plotly_is_cached_once_and_reused(tmp_path: Path, bundle: bytes) -> None:
    # Arrange
    cache = tmp_path / REPORT_ASSETS_FOLDER
    # Act
    first = packed_plotly(cache)
    (stored,) = _cached(cache)
    before = stored.stat()
    second = packed_plotly(cache)
    # Assert: one file, read again as it was (a rewrite would be a new file by rename)
    assert gzip.decompress(first) == bundle
    assert second == first
    assert stored.read_bytes() == first
    assert _cached(cache) == [stored]
    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not list(cache.glob("*.tmp"))


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "trailer lost": lambda data: data[:-8],
    "one byte flipped": lambda data: data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:],
    "empty": lambda data: b"",
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_cached_file_is_packed_again(tmp_path: Path, bundle: bytes, damage: str) -> None:
    # Arrange: a cached file damaged in place (same name)
    cache = tmp_path / REPORT_ASSETS_FOLDER
    sound = packed_plotly(cache)
    (stored,) = _cached(cache)
    stored.write_bytes(DAMAGE[damage](sound))
    # Act
    again = packed_plotly(cache)
    # Assert: the whole bundle again, and the cache holds the sound file under its name
    assert gzip.decompress(again) == bundle
    assert _cached(cache) == [stored]
    assert stored.read_bytes() == sound


def test_an_unwritable_cache_only_costs_the_packing(tmp_path: Path, bundle: bytes) -> None:
    # Arrange: the cache folder's place is taken by a file
    cache = tmp_path / "not-a-folder"
    cache.write_text("x")
    # Act / Assert
    assert gzip.decompress(packed_plotly(cache)) == bundle


def test_report_with_the_cache_carries_the_whole_bundle(tmp_path: Path, bundle: bytes) -> None:
    # Arrange
    cache = tmp_path / REPORT_ASSETS_FOLDER
    ts = np.arange(100, dtype=np.int64) * 3_600_000_000_000
    equity = 1_000.0 + np.cumsum(np.ones(100))
    # Act
    path = write_report(
        tmp_path / "report.html", title="t", ts=ts, equity=equity, trades=[], assets=cache
    )
    # Assert: the script unpacks to plotly.js, and is the one packed without a cache
    html = path.read_text(encoding="utf-8")
    assert _unpacked_from(html) == bundle
    assert plotly_script(cache) in html
    assert plotly_script(cache) == plotly_script(None)
    assert len(_cached(cache)) == 1


def test_backtests_into_a_run_store_share_one_cached_bundle(
    sample_1h: Path, tmp_path: Path, bundle: bytes
) -> None:
    # Arrange
    root = tmp_path / "output"
    job = BacktestJob(
        strategy="sma_cross",
        data=(DataSpec(sample_1h),),
        config=RunConfig(fee=0.001, timeframe="4h", end=1_530_403_200_000_000_000),
        validation=ValidationConfig(seed=7, mc_sims=100),
        report=True,
        output_root=root,
        strategies_dir=None,
    )
    # Act
    first, second = run_backtest_job(job), run_backtest_job(job)
    # Assert: one cached file in the run store; both reports carry the bundle
    assert len(_cached(root / REPORT_ASSETS_FOLDER)) == 1
    for outcome in (first, second):
        assert _unpacked_from(outcome.paths["report"].read_text(encoding="utf-8")) == bundle
