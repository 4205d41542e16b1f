"""The adaptive signal loop: liquidation-zone signals, P&L feedback, self-adjusting weights."""
