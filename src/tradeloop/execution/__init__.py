"""Execution: the broker port and the simulated broker used by backtest and paper trading."""

from tradeloop.execution.broker import Broker, IntrabarSource
from tradeloop.execution.config import FillPrice, SimulatedBrokerConfig
from tradeloop.execution.simulated import IntrabarStats, Rejection, SimulatedBroker

__all__ = [
    "Broker",
    "FillPrice",
    "IntrabarSource",
    "IntrabarStats",
    "Rejection",
    "SimulatedBroker",
    "SimulatedBrokerConfig",
]
