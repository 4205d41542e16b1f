"""When a session has acted on a bar: the ``client_ready`` of a :class:`ReplayServer` that
waits for a ``tradeloop paper`` / ``live`` process.

The session rewrites its status file after every step, once the step's orders are at the venue
(the venue calls of a step are synchronous); ``last_bar_time`` is the open time of the last bar
it stepped. A bar of ``timeframe_ms`` that opened at ``t`` closes at ``t + timeframe_ms``.

>>> import json, pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "status.json"
>>> ready = status_answered(p)
>>> ready(120_000)  # no status file yet
False
>>> _ = p.write_text(json.dumps({"last_bar_time": "1970-01-01T00:01:00Z"}))
>>> ready(120_000), ready(180_000)
(True, False)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tradeloop.core.time import parse_time

__all__ = ["status_answered"]


def status_answered(path: str | Path, timeframe_ms: int = 60_000) -> Callable[[int], bool]:
    """Return ``ready(bar_ms)``: True once the status file at ``path`` shows a step of the bar
    that closed at ``bar_ms`` or later (a missing or half-replaced file: False)."""
    target = Path(path)
    seen = [-1, -1]  # the latest close answered (ms), and the file version it was read from

    def ready(bar_ms: int) -> bool:
        if seen[0] >= bar_ms:
            return True
        try:
            stat = target.stat()
            version = stat.st_mtime_ns ^ stat.st_ino  # replaced, not rewritten in place
            if version == seen[1]:
                return False  # the same file as the last look: parse it once only
            last = json.loads(target.read_text(encoding="utf-8")).get("last_bar_time")
        except (OSError, ValueError):
            return False
        seen[1] = version
        if last:
            closed_ms = parse_time(last, field="last_bar_time") // 1_000_000 + timeframe_ms
            seen[0] = max(seen[0], closed_ms)
        return seen[0] >= bar_ms

    return ready
