"""Performance analysis: metrics and reports over equity curves and trades."""

from tradeloop.analysis.metrics import PerformanceMetrics, compute_metrics, periods_per_year

__all__ = ["PerformanceMetrics", "compute_metrics", "periods_per_year"]
