"""Rejection: an intent or order that was not executed, as a value with a machine-readable reason.

A risk denial or a broker refusal is never an exception: it is recorded, counted and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rejection"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A signal or order that was refused, with a machine-readable ``reason``.

    Attributes
    ----------
    ts
        UTC ns time of the refusal.
    symbol
        Symbol of the refused intent.
    reason
        Machine-readable code, e.g. ``insufficient_cash`` or ``max_position``.
    detail
        Human-readable numbers behind the refusal.
    source
        Who refused it: ``broker`` (fill rules) or ``risk`` (the pre-trade gate).
    """

    ts: int
    symbol: str
    reason: str
    detail: str = ""
    source: str = "broker"
