"""The engine snapshot's broker health: a broker's own telemetry, or the state of the real
circuit breaker it holds (opened by failures), or nothing for the simulated broker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradeloop.engine.control import BrokerTelemetry, broker_health
from tradeloop.execution.protection import CircuitBreaker


class _Reporting:
    def telemetry(self) -> Mapping[str, Any]:
        return {"circuit": "half_open", "rate_budget": 17, "rate_limit": 1200}


class _Guarded:
    def __init__(self) -> None:
        self.breaker = CircuitBreaker("venue", failure_threshold=3, reset_after_s=60.0)


def test_broker_health_reads_telemetry_or_the_breaker() -> None:
    guarded = _Guarded()
    closed = broker_health(guarded)
    for _ in range(3):
        guarded.breaker.record_failure("timeout")
    opened = broker_health(guarded)
    assert isinstance(_Reporting(), BrokerTelemetry)
    assert broker_health(_Reporting()) == {
        "circuit": "half_open",
        "rate_budget": 17,
        "rate_limit": 1200,
    }
    assert closed == {"circuit": "closed"}
    assert opened == {"circuit": "open"}
    assert broker_health(object()) == {}
