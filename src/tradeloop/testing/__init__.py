"""Test kit: builders of bars and scripted strategies for test suites.

Production code never imports this package (an import-linter contract enforces it).
"""

from tradeloop.testing.factories import make_bars

__all__ = ["make_bars"]
