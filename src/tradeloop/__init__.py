"""tradeloop: systematic trading from market data to signals, risk, execution and adaptation.

The same strategy code runs in a backtest, on live data with simulated fills, and live.
"""

__version__ = "0.1.0"
