"""Command-line interface (``tradeloop``)."""
