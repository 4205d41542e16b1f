"""Configuration and logging setup."""

from tradeloop.config.logging import JsonLinesFormatter, setup_logging

__all__ = ["JsonLinesFormatter", "setup_logging"]
