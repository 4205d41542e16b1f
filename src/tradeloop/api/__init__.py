"""HTTP API (FastAPI) and Prometheus metrics."""
