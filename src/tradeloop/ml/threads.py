"""Bounded thread pools for inference.

A one-row prediction is microseconds of work; when the library behind it starts a thread pool
sized to every core, a busy machine makes the call wait for those threads now and then, and
the latency tail measures the pool, not the model. :func:`bounded_threads` caps every pool the
process uses (OpenMP as used by LightGBM, BLAS, numba) for the duration of a run, and
:meth:`tradeloop.ml.model.MetaModel.raw_proba` takes the same bound per call.

``tradeloop backtest --model`` and ``tradeloop paper --model`` run inside
``bounded_threads(--ml-threads)`` (default 1, or ``TRADELOOP_ML_THREADS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import needs_extra

__all__ = ["DEFAULT_ML_THREADS", "bounded_threads", "check_threads"]

#: Threads per prediction unless configured: one signal is one row, no pool pays off.
DEFAULT_ML_THREADS = 1


def check_threads(threads: int) -> int:
    """Return ``threads`` if it is a usable thread count.

    Raises
    ------
    ConfigError
        If it is below 1.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"ML threads must be an integer >= 1, got {threads!r}")
    return threads


@contextmanager
def bounded_threads(threads: int = DEFAULT_ML_THREADS) -> Iterator[None]:
    """Cap the OpenMP, BLAS and numba thread pools at ``threads`` inside the block.

    The previous limits are restored on exit.

    Raises
    ------
    ConfigError
        If ``threads`` is below 1.
    """
    check_threads(threads)
    import numba

    with needs_extra("ml", "--ml-threads"):
        from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        numba.set_num_threads(before)
