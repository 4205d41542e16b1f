"""A process that writes state-store steps in a loop, for crash tests (kill it at any time).

Run ``python -m tradeloop.testing.state_writer TARGET RUN_ID [--schema S] [--steps N]``. Step
``i`` writes, in one transaction, an order and its fill, the trade ``t<i>``, a portfolio with
cash ``10000 - i`` marked at ``100 + i`` holding ``i % 3`` positions of quantity ``i``, the
strategy state ``{"i": i}`` and the checkpoint ``i`` minutes; then it prints ``i``.
:func:`check_step_consistent` verifies that a store restored after a kill shows exactly one
whole step.
"""

from __future__ import annotations

import argparse
import sys

from tradeloop.core import Fill, Order, OrderSide, OrderType, Portfolio, Position, Trade
from tradeloop.store import RunState, StateStore, StoredOrder, open_state_store

__all__ = ["MINUTE_NS", "SYMBOL", "check_step_consistent", "main", "write_step"]

MINUTE_NS = 60_000_000_000
SYMBOL = "BTC/USDT"
STRATEGY = "writer"


def write_step(store: StateStore, run_id: str, i: int) -> None:
    """Write step ``i`` of ``run_id`` in one transaction."""
    portfolio = Portfolio(10_000.0)
    portfolio.balance = 10_000.0 - i
    portfolio.marks = {SYMBOL: 100.0 + i}
    for k in range(i % 3):
        sym = f"S{k}/USDT"
        portfolio.positions[sym] = Position(f"p{i}-{k}", sym, 1, float(i), 100.0, i, 0.1)
    trade = Trade(f"t{i}", SYMBOL, 1, 1.0, i, 100.0, i + 1, 101.0, 0.1, 0.1, 0.8, None)
    order = Order(i, SYMBOL, OrderSide.BUY, OrderType.MARKET, 1.0, i * MINUTE_NS)
    fill = Fill(i, SYMBOL, OrderSide.BUY, 1.0, 100.0 + i, 0.1, i * MINUTE_NS)
    store.record_step(
        run_id,
        ts=i * MINUTE_NS,
        portfolio=portfolio,
        checkpoints={SYMBOL: i * MINUTE_NS},
        strategy_states={STRATEGY: {"i": i}},
        orders=[StoredOrder(order, "filled")],
        fills=[fill],
        trades=[trade],
    )


def check_step_consistent(state: RunState) -> int:
    """Return the step ``state`` holds, after checking every table agrees on it.

    Raises
    ------
    AssertionError
        When the restored state mixes steps (a partial write).
    """
    i = state.checkpoints[SYMBOL] // MINUTE_NS
    pf = state.portfolio
    problems = []
    if pf is None or state.snapshot_ts != i * MINUTE_NS:
        problems.append(f"snapshot {state.snapshot_ts} != checkpoint step {i}")
    else:
        if pf.balance != 10_000.0 - i or pf.marks != {SYMBOL: 100.0 + i}:
            problems.append(f"portfolio cash/marks {pf.balance}/{pf.marks} not step {i}")
        if len(pf.positions) != i % 3 or any(p.quantity != i for p in pf.positions.values()):
            problems.append(f"positions {list(pf.positions.values())} not step {i}")
        if [t.id for t in pf.trades] != [f"t{k}" for k in range(1, i + 1)]:
            problems.append(f"{len(pf.trades)} trades for step {i}")
    if state.strategy_states.get(STRATEGY) != {"i": i}:
        problems.append(f"strategy state {state.strategy_states} not step {i}")
    if problems:
        raise AssertionError("; ".join(problems))
    return int(i)


def main(argv: list[str] | None = None) -> int:
    """Write steps until killed (or ``--steps`` are done); print each committed step."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target")
    parser.add_argument("run_id")
    parser.add_argument("--schema", default=None)
    parser.add_argument("--steps", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with open_state_store(args.target, schema=args.schema) as store:
        state = store.load_run(args.run_id)
        start = 0 if state is None else check_step_consistent(state)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for i in range(start + 1, start + 1 + args.steps):
            write_step(store, args.run_id, i)
            sys.stdout.write(f"{i}\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
