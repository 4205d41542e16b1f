"""The O(1) per-bar risk monitors equal straightforward references on random series.

:class:`KillSwitch` skips its monitors inside a quiet band and formats event details only when
a state changes; :class:`BlackSwanDetector` keeps the window's highest close in a monotonic
deque. The references below run every monitor on every update (the kill switch's code as it
was before the band) and scan the whole window for its highest close; events, states and
reference levels must be identical, bit for bit, after every update.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core.portfolio import Portfolio
from tradeloop.risk.config import BlackSwanConfig, KillSwitchConfig, RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.killswitch import DAY_NS, BlackSwanDetector, KillSwitch, TradingState
from tradeloop.risk.overrides import issue_token

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00Z


class ReferenceKillSwitch(KillSwitch):
    """Every monitor on every update, event details formatted eagerly."""

    def update(self, ts: int, equity: float) -> None:
        cfg = self.config
        cooldown = cfg.resume_after_ns
        if (
            cooldown is not None
            and self.state is TradingState.HALTED
            and self.cause in ("drawdown", "black_swan")
            and self.halted_at is not None
            and ts - self.halted_at >= cooldown
        ):
            self.resume(
                ts,
                "cooldown",
                f"{self.cause} halt lifted after kill_switch.resume_after = {cfg.resume_after}",
                equity=equity,
            )
        day = ts // DAY_NS
        if day != self.day:
            self.day = day
            self.day_start_equity = equity if math.isnan(self._last_equity) else self._last_equity
            if (
                self.state is TradingState.HALTED
                and self.cause == "daily_loss"
                and cfg.daily_resume_next_day
            ):
                self._move(
                    ts,
                    TradingState.ACTIVE,
                    "new_day",
                    f"day starts at equity {self.day_start_equity:.2f}",
                )
        self._last_equity = equity
        if cfg.daily_loss_pct is not None and self.day_start_equity > 0:
            floor = self.day_start_equity * (1.0 - cfg.daily_loss_pct)
            if equity <= floor and self.state is not TradingState.HALTED:
                loss = 1.0 - equity / self.day_start_equity
                self.trip(
                    ts,
                    TradingState.HALTED,
                    "daily_loss",
                    f"equity {equity:.2f} is {loss:.2%} under the day's start "
                    f"{self.day_start_equity:.2f} (limit {cfg.daily_loss_pct:.2%})",
                )
        if cfg.drawdown_reduce_pct is None and cfg.drawdown_halt_pct is None:
            return
        if not equity <= self.peak:
            self.peak = equity
        peak = self.peak
        drawdown = 1.0 - equity / peak if peak > 0 else 0.0
        detail = f"drawdown {drawdown:.2%} from peak {peak:.2f}"
        halt, reduce = cfg.drawdown_halt_pct, cfg.drawdown_reduce_pct
        if halt is not None and peak > 0 and equity <= peak * (1.0 - halt):
            self.trip(ts, TradingState.HALTED, "drawdown", detail + f" (halt at {halt:.2%})")
        elif reduce is not None and peak > 0 and equity <= peak * (1.0 - reduce):
            self.trip(ts, TradingState.REDUCING, "drawdown", detail + f" (reduce at {reduce:.2%})")
        elif self.state is TradingState.REDUCING and self.cause == "drawdown":
            self._move(ts, TradingState.ACTIVE, "drawdown_recovered", detail)


def _same(a: float | None, b: float | None) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _assert_equal(fast: KillSwitch, ref: KillSwitch) -> None:
    assert fast.events == ref.events
    assert fast.state is ref.state
    assert fast.cause == ref.cause
    assert fast.halted_at == ref.halted_at
    assert fast.day == ref.day
    for name in ("peak", "day_start_equity", "_last_equity"):
        assert _same(getattr(fast, name), getattr(ref, name)), name


_pcts = st.one_of(st.none(), st.sampled_from([0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]))


@st.composite
def kill_switch_configs(draw: st.DrawFn) -> KillSwitchConfig:
    reduce, halt = draw(_pcts), draw(_pcts)
    if reduce is not None and halt is not None and reduce > halt:
        reduce, halt = halt, reduce
    return KillSwitchConfig(
        daily_loss_pct=draw(_pcts),
        daily_resume_next_day=draw(st.booleans()),
        drawdown_reduce_pct=reduce,
        drawdown_halt_pct=halt,
        resume_after=draw(st.sampled_from([None, "30m", "6h", "36h"])),
    )


_STEPS = st.sampled_from([0, MINUTE, MINUTE, MINUTE, 15 * MINUTE, HOUR, 5 * HOUR, DAY_NS + 7])


@settings(max_examples=80, deadline=None)
@given(config=kill_switch_configs(), data=st.data())
def test_kill_switch_equals_the_reference_on_random_equity(
    config: KillSwitchConfig, data: st.DataObject
) -> None:
    # Arrange
    fast, ref = KillSwitch(config), ReferenceKillSwitch(config)
    ts, equity = T0 + data.draw(st.integers(0, DAY_NS)), 10_000.0
    n = data.draw(st.integers(1, 300))
    # Act / Assert: after every update and every outside transition
    for _ in range(n):
        ts += data.draw(_STEPS)
        kind = data.draw(st.sampled_from(["walk"] * 12 + ["level", "crash", "jump", "op"]))
        if kind == "walk":
            equity *= 1.0 + data.draw(st.floats(-0.01, 0.01))
        elif kind == "crash":
            equity *= 1.0 - data.draw(st.floats(0.0, 0.4))
        elif kind == "jump":
            equity *= 1.0 + data.draw(st.floats(0.0, 0.4))
        elif kind == "level":
            # land exactly on a threshold of the reference's state: the comparisons' edges
            pct = data.draw(st.sampled_from([0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]))
            base = data.draw(st.sampled_from([ref.peak, ref.day_start_equity]))
            if math.isfinite(base):
                equity = base * (1.0 - pct)
        else:
            op = data.draw(st.sampled_from(["black_swan", "resume", "restore", "trip"]))
            if op == "black_swan":
                assert fast.black_swan(ts, "crash") == ref.black_swan(ts, "crash")
            elif op == "resume":
                assert fast.resume(ts, equity=equity) == ref.resume(ts, equity=equity)
            elif op == "trip":
                state = data.draw(st.sampled_from(list(TradingState)))
                assert fast.trip(ts, state, "venue") == ref.trip(ts, state, "venue")
            else:
                fast.restore_state(ref.export_state())
            _assert_equal(fast, ref)
        fast.update(ts, equity)
        ref.update(ts, equity)
        _assert_equal(fast, ref)


def test_kill_switch_quiet_band_skips_the_monitors_and_an_assignment_disarms_it() -> None:
    # Arrange: a quiet day under the drawdown monitors and a cool-down
    ks = KillSwitch(KillSwitchConfig(daily_loss_pct=None, resume_after="6h"))
    ks.update(T0, 10_000.0)
    calls = 0
    full = ks._update

    def counting(ts: int, equity: float) -> None:
        nonlocal calls
        calls += 1
        full(ts, equity)

    ks._update = counting  # type: ignore[method-assign]
    # Act: 600 quiet minutes, then an outside assignment of the peak
    for k in range(1, 601):
        ks.update(T0 + k * MINUTE, 10_000.0 - k)  # 6% down at most
    quiet = calls
    ks.peak = 20_000.0
    ks.update(T0 + 601 * MINUTE, 9_000.0)
    # Assert: no full pass inside the band; the new peak is seen (55% down: halted)
    assert quiet == 0
    assert calls == 1
    assert ks.state is TradingState.HALTED
    assert ks.cause == "drawdown"


# --------------------------------------------------------------------------- black swan


class ReferenceDetector:
    """The highest close by scanning the window, returns' moments by plain running sums."""

    def __init__(self, config: BlackSwanConfig) -> None:
        self.config = config
        self.window: list[tuple[int, float]] = []
        self.returns: deque[float] = deque(maxlen=config.vol_window)
        self.sum = self.sumsq = 0.0
        self.last = math.nan
        self.since_exact = 1 % config.vol_window  # the first symbol's stagger

    def update(self, symbol: str, ts: int, price: float) -> str | None:
        cfg = self.config
        horizon = ts - cfg.window_ns
        self.window = [(t, p) for t, p in self.window if t > horizon] + [(ts, price)]
        high = max(p for _, p in self.window)
        cause = None
        if cfg.drop_pct is not None and price <= high * (1.0 - cfg.drop_pct):
            fall = 1.0 - price / high
            cause = (
                f"{symbol} fell {fall:.2%} from {high:g} within {cfg.window} "
                f"(trigger {cfg.drop_pct:.2%})"
            )
        last, self.last = self.last, price
        if last == last and last > 0:
            r = price / last - 1.0
            n, rets = cfg.vol_window, self.returns
            if cfg.vol_shock_sigma is not None and len(rets) == n and cause is None:
                mean = self.sum / n
                var = (self.sumsq - n * mean * mean) / (n - 1)
                sd = math.sqrt(var) if var > 0 else 0.0
                if sd > 0 and abs(r - mean) > cfg.vol_shock_sigma * sd:
                    cause = (
                        f"{symbol} moved {r:.2%} in one bar, {abs(r - mean) / sd:.1f} sigma "
                        f"(trigger {cfg.vol_shock_sigma:g})"
                    )
            if len(rets) == n:
                self.sum -= rets[0]
                self.sumsq -= rets[0] * rets[0]
            rets.append(r)
            self.since_exact += 1
            if self.since_exact >= n:
                self.since_exact = 0
                self.sum = math.fsum(rets)
                self.sumsq = math.fsum(x * x for x in rets)
            else:
                self.sum += r
                self.sumsq += r * r
        return cause


@settings(max_examples=80, deadline=None)
@given(
    drop=st.one_of(st.none(), st.sampled_from([0.01, 0.03, 0.1])),
    sigma=st.one_of(st.none(), st.sampled_from([2.0, 3.0, 6.0])),
    window=st.sampled_from(["5m", "30m", "2h"]),
    vol_window=st.integers(10, 30),
    data=st.data(),
)
def test_black_swan_detector_equals_the_reference_on_random_prices(
    drop: float | None, sigma: float | None, window: str, vol_window: int, data: st.DataObject
) -> None:
    # Arrange
    config = BlackSwanConfig(
        drop_pct=drop, window=window, vol_shock_sigma=sigma, vol_window=vol_window
    )
    fast, ref = BlackSwanDetector(config), ReferenceDetector(config)
    ts, price = T0, 100.0
    n = data.draw(st.integers(1, 400))
    # Act / Assert: the same cause (or None) on every close
    for _ in range(n):
        ts += data.draw(st.sampled_from([MINUTE, MINUTE, MINUTE, 7 * MINUTE, HOUR]))
        move = data.draw(st.sampled_from(["walk"] * 10 + ["repeat", "crash", "spike", "edge"]))
        n = config.vol_window
        if move == "edge" and sigma is not None and len(ref.returns) == n:
            # a return right at the volatility trigger: the comparison's edge
            mean = ref.sum / n
            var = (ref.sumsq - n * mean * mean) / (n - 1)
            if var > 0:
                side = data.draw(st.sampled_from([-1.0, 1.0]))
                eps = data.draw(st.sampled_from([-1e-6, -1e-10, 0.0, 1e-10, 1e-6]))
                r = mean + side * sigma * math.sqrt(var) * (1.0 + eps)
                price = ref.last * (1.0 + r)
        elif move == "walk":
            price *= 1.0 + data.draw(st.floats(-0.005, 0.005))
        elif move == "crash":
            price *= 1.0 - data.draw(st.floats(0.0, 0.2))
        elif move == "spike":
            price *= 1.0 + data.draw(st.floats(0.0, 0.2))
        assert fast.update("BTC", ts, price) == ref.update("BTC", ts, price)


# --------------------------------------------------------------------------- risk engine

SECRET = b"monitor-reference-secret"


class FeedingRiskEngine(RiskEngine):
    """Feeds the detector on every bar, also while a black-swan halt waits for an override."""

    def on_bar(self, ts: int, closes: Mapping[str, float], portfolio: Portfolio) -> bool:
        self._inflight.clear()
        while self._scheduled and self._scheduled[0][0] <= ts:
            _, token = self._scheduled.pop(0)
            self.apply_override(token, ts, portfolio)
        flatten = False
        assert self.black_swan is not None
        for symbol, price in closes.items():
            cause = self.black_swan.update(symbol, ts, price)
            if cause is not None and self.kill_switch.black_swan(ts, cause):
                flatten = True
        self.kill_switch.update(ts, portfolio.equity)
        return flatten


@settings(max_examples=60, deadline=None)
@given(
    resume_after=st.sampled_from([None, "3h"]),
    overrides=st.lists(st.integers(0, 599), max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_halt_waiting_for_its_override_does_not_feed_the_detector_and_changes_nothing(
    resume_after: str | None, overrides: list[int], seed: int
) -> None:
    # Arrange: crashes halt for a black swan; signed overrides lift the halts at random bars
    cfg = replace(
        RiskConfig.permissive(),
        kill_switch=KillSwitchConfig(resume_after=resume_after),
        black_swan=BlackSwanConfig(drop_pct=0.05, window="1h", vol_shock_sigma=4.0, vol_window=20),
    )
    engines = [RiskEngine(cfg, secret=SECRET), FeedingRiskEngine(cfg, secret=SECRET)]
    for k in overrides:
        at = T0 + k * MINUTE
        token = issue_token(
            SECRET, who="ops", why="test", action="resume", not_before=at, expires_at=at + DAY_NS
        )
        for engine in engines:
            engine.schedule_override(token, at)
    portfolio = Portfolio(10_000.0)
    prices = {"BTC": 100.0, "ETH": 10.0}
    moves = np.random.default_rng(seed).choice([0.0, 0.001, -0.001, 0.003, -0.08], (600, 2))
    detector, ks = engines[0].black_swan, engines[0].kill_switch
    assert detector is not None
    fed_while_waiting: list[bool] = []
    # Act / Assert: the same flatten flags, events and state on every bar
    for k in range(600):
        for symbol, move in zip(prices, moves[k], strict=True):
            prices[symbol] *= 1.0 + float(move)
        halted_before = ks.cause == "black_swan"
        flags = [e.on_bar(T0 + k * MINUTE, dict(prices), portfolio) for e in engines]
        assert flags[0] == flags[1]
        assert engines[0].kill_switch.events == engines[1].kill_switch.events
        if halted_before and ks.cause == "black_swan" and resume_after is None:
            fed_while_waiting.append(detector.watching)
    assert not any(fed_while_waiting)
