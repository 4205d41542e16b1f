"""Process settings for short-lived, array-heavy commands (``tradeloop backtest``).

:func:`batch_command` applies all of them around one command:

- **Freed memory kept** (:func:`keep_freed_memory`). A backtest on a long series allocates
  and frees many large temporary arrays (a column of 1M bars is 8 MB). glibc serves every
  block above its mmap threshold with a fresh mapping and returns it to the system when
  freed, so the next array of the same size is page-faulted in again, page by page,
  zero-filled by the kernel: on 1M bars that was about a fifth of the process's CPU time
  (mostly system time). Keeping freed blocks in the heap lets the next array reuse them.
- **One BLAS/OpenMP thread** (:data:`BLAS_THREAD_VARIABLES`). The few BLAS calls of a
  backtest (dot products over the returns) are far too small to share; a pool sized to every
  core makes its workers spin, waiting for work, after each call: on 1M bars about a fifth of
  the process's CPU time went to spinning workers.
- **Arrow allocates with malloc** (:data:`ARROW_POOL_VARIABLE`), not its default mimalloc
  pool, which hands freed pages back to the system: the Parquet columns read, the run files
  built and numpy's arrays then reuse the same kept heap (about 0.15 s of system time less on
  1M bars).

  Both libraries read these settings when they first load (or allocate), so they are set
  as environment variables before that, and only where the user has not set them.
- **Cyclic garbage collector paused.** The run makes millions of objects (the bar lanes,
  tens of thousands of orders, fills and trades) and no reference cycles of its own; every
  collection pass walks all of them. Memory is still freed by reference counting.
- **No teardown at the end** (:func:`end_batch_process`). Once the command's work is done,
  the interpreter's own shutdown (every module torn down, every object freed one by one,
  the libraries' static destructors) is work nobody waits for: 55-95 ms after a 1M-bar
  backtest, about 5% of the process. The script's entry point ends such a process directly, after
  what a normal exit does that anyone can see: the ``atexit`` callbacks (log handlers flushed
  and closed, temporary folders removed) and stdout/stderr flushed. Instagram's web servers
  end the same way (``os._exit`` after the exit callbacks).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "ARROW_POOL_VARIABLE",
    "BLAS_THREAD_VARIABLES",
    "batch_command",
    "end_batch_process",
    "keep_freed_memory",
    "process_defaults",
]

#: mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: blocks up to this size come from the heap, not from their own mapping (glibc's maximum
#: mmap threshold on 64-bit systems is 32 MB; larger blocks are still mapped)
_MMAP_THRESHOLD = 32 * 1024 * 1024
#: free memory at the top of the heap kept, not returned to the system
_TRIM_THRESHOLD = 512 * 1024 * 1024
#: extra memory asked for each time the heap grows
_TOP_PAD = 64 * 1024 * 1024

#: whether a batch command ran in this process (:func:`end_batch_process` may end it)
_BATCH_RAN: list[bool] = []

#: thread-count variables of OpenBLAS, OpenMP and MKL (numpy's BLAS is one of them)
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: the allocator of Arrow's default memory pool
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
#: what a batch command sets where the user has not: one BLAS thread, Arrow on malloc
_DEFAULTS = {**dict.fromkeys(BLAS_THREAD_VARIABLES, "1"), ARROW_POOL_VARIABLE: "system"}


def keep_freed_memory() -> bool:
    """Keep freed large blocks in this process's heap for reuse (glibc only; a no-op
    elsewhere). Returns whether the settings were applied.

    Only for processes that end after their work: memory freed by the program is not given
    back to the system until the process exits (a long-running service should not call it).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    ok &= mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    ok &= mallopt(_M_TOP_PAD, _TOP_PAD)
    return bool(ok)


def process_defaults() -> list[str]:
    """Set the variables of :data:`BLAS_THREAD_VARIABLES` the user has not set to ``1`` and
    :data:`ARROW_POOL_VARIABLE`, if unset, to ``system``; return the names set.

    They take effect only if numpy (and pyarrow's memory pool) have not been loaded yet in
    this process; a value the user set is kept.
    """
    added = [name for name in _DEFAULTS if name not in os.environ]
    for name in added:
        os.environ[name] = _DEFAULTS[name]
    return added


@contextmanager
def batch_command() -> Iterator[None]:
    """Run the block with the settings of a short-lived batch process (see the module): freed
    memory kept, one BLAS/OpenMP thread, Arrow on malloc, the cyclic garbage collector
    paused.

    Enter it before numpy and pyarrow are first imported. On exit the collector is restored
    to its previous state and the variables set here are removed again (the libraries keep
    what they read when they loaded); the allocator settings stay.
    """
    added = process_defaults()
    keep_freed_memory()
    _BATCH_RAN.append(True)
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            # what was made while paused joins the oldest generation, so the first allocation
            # after does not set off a pass over all of it (full collections still see it)
            gc.freeze()
            gc.unfreeze()
            gc.enable()
        for name in added:
            os.environ.pop(name, None)


def end_batch_process(code: object) -> None:
    """End this process now with exit status ``code`` if a batch command ran in it, without
    the interpreter's teardown; return (doing nothing) otherwise.

    What a normal exit does that can be seen is done first: the ``atexit`` callbacks run
    (logging's handlers flush and close their files, temporary folders are removed), then
    stdout and stderr are flushed (a closed pipe gives status 120, as Python's own exit
    does). The process is left to the normal exit when a thread other than the main one is
    still running (it is waited for), when ``code`` is a message (printed on the way out)
    or where the interpreter has no ``atexit._run_exitfuncs``.

    Only for a program's entry point: the calling process ends here.
    """
    if not _BATCH_RAN or not (code is None or isinstance(code, int)):
        return
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    run_exit_callbacks = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_callbacks is None:
        return
    run_exit_callbacks()
    status = int(code or 0)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and status == 0:
                status = 120
    os._exit(status)
