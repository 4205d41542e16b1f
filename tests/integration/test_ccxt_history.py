"""Real ccxt against the local venue server: fetched history equals the recorded source."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as pf
import pyarrow.parquet as pq
import pytest

from tradeloop.adapters.ccxt import CcxtHistorySource
from tradeloop.config.settings import ExchangeSettings, RetrySettings
from tradeloop.core.time import parse_time
from tradeloop.core.timeframes import is_bar_complete, timeframe_ns
from tradeloop.data.cache import CacheKey, ParquetCache, timestamps_ns
from tradeloop.data.cached import load_cached
from tradeloop.data.history import HistoricalDataProvider
from tradeloop.testing.venue import LocalVenueServer, recorded_venues

OHLCV = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def venue(shared_data: Path) -> Iterator[LocalVenueServer]:
    with LocalVenueServer(recorded_venues(shared_data)) as server:
        yield server


def _provider(
    server: LocalVenueServer, root: Path, exchange: str = "binance", market: str = "spot"
) -> HistoricalDataProvider:
    source = CcxtHistorySource(
        exchange,
        market,
        ExchangeSettings(url=server.url, rate_limit_ms=1),
        RetrySettings(max_retries=3, backoff_base_s=0.01),
    )
    return HistoricalDataProvider(source, ParquetCache(root))


def _source_frame(path: Path, start: str | None = None, end: str | None = None) -> pa.Table:
    table = pf.read_table(path)
    ts = np.asarray(table.column("date").cast(pa.int64()).to_numpy(), dtype=np.int64)
    mask = np.ones(ts.shape[0], dtype=bool)
    if start:
        mask &= ts >= parse_time(start)
    if end:
        mask &= ts < parse_time(end)
    return table.filter(pa.array(mask))


def _assert_bit_identical(cached: pa.Table, source: pa.Table) -> None:
    assert cached.num_rows == source.num_rows
    src_ts = np.asarray(source.column("date").cast(pa.int64()).to_numpy(), dtype=np.int64)
    assert np.array_equal(timestamps_ns(cached), src_ts)
    for name in OHLCV:
        got = cached.column(name).to_numpy()
        want = source.column(name).to_numpy()
        # bit for bit: compare the float64 bit patterns, not values with a tolerance
        assert np.array_equal(got.view(np.int64), want.view(np.int64)), name


def test_binance_spot_1m_full_fetch_equals_source_bit_for_bit(
    venue: LocalVenueServer, shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    source = shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"
    provider = _provider(venue, tmp_path)
    # Act: a range wider than the data, so pages before and after it come back empty
    report = provider.fetch("BTC/USDT", "1m", parse_time("2025-05-19"), parse_time("2025-08-20"))
    # Assert
    cached = provider.cache.read(provider.key("BTC/USDT", "1m"))
    assert cached is not None
    _assert_bit_identical(cached, pf.read_table(source))
    assert report.rows_total == 130_708
    assert provider.source.stats.last_weight is not None  # X-MBX-USED-WEIGHT-1M was read


def test_binance_spot_1h_fetch_equals_source_and_keeps_the_outages(
    venue: LocalVenueServer, shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    source = shared_data / "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather"
    provider = _provider(venue, tmp_path)
    # Act
    provider.fetch("BTC/USDT", "1h", parse_time("2017-08-01"), parse_time("2024-05-01"))
    rerun = provider.fetch("BTC/USDT", "1h", parse_time("2017-08-01"), parse_time("2024-05-01"))
    # Assert: the 28 outage gaps are covered, so a re-run asks for nothing
    cached = provider.cache.read(provider.key("BTC/USDT", "1h"))
    assert cached is not None
    _assert_bit_identical(cached, pf.read_table(source))
    assert rerun.up_to_date
    assert rerun.pages == 0


def test_rerun_with_a_wider_range_fetches_only_the_missing_edges(
    venue: LocalVenueServer, shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    provider = _provider(venue, tmp_path)
    provider.fetch("BTC/USDT", "1m", parse_time("2025-06-02"), parse_time("2025-06-03"))
    before = venue.count("/api/v3/klines")
    # Act
    report = provider.fetch("BTC/USDT", "1m", parse_time("2025-06-01"), parse_time("2025-06-04"))
    # Assert: two missing days, two pages of 1000 bars each side at most
    assert report.missing_before == [
        (parse_time("2025-06-01"), parse_time("2025-06-02")),
        (parse_time("2025-06-03"), parse_time("2025-06-04")),
    ]
    assert venue.count("/api/v3/klines") - before == report.pages == 4
    cached = provider.cache.read(provider.key("BTC/USDT", "1m"))
    assert cached is not None
    source = shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"
    _assert_bit_identical(cached, _source_frame(source, "2025-06-01", "2025-06-04"))


def test_binance_usdm_perp_candles_funding_and_open_interest(
    venue: LocalVenueServer, shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    provider = _provider(venue, tmp_path, market="perp")
    start, end = parse_time("2025-05-25"), parse_time("2025-06-25")
    # Act
    for dataset in ("funding_rate", "open_interest_5m", "1m"):
        provider.fetch("BTC/USDT", dataset, start, end)
    provider.refresh_orderflow("BTC/USDT", "1m")
    # Assert: candles bit for bit
    key = provider.key("BTC/USDT", "1m")
    assert key.symbol == "BTC/USDT:USDT"
    cached = provider.cache.read(key)
    assert cached is not None
    _assert_bit_identical(
        cached.select(["timestamp", *OHLCV]),
        pf.read_table(shared_data / "crypto_1m/binance_usdm_2025/BTC_USDT_USDT-1m-futures.feather"),
    )
    # funding: every event with its millisecond jitter, rates bit for bit
    funding_src = pf.read_table(
        shared_data / "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-8h-funding_rate.feather"
    )
    funding = provider.cache.read(key.with_dataset("funding_rate"))
    assert funding is not None
    src_ts = np.asarray(funding_src.column("date").cast(pa.int64()).to_numpy())
    assert np.array_equal(timestamps_ns(funding), src_ts)
    assert np.array_equal(funding.column("funding_rate").to_numpy(), funding_src["open"].to_numpy())
    assert int(np.count_nonzero(src_ts % (8 * 3600 * 10**9))) == 47  # the documented jitter
    # as-of join: the bar at each funding time carries that event's rate despite the jitter
    bar_ts = timestamps_ns(cached)
    rate = cached.column("funding_rate").to_numpy()
    for t, r in zip(src_ts, funding_src["open"].to_numpy(), strict=True):
        on_grid = (t // (8 * 3600 * 10**9)) * (8 * 3600 * 10**9)
        i = int(np.searchsorted(bar_ts, on_grid))
        if i < bar_ts.shape[0] and bar_ts[i] == on_grid:
            assert rate[i] == r
    oi = provider.cache.read(key.with_dataset("open_interest_5m"))
    assert oi is not None
    assert oi.num_rows == 8_639
    aligned = cached.column("open_interest").to_numpy()
    assert np.isfinite(aligned[5:]).all()
    assert provider.cache.metadata(key)["cvd_method"] == "bar_sign"


def test_binance_trades_give_the_aggressor_side_cvd(
    venue: LocalVenueServer, shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    provider = _provider(venue, tmp_path)
    start, end = parse_time("2019-10-11"), parse_time("2019-10-14")
    # Act
    provider.fetch("XRP/ETH", "trades", start, end)
    provider.fetch("XRP/ETH", "1m", start, end)
    provider.refresh_orderflow("XRP/ETH", "1m")
    # Assert: 12,477 trades with ids, prices, amounts and taker sides as recorded
    src = pf.read_table(shared_data / "trades/binance_xrpeth_2019/XRP_ETH-trades.feather")
    key = provider.key("XRP/ETH", "1m")
    trades = provider.cache.read(key.with_dataset("trades"))
    assert trades is not None
    assert trades.num_rows == 12_477
    assert trades.column("trade_id").to_pylist() == src.column("id").to_pylist()
    assert trades.column("side").to_pylist() == src.column("side").to_pylist()
    assert np.array_equal(trades.column("price").to_numpy(), src.column("price").to_numpy())
    assert np.array_equal(trades.column("amount").to_numpy(), src.column("amount").to_numpy())
    # CVD from the aggressor side ends at buy - sell = +867,601 XRP (shared data README)
    candles = provider.cache.read(key)
    assert candles is not None
    assert provider.cache.metadata(key)["cvd_method"] == "trades"
    assert set(candles.column("cvd_method").to_pylist()) == {"trades"}
    assert candles.column("cvd").to_numpy()[-1] == pytest.approx(867_601.0, abs=0.5)


def test_bybit_kline_fetch_through_ccxt_equals_source(
    venue: LocalVenueServer, shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    spot = _provider(venue, tmp_path, exchange="bybit")
    perp = _provider(venue, tmp_path, exchange="bybit", market="perp")
    # Act
    spot.fetch("BTC/USDT", "1m", parse_time("2025-06-01"), parse_time("2025-06-03"))
    perp.fetch("BTC/USDT", "1m", parse_time("2025-06-01"), parse_time("2025-06-02"))
    # Assert
    src_spot = _source_frame(
        shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather", "2025-06-01", "2025-06-03"
    )
    src_perp = _source_frame(
        shared_data / "crypto_1m/binance_usdm_2025/BTC_USDT_USDT-1m-futures.feather",
        "2025-06-01",
        "2025-06-02",
    )
    got_spot = spot.cache.read(spot.key("BTC/USDT", "1m"))
    got_perp = perp.cache.read(perp.key("BTC/USDT", "1m"))
    assert got_spot is not None
    assert got_perp is not None
    _assert_bit_identical(got_spot, src_spot)
    _assert_bit_identical(got_perp, src_perp)
    assert venue.count("/v5/market/kline") >= 5


@pytest.mark.parametrize(
    ("exchange", "path", "query", "open_index"),
    [
        ("binance", "/api/v3/klines", "symbol=BTCUSDT&interval=1h&startTime={ms}&limit=1", None),
        (
            "bybit",
            "/v5/market/kline",
            "category=spot&symbol=BTCUSDT&interval=60&start={ms}&end={ms}&limit=1",
            "list",
        ),
    ],
)
def test_cached_bar_is_stamped_by_open_time_available_at_close(
    venue: LocalVenueServer,
    tmp_path: Path,
    exchange: str,
    path: str,
    query: str,
    open_index: str | None,
) -> None:
    # Arrange
    provider = _provider(venue, tmp_path, exchange=exchange)
    t = parse_time("2025-06-01T05:00:00Z")
    ms = t // 1_000_000
    with urllib.request.urlopen(f"{venue.url}{path}?{query.format(ms=ms)}") as resp:
        body = json.loads(resp.read())
    row = body[0] if open_index is None else body["result"]["list"][0]
    # Act
    provider.fetch("BTC/USDT", "1h", t, t + timeframe_ns("1h"))
    cached = provider.cache.read(provider.key("BTC/USDT", "1h"))
    # Assert: the wire's open time is the stored stamp; the bar is usable only once closed
    assert cached is not None
    stored = int(timestamps_ns(cached)[0])
    assert stored == int(row[0]) * 1_000_000 == t
    if exchange == "binance":
        assert (int(row[6]) + 1) * 1_000_000 == stored + timeframe_ns("1h")  # close time + 1 ms
    assert not is_bar_complete(stored, "1h", stored + timeframe_ns("1h") - 1)
    assert is_bar_complete(stored, "1h", stored + timeframe_ns("1h"))


def test_load_cached_builds_a_missing_timeframe_from_1m(
    venue: LocalVenueServer, shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    provider = _provider(venue, tmp_path)
    provider.fetch("BTC/USDT", "1m", parse_time("2025-06-01"), parse_time("2025-06-08"))
    provider.refresh_orderflow("BTC/USDT", "1m")
    # Act
    loaded = load_cached("binance", "BTC/USDT", "1h", root=tmp_path)
    # Assert: each 1h high is the max of its sixty recorded 1m highs
    assert loaded.meta["resampled_from"] == "1m"
    assert len(loaded.bars) == 7 * 24
    src = _source_frame(
        shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather", "2025-06-01", "2025-06-08"
    )
    highs = src.column("high").to_numpy().reshape(-1, 60).max(axis=1)
    assert np.array_equal(loaded.bars.high, highs)
    assert loaded.bars.cvd is not None
    assert loaded.meta["cvd_method"] == "bar_sign"
    assert loaded.synthetic is None


def test_cache_file_is_plain_parquet_readable_by_the_file_loader(
    venue: LocalVenueServer, tmp_path: Path
) -> None:
    # Arrange
    provider = _provider(venue, tmp_path)
    provider.fetch("BTC/USDT", "5m", parse_time("2025-06-01"), parse_time("2025-06-02"))
    provider.refresh_orderflow("BTC/USDT", "5m")
    path = provider.cache.path(provider.key("BTC/USDT", "5m"))
    # Act
    from tradeloop.data.loader import load_ohlcv

    loaded = load_ohlcv(path, symbol="BTC/USDT")
    # Assert
    assert len(loaded.bars) == 288
    assert loaded.timeframe == "5m"
    assert loaded.bars.cvd is not None
    assert pq.read_schema(path).field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert CacheKey("binance", "spot", "BTC/USDT", "5m").relative_path() == Path(
        "binance/spot/BTC_USDT/5m.parquet"
    )
