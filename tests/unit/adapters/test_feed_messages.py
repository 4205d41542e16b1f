"""Kline stream formats: real-format messages, URLs, symbols, timeframes, backoff, settings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tradeloop.adapters.feeds import (
    BinanceKlineCodec,
    BybitKlineCodec,
    FeedStatus,
    KlineStream,
    KlineUpdate,
    MalformedMessageError,
    SubscriptionRejectedError,
    backoff_delay,
    symbol_id,
)
from tradeloop.config.settings import ExchangeSettings, load_settings
from tradeloop.core.errors import ConfigError

# Captured from wss://stream.binance.com:9443/stream?streams=btcusdt@kline_1m (shape unchanged).
BINANCE_KLINE = (
    '{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1748736059995,"s":"BTCUSDT",'
    '"k":{"t":1748736000000,"T":1748736059999,"s":"BTCUSDT","i":"1m","f":4981234560,'
    '"L":4981236001,"o":"104591.88000000","c":"104647.11000000","h":"104647.11000000",'
    '"l":"104591.88000000","v":"10.71688000","n":1442,"x":true,"q":"1121398.12345670",'
    '"V":"6.20011000","Q":"648807.50022200","B":"0"}}}'
)
BYBIT_KLINE = (
    '{"topic":"kline.5.BTCUSDT","data":[{"start":1748736000000,"end":1748736299999,'
    '"interval":"5","open":"104591.9","close":"104600.1","high":"104650","low":"104590",'
    '"volume":"12.345","turnover":"1291234.5","confirm":false,"timestamp":1748736012345}],'
    '"ts":1748736012345,"type":"snapshot"}'
)


def test_binance_combined_kline_parses_to_a_closed_update() -> None:
    # Arrange
    codec = BinanceKlineCodec(["BTC/USDT", "ETH/USDT"], ["1m"])
    # Act
    (update,) = codec.parse(BINANCE_KLINE)
    # Assert
    assert update == KlineUpdate(
        "binance",
        "BTC/USDT",
        "1m",
        1748736000000 * 1_000_000,
        104591.88,
        104647.11,
        104591.88,
        104647.11,
        10.71688,
        True,
    )


def test_binance_raw_stream_event_and_subscribe_result_are_understood() -> None:
    codec = BinanceKlineCodec(["BTC/USDT:USDT"], ["1m"], market="perp")
    raw_event = BINANCE_KLINE[BINANCE_KLINE.index('{"e"') : -1]
    assert codec.parse(raw_event)[0].symbol == "BTC/USDT:USDT"
    assert codec.parse('{"result":null,"id":1}') == []


@pytest.mark.parametrize(
    "raw",
    [
        '{"stream":"btcusdt@kline_1m","data":{"e":"kline","k":{"t":17',
        '{"stream":"btcusdt@kline_1m","data":{"e":"kline","k":{"t":"soon"}}}',
        BINANCE_KLINE.replace('"x":true', '"x":"yes"'),
        BINANCE_KLINE.replace('"s":"BTCUSDT","i"', '"s":"DOGEUSDT","i"'),
        BINANCE_KLINE.replace('"e":"kline"', '"e":"trade"'),
        "[1, 2]",
        b"\xff\xfe",
    ],
)
def test_binance_malformed_frames_raise_malformed(raw: str | bytes) -> None:
    with pytest.raises(MalformedMessageError):
        BinanceKlineCodec(["BTC/USDT"], ["1m"]).parse(raw)


def test_binance_error_answer_is_a_rejection() -> None:
    codec = BinanceKlineCodec(["BTC/USDT"], ["1m"])
    with pytest.raises(SubscriptionRejectedError, match="Invalid request"):
        codec.parse('{"code":2,"msg":"Invalid request: unknown stream","id":null}')


def test_bybit_kline_snapshot_parses_in_progress_bar() -> None:
    # Arrange
    codec = BybitKlineCodec(["BTC/USDT:USDT"], ["5m"], market="perp")
    # Act
    (update,) = codec.parse(BYBIT_KLINE)
    # Assert
    assert update.symbol == "BTC/USDT:USDT"
    assert update.timeframe == "5m"
    assert update.ts == 1748736000000 * 1_000_000
    assert (update.open, update.high, update.low, update.close) == (
        104591.9,
        104650.0,
        104590.0,
        104600.1,
    )
    assert update.volume == 12.345
    assert update.closed is False


@pytest.mark.parametrize(
    "control",
    [
        '{"success":true,"ret_msg":"","conn_id":"c1","req_id":"","op":"subscribe"}',
        '{"success":true,"ret_msg":"pong","conn_id":"c1","req_id":"","op":"ping"}',
        '{"req_id":"","op":"pong","args":["1748736012345"],"conn_id":"c1"}',
    ],
)
def test_bybit_acks_and_pongs_are_ignored(control: str) -> None:
    assert BybitKlineCodec(["BTC/USDT"], ["1m"]).parse(control) == []


def test_bybit_failed_subscribe_is_a_rejection_and_bad_shapes_are_malformed() -> None:
    codec = BybitKlineCodec(["BTC/USDT"], ["5m"])
    with pytest.raises(SubscriptionRejectedError, match="handler not found"):
        codec.parse(
            '{"success":false,"ret_msg":"error:handler not found,topic:kline.5.FOO",'
            '"conn_id":"c1","op":"subscribe"}'
        )
    for bad in (
        '{"topic":"kline.1.BTCUSDT","data":[{"start":"soon","open":null}]}',
        BYBIT_KLINE.replace('"confirm":false', '"confirm":0'),
        BYBIT_KLINE.replace("kline.5.", "tickers."),
        '{"hello": "world"}',
    ):
        with pytest.raises(MalformedMessageError):
            codec.parse(bad)


def test_bybit_subscribe_requests_hold_at_most_ten_topics() -> None:
    symbols = [f"C{i}/USDT" for i in range(6)]
    codec = BybitKlineCodec(symbols, ["1m", "1h"])
    messages = codec.subscribe_messages()
    assert len(messages) == 2
    assert '"kline.1.C0USDT"' in messages[0]
    assert '"kline.60.C5USDT"' in messages[1]
    assert codec.ping_message() == '{"op": "ping"}'


@pytest.mark.parametrize(
    ("exchange", "market", "testnet", "url"),
    [
        ("binance", "spot", False, "wss://stream.binance.com:9443/stream?streams="),
        ("binance", "spot", True, "wss://stream.testnet.binance.vision/stream?streams="),
        ("binance", "perp", False, "wss://fstream.binance.com/stream?streams="),
        ("binance", "perp", True, "wss://fstream.binancefuture.com/stream?streams="),
        ("bybit", "spot", False, "wss://stream.bybit.com/v5/public/spot"),
        ("bybit", "perp", False, "wss://stream.bybit.com/v5/public/linear"),
        ("bybit", "perp", True, "wss://stream-testnet.bybit.com/v5/public/linear"),
    ],
)
def test_default_hosts(exchange: str, market: str, testnet: bool, url: str) -> None:
    stream = KlineStream(exchange, ["BTC/USDT"], ["1m"], market=market, testnet=testnet)
    assert stream.url.startswith(url)


def test_binance_combined_url_holds_every_symbol_and_timeframe() -> None:
    stream = KlineStream("binance", ["BTC/USDT", "ETH/USDT"], ["1m", "1M"])
    assert stream.url == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@kline_1m/btcusdt@kline_1M/ethusdt@kline_1m/ethusdt@kline_1M"
    )


def test_ws_url_replaces_scheme_and_host_and_wins_over_testnet() -> None:
    stream = KlineStream(
        "binance", ["BTC/USDT"], ["1m"], market="perp", testnet=True, url="ws://127.0.0.1:9000/"
    )
    assert stream.url == "ws://127.0.0.1:9000/stream?streams=btcusdt@kline_1m"
    bybit = KlineStream.from_settings(
        "bybit", ["BTC/USDT:USDT"], ["1m"], ExchangeSettings(ws_url="wss://h:1"), market="perp"
    )
    assert bybit.url == "wss://h:1/v5/public/linear"


def test_symbols_map_to_exchange_ids() -> None:
    assert symbol_id("BTC/USDT") == "BTCUSDT"
    assert symbol_id("BTC/USDT:USDT") == "BTCUSDT"
    assert BinanceKlineCodec(["ETH/BTC"], ["1m"]).streams == ["ethbtc@kline_1m"]
    assert BybitKlineCodec(["SOL/USDT:USDT"], ["1d"], market="perp").topics == ["kline.D.SOLUSDT"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exchange": "kraken"}, "no kline stream for exchange 'kraken'"),
        ({"exchange": "binanse"}, "Did you mean: 'binance'"),
        ({"timeframes": ["2m"]}, "no timeframe '2m'"),
        ({"exchange": "bybit", "timeframes": ["8h"]}, "bybit streams have no timeframe '8h'"),
        ({"symbols": ["BTCUSDT"]}, "must look like BTC/USDT"),
        ({"symbols": ["BTC/USDT", "BTC/USDT:USDT"]}, "same binance market BTCUSDT"),
        ({"market": "futures"}, "market 'futures'"),
        ({"url": "http://127.0.0.1:9000"}, "ws_url must look like"),
        ({"stale_after_s": 0}, "stale_after_s must be > 0"),
    ],
)
def test_bad_configuration_raises_config_error(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"exchange": "binance", "symbols": ["BTC/USDT"], "timeframes": ["1m"]}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        KlineStream(**args)  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    rng = random.Random(7)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (30, 30.0)]:
        for _ in range(50):
            delay = backoff_delay(attempt, 0.5, 30.0, rng)
            assert cap / 2 <= delay <= cap
    seeded = [KlineStream("bybit", ["BTC/USDT"], ["1m"], seed=3).backoff(2) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_feed_status_defaults() -> None:
    assert FeedStatus("binance", "stale") == FeedStatus("binance", "stale", "", 0, 0)


def test_env_ws_url_reaches_exchange_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Arrange
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADELOOP_CONFIG", raising=False)
    monkeypatch.setenv("TRADELOOP_BINANCE_WS_URL", "ws://127.0.0.1:9000/")
    monkeypatch.setenv("TRADELOOP_BINANCE_URL", "http://127.0.0.1:8080")
    # Act
    settings = load_settings().exchange("binance")
    stream = KlineStream.from_settings("binance", ["BTC/USDT"], ["1m"], settings)
    # Assert
    assert settings.ws_url == "ws://127.0.0.1:9000"
    assert settings.url == "http://127.0.0.1:8080"
    assert stream.url == "ws://127.0.0.1:9000/stream?streams=btcusdt@kline_1m"


def test_ws_url_must_be_a_websocket_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADELOOP_BYBIT_WS_URL", "http://127.0.0.1:9000")
    with pytest.raises(ConfigError, match="ws_url must look like"):
        load_settings()
