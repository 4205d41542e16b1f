"""`tradeloop live` on USD-M perpetuals with stops: the stop-loss and the trailing stop rest at
the local Binance venue (Algo Service conditional orders through the unmodified ccxt client)
and fill there by paper's rule, so live trades like paper on the same recording; the CLI in a
subprocess, the WebSocket replay of recorded bars, the venue's clock the replay's."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tradeloop.core.position import ExitReason, Trade
from tradeloop.store.state import open_state_store
from tradeloop.testing.replay import ReplayServer, status_answered
from tradeloop.testing.venue import LocalVenueServer, VenueData
from tradeloop.testing.venue.trading import BookAlgo
from tradeloop.testing.venue.trading_server import LocalBinanceExchange

from .test_live_cli import PERP_START_MS, START_MS, _cmd, _env

RISK = """
profile = "default"

[stops]
stop_loss_pct = 0.002
trailing_pct = 0.0008
trailing_activation_pct = 0.0004
"""


def _entry(t: Trade) -> tuple[object, ...]:
    return (t.symbol, t.direction, t.quantity, t.entry_ts, t.entry_price, t.exit_ts)


@pytest.mark.parametrize(
    ("market", "start_ms", "short", "wire"),
    [("perp", PERP_START_MS, "true", "linear"), ("spot", START_MS, "false", "spot")],
)
def test_live_with_resting_stops_trades_like_paper_on_the_same_recording(
    venue: VenueData, tmp_path: Path, market: str, start_ms: int, short: str, wire: str
) -> None:
    # Arrange: a fixed stop and a trailing stop armed after a small move (perp: long and
    # short; spot: long only)
    bars = 160
    end_ms = start_ms + bars * 60_000
    until = end_ms - 60_000
    risk = tmp_path / "risk.toml"
    risk.write_text(RISK)
    extra = [
        *("--market", market, "-p", f"short={short}", "-p", "take_profit=0.0012"),
        *("--risk", str(risk)),
    ]
    runs = {}
    folder = tmp_path / "live"
    folder.mkdir()
    # Act: live against the trading venue, then paper on the same bars
    with (
        ReplayServer(
            venue,
            start_ms=start_ms,
            end_ms=end_ms,
            # live must act on a bar before the venue's clock leaves the next one (resting
            # exits add venue calls per bar: cancel/replace): the clock waits for its status
            bar_interval_s=0.01,
            advance_when_idle=False,
            binance_market=wire,
            client_ready=status_answered(folder / "s.json"),
        ) as ws,
        LocalBinanceExchange(venue, lambda: ws.cursor_ms) as ex,
    ):
        runs["live"] = subprocess.run(
            [*_cmd("live", folder / "state.db", folder / "s.json", until, "live-stops"), *extra],
            env=_env(ex.url, ws.url),
            capture_output=True,
            text=True,
            timeout=240,
        )
        algos = list(ex.book.algos)
        venue_orders = list(ex.book.orders)
        venue_position = {p["symbol"]: float(p["positionAmt"]) for p in ex.book.positions_json()}
        venue_btc = ex.book.balances.get("BTC", 0.0)
        unanswered = ws.client_timeouts
    with (
        ReplayServer(
            venue,
            start_ms=start_ms,
            end_ms=end_ms,
            bar_interval_s=0.02,
            advance_when_idle=False,
            binance_market=wire,
        ) as ws,
        LocalVenueServer(venue) as rest,
    ):
        folder = tmp_path / "paper"
        folder.mkdir()
        runs["paper"] = subprocess.run(
            [*_cmd("paper", folder / "state.db", folder / "s.json", until, "paper-stops"), *extra],
            env=_env(rest.url, ws.url),
            capture_output=True,
            text=True,
            timeout=240,
        )
    # Assert
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stderr[-3000:])
    assert unanswered == 0  # the venue's clock never left a bar live had not answered
    with open_state_store(str(tmp_path / "live" / "state.db")) as store:
        live = store.load_trades("live-stops")
        live_run = store.load_run("live-stops")
    with open_state_store(str(tmp_path / "paper" / "state.db")) as store:
        paper = store.load_trades("paper-stops")
    stopped = [t for t in paper if t.exit_reason is not None and t.exit_reason.value != "signal"]
    assert {t.exit_reason for t in stopped} >= {ExitReason.TRAILING, ExitReason.TAKE_PROFIT}
    assert [_entry(t) for t in live] == [_entry(t) for t in paper]
    assert [t.exit_reason for t in live] == [t.exit_reason for t in paper]
    tick = 1e-4 if market == "perp" else 0.01  # the local venue's ticks: a stop sits on one
    for ours, theirs in zip(live, paper, strict=True):
        if ours.exit_price is not None and theirs.exit_price is not None:
            assert ours.exit_price == pytest.approx(theirs.exit_price, abs=tick)
    # every stop exit was a resting order at the venue that triggered, never a market exit
    resting = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP_LOSS", "TAKE_PROFIT")
    triggered = [o for o in venue_orders if (o.orig_type or o.type) in resting]
    assert len([o for o in triggered if o.status == "FILLED"]) == len(stopped)
    ids = [a.client_id for a in algos] + [o.client_id for o in venue_orders if not o.orig_type]
    assert len(set(ids)) == len(ids)  # no client id used twice
    assert live_run is not None
    assert live_run.portfolio is not None
    held = sum(p.signed_quantity for p in live_run.portfolio.positions.values())
    if market == "perp":
        assert held == pytest.approx(venue_position.get("BTCUSDT", 0.0), abs=1e-9)
    else:
        assert held == pytest.approx(venue_btc, abs=1e-12)


def test_a_stop_fired_while_live_is_killed_is_adopted_once_after_restart(
    venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: live on USD-M with stops; the replay (and the venue's clock) runs on while the
    # engine is dead, and waits for the engine's status after each bar while it runs
    bars = 150
    end_ms = PERP_START_MS + bars * 60_000
    until = end_ms - 60_000
    risk = tmp_path / "risk.toml"
    risk.write_text(RISK)
    state, status = tmp_path / "state.db", tmp_path / "s.json"
    cmd = [
        *_cmd("live", state, status, until, "live-kill-stops"),
        *("--market", "perp", "-p", "short=true", "--risk", str(risk)),
    ]
    with (
        ReplayServer(
            venue,
            start_ms=PERP_START_MS,
            end_ms=end_ms,
            bar_interval_s=0.03,
            advance_when_idle=True,
            binance_market="linear",
            client_ready=status_answered(status),
        ) as ws,
        LocalBinanceExchange(venue, lambda: ws.cursor_ms) as ex,
    ):
        env = _env(ex.url, ws.url)
        ws.pause()  # the market opens once live is up (its start-up is not a replay's length)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert ws.wait_for_clients(1, timeout=60), "live did not subscribe"
        ws.resume()

        # Act 1: kill -9 while an armed trailing stop rests at the venue (close to the price)
        def near() -> list[BookAlgo]:
            now = ex.prices.price("BTCUSDT", "linear")
            return [
                a
                for a in ex.book.algos
                if a.is_open and now is not None and abs(a.trigger / now[1] - 1.0) < 0.0012
            ]

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not near():
            time.sleep(0.01)
        ws.pause()  # the market holds still while the kill lands
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert near(), "no stop rested at the venue"
        (resting,) = near()
        # Act 2: the price goes through it while nobody watches
        ws.resume()
        deadline = time.monotonic() + 60
        while resting.is_open and time.monotonic() < deadline:
            time.sleep(0.01)
        ws.pause()  # and holds still again until the restarted engine is up
        assert resting.status == "FINISHED", "the stop fired at the venue"
        fired = next(o for o in ex.book.orders if o.order_id == resting.actual_order_id)
        orders_at_restart = len(ex.book.orders)
        # Act 3: restart and run to the end
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert ws.wait_for_clients(1, timeout=60), "live did not subscribe again"
        ws.resume()
        out, err = proc.communicate(timeout=240)
        final = subprocess.CompletedProcess(cmd, proc.returncode, out.decode(), err.decode())
        unanswered = ws.client_timeouts
        venue_position = {p["symbol"]: float(p["positionAmt"]) for p in ex.book.positions_json()}
        after = ex.book.orders[orders_at_restart:]
        fills = [t for t in ex.book.trades if t.order_id == fired.order_id]
    # Assert: the position closed once, by the venue's stop, recorded with its trade
    assert final.returncode == 0, final.stderr[-3000:]
    assert unanswered == 0  # the venue's clock never left a bar live had not answered
    with open_state_store(str(state)) as store:
        trades = store.load_trades("live-kill-stops")
        run = store.load_run("live-kill-stops")
    (closed,) = [t for t in trades if t.exit_ts == fills[0].time_ms * 1_000_000]
    assert closed.exit_reason is not None
    assert closed.exit_reason.value in ("stop_loss", "trailing")
    assert closed.exit_price == pytest.approx(fills[0].price)
    # no exit of that position was sent after the restart: every later order is a new entry
    # or a stop/target of a later position, and no client id was used twice
    assert after, "live traded on after the restart"
    assert not [o for o in after if o.reduce_only and o.orig_type == ""]
    ids = [o.client_id for o in ex.book.orders if not o.orig_type]
    assert len(set(ids)) == len(ids)
    assert len({a.client_id for a in ex.book.algos}) == len(ex.book.algos)
    assert run is not None
    assert run.portfolio is not None
    held = sum(p.signed_quantity for p in run.portfolio.positions.values())
    assert held == pytest.approx(venue_position.get("BTCUSDT", 0.0), abs=1e-9)
