"""Performance analysis: metrics, statistical validation, bias checks and reports of runs."""

from tradeloop.analysis.bias import BiasConfig, BiasFinding, BiasKind, BiasReport, detect_biases
from tradeloop.analysis.metrics import PerformanceMetrics, compute_metrics, periods_per_year
from tradeloop.analysis.run_analysis import RunAnalysis, analyze_run
from tradeloop.analysis.validation import ValidationConfig, ValidationReport, validate

__all__ = [
    "BiasConfig",
    "BiasFinding",
    "BiasKind",
    "BiasReport",
    "PerformanceMetrics",
    "RunAnalysis",
    "ValidationConfig",
    "ValidationReport",
    "analyze_run",
    "compute_metrics",
    "detect_biases",
    "periods_per_year",
    "validate",
]
