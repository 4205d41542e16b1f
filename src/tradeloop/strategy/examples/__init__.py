"""Example strategies bundled with tradeloop (found by ``tradeloop strategies``)."""
