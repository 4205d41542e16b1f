"""The status file of a running session: one JSON document, replaced atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_status"]


def write_status(path: str | Path, status: Mapping[str, Any]) -> None:
    """Write ``status`` as JSON to ``path`` so that a reader sees the old or the new file,
    never a partial one (a temporary file in the same folder, then ``os.replace``).
    Credentials (a DSN's password, API keys, webhook URLs) are masked.

    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "status.json"
    >>> write_status(p, {"mode": "paper", "equity": 10_000.0})
    >>> json.loads(p.read_text())["mode"]
    'paper'
    """
    from tradeloop.config.redact import redact_data

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        redact_data(dict(status)), indent=2, sort_keys=True, default=str, allow_nan=True
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
