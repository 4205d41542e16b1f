"""Where trials run: in this process, in a local process pool, or on a Ray cluster.

Every backend takes batches of parameter sets and yields ``(index, TrialResult)`` as trials
finish; results never depend on the backend (each trial is a deterministic backtest), which
the tests check by comparing whole trial tables.

* ``serial`` runs in the calling process.
* ``pool`` (the default) starts ``workers`` processes once; each maps the shared bars
  read-only (:func:`~tradeloop.optimize.evaluate.open_shared_bars`), keeps its own evaluator
  (indicator sums cached per window) and is replaced after ``max_tasks`` tasks, which bounds
  its memory.
* ``ray`` puts the bars once in the cluster's object store (read zero-copy by the workers on a
  node) and runs one actor per worker; ``address`` joins an existing cluster (``auto`` or
  ``HOST:PORT``), None starts a local one on the loopback address. Ray is an optional extra
  (``pip install tradeloop[ray]``) imported only here, only when chosen.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import needs_extra
from tradeloop.optimize.evaluate import (
    EvalSpec,
    TrialEvaluator,
    TrialResult,
    open_shared_bars,
    peak_rss_mb,
)

__all__ = ["BACKENDS", "Backend", "PoolBackend", "RayBackend", "SerialBackend", "make_backend"]

logger = logging.getLogger(__name__)

BACKENDS = ("serial", "pool", "ray")


class Backend(Protocol):
    """Runs trials; see the module docstring."""

    name: str

    def run(self, batch: Sequence[dict[str, Any]]) -> Iterator[tuple[int, TrialResult]]:
        """Evaluate ``batch``; yield ``(position in batch, result)`` as each finishes."""
        ...

    def peak_memory_mb(self) -> list[float]:
        """Peak resident memory of each worker seen so far (MB)."""
        ...

    def close(self) -> None:
        """Stop the workers."""
        ...


class SerialBackend:
    """Trials one after the other in this process."""

    name = "serial"

    def __init__(self, spec: EvalSpec, bars: BarArrays) -> None:
        self.evaluator = TrialEvaluator(spec, bars)

    def run(self, batch: Sequence[dict[str, Any]]) -> Iterator[tuple[int, TrialResult]]:
        """See :class:`Backend`."""
        for i, params in enumerate(batch):
            yield i, self.evaluator.evaluate(params)

    def peak_memory_mb(self) -> list[float]:
        """See :class:`Backend`."""
        return [peak_rss_mb()]

    def close(self) -> None:
        """Nothing to stop."""


# -- process pool ------------------------------------------------------------------------------
_WORKER: TrialEvaluator | None = None


def _init_worker(spec: EvalSpec, folder: str) -> None:
    global _WORKER
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    _WORKER = TrialEvaluator(spec, open_shared_bars(folder))


def _run_chunk(
    chunk: list[tuple[int, dict[str, Any]]],
) -> tuple[list[tuple[int, TrialResult]], int, float]:
    assert _WORKER is not None
    out = [(i, _WORKER.evaluate(p)) for i, p in chunk]
    return out, os.getpid(), peak_rss_mb()


class PoolBackend:
    """A local process pool over the shared bars in ``folder`` (see the module docstring)."""

    name = "pool"

    def __init__(
        self,
        spec: EvalSpec,
        folder: Path,
        workers: int | None = None,
        *,
        chunk: int = 2,
        max_tasks: int = 500,
    ) -> None:
        self.workers = max(1, workers or (os.cpu_count() or 1))
        self.chunk = max(1, chunk)
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(spec, str(folder)),
            max_tasks_per_child=max_tasks,
        )
        self._peaks: dict[int, float] = {}

    def run(self, batch: Sequence[dict[str, Any]]) -> Iterator[tuple[int, TrialResult]]:
        """See :class:`Backend`."""
        items = list(enumerate(batch))
        chunks = [items[i : i + self.chunk] for i in range(0, len(items), self.chunk)]
        futures: set[Future[Any]] = {self._pool.submit(_run_chunk, c) for c in chunks}
        while futures:
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for fut in done:
                results, pid, peak = fut.result()
                self._peaks[pid] = max(self._peaks.get(pid, 0.0), peak)
                yield from results

    def peak_memory_mb(self) -> list[float]:
        """See :class:`Backend`."""
        return sorted(self._peaks.values())

    def close(self) -> None:
        """Stop the pool (cancelling what has not started)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- Ray ---------------------------------------------------------------------------------------
class RayBackend:
    """One Ray actor per worker over the bars put once in the object store."""

    name = "ray"

    def __init__(
        self,
        spec: EvalSpec,
        bars: BarArrays,
        workers: int | None = None,
        *,
        address: str | None = None,
    ) -> None:
        with needs_extra("ray", "--backend ray"):
            import ray
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address is None:
                ray.init(
                    address="local",
                    num_cpus=max(1, workers or (os.cpu_count() or 1)),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,
                    configure_logging=False,
                )
                self._started = True
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        self.workers = max(1, min(workers or cpus, cpus))
        columns = {
            name: getattr(bars, name) for name in ("ts", "open", "high", "low", "close", "volume")
        }
        data_ref = ray.put((bars.symbol, bars.timeframe, columns))
        actor: Any = ray.remote(num_cpus=1)(_RayWorker)
        self._actors: list[Any] = [actor.remote(spec, data_ref) for _ in range(self.workers)]
        self._peaks: dict[int, float] = {}

    def run(self, batch: Sequence[dict[str, Any]]) -> Iterator[tuple[int, TrialResult]]:
        """See :class:`Backend`."""
        ray = self._ray
        items = list(enumerate(batch))
        pending = {}
        for k, item in enumerate(items):
            actor = self._actors[k % len(self._actors)]
            pending[actor.evaluate.remote([item])] = k
        refs = list(pending)
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            for ref in ready:
                results, pid, peak = ray.get(ref)
                self._peaks[pid] = max(self._peaks.get(pid, 0.0), peak)
                yield from results

    def peak_memory_mb(self) -> list[float]:
        """See :class:`Backend`."""
        return sorted(self._peaks.values())

    def close(self) -> None:
        """Stop the actors (and the local cluster this backend started)."""
        for actor in self._actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()


class _RayWorker:
    """A Ray actor holding one evaluator over the object store's bars."""

    def __init__(self, spec: EvalSpec, data: tuple[str, str, dict[str, Any]]) -> None:
        symbol, timeframe, columns = data
        self.evaluator = TrialEvaluator(spec, BarArrays(symbol, timeframe, **columns))

    def evaluate(
        self, items: list[tuple[int, dict[str, Any]]]
    ) -> tuple[list[tuple[int, TrialResult]], int, float]:
        out = [(i, self.evaluator.evaluate(p)) for i, p in items]
        return out, os.getpid(), peak_rss_mb()


def make_backend(
    name: str,
    spec: EvalSpec,
    bars: BarArrays,
    *,
    folder: Path,
    workers: int | None = None,
    address: str | None = None,
) -> Backend:
    """Build the backend ``name`` (``serial``, ``pool`` or ``ray``).

    Raises
    ------
    ConfigError
        For an unknown name, or ``address`` without Ray.
    """
    if name not in BACKENDS:
        raise ConfigError(f"--backend must be one of {list(BACKENDS)}, got {name!r}")
    if address is not None and name != "ray":
        raise ConfigError("--address is for --backend ray")
    if name == "serial":
        return SerialBackend(spec, bars)
    if name == "pool":
        from tradeloop.optimize.evaluate import share_bars

        return PoolBackend(spec, share_bars(bars, folder), workers)
    return RayBackend(spec, bars, workers, address=address)
