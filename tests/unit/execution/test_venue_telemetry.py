"""The venue broker's telemetry (what /health and /metrics read): the circuit breaker's state
with the reason it opened, and the rate budget's weight left in the sliding minute."""

from __future__ import annotations

from tradeloop.core.instrument import Instrument
from tradeloop.core.portfolio import Portfolio
from tradeloop.engine.control import BrokerTelemetry, broker_health
from tradeloop.execution.protection import CircuitBreaker, RateBudget
from tradeloop.execution.venue_broker import VenueBroker
from tradeloop.testing.venue.instant import InstantVenue

SYM = "BTC/USDT"
INST = {SYM: Instrument(SYM, lot_size=0.00001, min_notional=5.0, taker_fee=0.001)}


def test_rate_budget_left_is_the_limit_minus_the_weight_taken_this_minute() -> None:
    budget = RateBudget("telemetry-test", 100)
    assert budget.left() == 100
    budget.acquire(7)
    budget.acquire(3)
    budget.acquire()
    assert budget.left() == 100 - 11
    assert budget.used == 11
    small = RateBudget("telemetry-small", 10)
    small.acquire(500)  # capped at the window's size: the budget is spent, never negative
    assert small.left() == 0


def test_venue_broker_reports_circuit_reason_and_budget() -> None:
    venue = InstantVenue()
    venue.budget = RateBudget("telemetry-venue", 60)  # type: ignore[attr-defined]
    breaker = CircuitBreaker("instant", failure_threshold=2)
    broker = VenueBroker(venue, Portfolio(10_000.0), INST, run_id="run-t", breaker=breaker)
    assert isinstance(broker, BrokerTelemetry)
    assert broker_health(broker) == {"circuit": "closed", "rate_budget": 60, "rate_limit": 60}
    venue.budget.acquire(15)  # type: ignore[attr-defined]
    breaker.record_failure("503 Service Unavailable")
    assert broker_health(broker) == {"circuit": "closed", "rate_budget": 45, "rate_limit": 60}
    breaker.record_failure("503 Service Unavailable")
    health = broker_health(broker)
    assert health["circuit"] == "open"
    assert health["circuit_reason"] == "503 Service Unavailable"


def test_a_venue_without_a_budget_reports_the_circuit_only() -> None:
    broker = VenueBroker(InstantVenue(), Portfolio(10_000.0), INST, run_id="run-u")
    assert broker_health(broker) == {"circuit": "closed"}
