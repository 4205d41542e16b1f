"""Faults on the wire: rate limits are waited out, failures retried, interrupted fetches resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeloop.adapters.ccxt import CcxtHistorySource
from tradeloop.config.settings import ExchangeSettings, RetrySettings
from tradeloop.core.errors import DataError, TemporaryError
from tradeloop.core.time import parse_time
from tradeloop.data.cache import ParquetCache
from tradeloop.data.history import HistoricalDataProvider
from tradeloop.testing.venue import Fault, LocalVenueServer, recorded_venues

START, END = parse_time("2025-06-01"), parse_time("2025-06-15")  # 20,160 bars, 21 pages


@pytest.fixture
def venue(shared_data: Path) -> Iterator[LocalVenueServer]:
    with LocalVenueServer(recorded_venues(shared_data)) as server:
        yield server


def _provider(
    server: LocalVenueServer,
    root: Path,
    *,
    retries: int = 4,
    chunk_pages: int = 3,
    sleeps: list[float] | None = None,
) -> HistoricalDataProvider:
    source = CcxtHistorySource(
        "binance",
        "spot",
        ExchangeSettings(url=server.url, rate_limit_ms=1),
        RetrySettings(max_retries=retries, backoff_base_s=0.01, backoff_max_s=0.05),
        sleep=None if sleeps is None else sleeps.append,
    )
    return HistoricalDataProvider(source, ParquetCache(root), chunk_pages=chunk_pages)


def _file_bytes(provider: HistoricalDataProvider, dataset: str = "1m") -> bytes:
    return provider.cache.path(provider.key("BTC/USDT", dataset)).read_bytes()


def test_interrupted_fetch_resumes_and_equals_an_uninterrupted_one(
    venue: LocalVenueServer, tmp_path: Path
) -> None:
    # Arrange: a reference fetch, then the server drops every connection after 8 pages
    reference = _provider(venue, tmp_path / "reference")
    reference.fetch("BTC/USDT", "1m", START, END)
    interrupted = _provider(venue, tmp_path / "resumed")
    venue.add_fault(Fault(None, path="/api/v3/klines", at=9, times=-1))
    # Act
    with pytest.raises(TemporaryError, match="still failing"):
        interrupted.fetch("BTC/USDT", "1m", START, END)
    key = interrupted.key("BTC/USDT", "1m")
    kept = interrupted.cache.coverage(key)
    venue.clear_faults()
    before = venue.count("/api/v3/klines")
    report = interrupted.fetch("BTC/USDT", "1m", START, END)
    # Assert: the first run kept its 8 pages; the second asked only for the rest
    assert kept == [(START, START + 8 * 1000 * 60 * 10**9)]
    assert report.missing_before == [(kept[0][1], END)]
    assert venue.count("/api/v3/klines") - before == 13
    assert interrupted.cache.pending_parts(key) == 0
    assert _file_bytes(interrupted) == _file_bytes(reference)


def test_rate_limits_429_and_418_are_waited_out_for_retry_after_and_counted(
    venue: LocalVenueServer, tmp_path: Path
) -> None:
    # Arrange: a 429 and a 418 ban, each with Retry-After: 1 (the real clock waits 2 s)
    reference = _provider(venue, tmp_path / "reference")
    reference.fetch("BTC/USDT", "1m", START, END)
    provider = _provider(venue, tmp_path / "limited")
    limited = venue.add_fault(Fault(429, path="/api/v3/klines", at=3, retry_after=1))
    banned = venue.add_fault(Fault(418, path="/api/v3/klines", at=8, retry_after=1))
    # Act
    provider.fetch("BTC/USDT", "1m", START, END)
    # Assert
    stats = provider.source.stats
    assert limited.fired == banned.fired == 1
    assert stats.rate_limited == 1
    assert stats.banned == 1
    assert stats.retry_after_s == [1.0, 1.0]
    assert stats.waited_s >= 2.0  # each wait is the larger of backoff and Retry-After
    assert venue.count("/api/v3/klines", status=429) == 1
    assert venue.count("/api/v3/klines", status=418) == 1
    assert _file_bytes(provider) == _file_bytes(reference)


def test_server_errors_and_dropped_connections_are_retried_with_backoff(
    venue: LocalVenueServer, tmp_path: Path
) -> None:
    # Arrange
    sleeps: list[float] = []
    provider = _provider(venue, tmp_path, retries=5, sleeps=sleeps)
    venue.add_fault(Fault(503, path="/api/v3/klines", at=2, times=2))
    venue.add_fault(Fault(None, path="/api/v3/klines", at=6))
    venue.add_fault(Fault(502, path="/api/v3/klines", at=9))
    # Act
    report = provider.fetch("BTC/USDT", "1m", START, END)
    # Assert: exponential backoff 0.01, 0.02 for the two 503s in a row, then 0.01 each
    stats = provider.source.stats
    assert stats.server_errors == 3
    assert stats.network_errors == 1
    assert sleeps == [0.01, 0.02, 0.01, 0.01]
    assert report.rows_total == 20_160


def test_retries_exhausted_keep_the_pages_and_report_a_temporary_error(
    venue: LocalVenueServer, tmp_path: Path
) -> None:
    # Arrange
    sleeps: list[float] = []
    provider = _provider(venue, tmp_path, retries=2, sleeps=sleeps, chunk_pages=100)
    venue.add_fault(Fault(500, path="/api/v3/klines", at=5, times=-1))
    # Act
    with pytest.raises(TemporaryError):
        provider.fetch("BTC/USDT", "1m", START, END)
    # Assert: 4 pages persisted even though the chunk was not full
    key = provider.key("BTC/USDT", "1m")
    assert provider.cache.coverage(key) == [(START, START + 4 * 1000 * 60 * 10**9)]
    assert sleeps == [0.01, 0.02]


def test_corrupt_cache_file_is_reported_and_kept_until_force(
    venue: LocalVenueServer, tmp_path: Path
) -> None:
    # Arrange
    provider = _provider(venue, tmp_path)
    path = provider.cache.path(provider.key("BTC/USDT", "1m"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    # Act / Assert: a clear error, file untouched
    with pytest.raises(DataError, match=r"corrupt.*--force"):
        provider.fetch("BTC/USDT", "1m", START, END)
    assert path.read_bytes() == b"PAR1 this is not parquet"
    report = provider.fetch("BTC/USDT", "1m", START, END, force=True)
    assert report.rows_total == 20_160
