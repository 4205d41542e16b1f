"""The data gate: a backtest (or a paper warm-up) refuses bars that ``data check`` fails.

:func:`gate_report` runs the checks that fail by default (OHLC violations, invalid values,
duplicates, unsorted rows, off-grid stamps, extreme values, straight-line interpolated runs)
on loaded bars; :func:`enforce` raises a :class:`~tradeloop.core.errors.DataError` naming the
file, the checks and the first rows/times of each, unless issues are allowed, in which case
it returns the findings for the run record and the report.

:func:`keep_sessions` drops the bars outside a market calendar's sessions (``--calendar``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeloop.core.errors import DataError
from tradeloop.data.loader import LoadedBars, RawOhlcv

if TYPE_CHECKING:  # the checks load when data is checked, not on a remembered clean pass
    from tradeloop.data.quality import QualityReport, QualityThresholds
    from tradeloop.data.sessions import Sessions

__all__ = ["GateCache", "enforce", "gate_report", "keep_sessions"]

logger = logging.getLogger(__name__)

#: Locations named per check in a refusal.
SHOWN = 5


def gate_report(
    item: LoadedBars,
    *,
    sessions: Sessions | None = None,
    thresholds: QualityThresholds | None = None,
) -> QualityReport:
    """Run the default-failing quality checks on loaded bars (outlier statistics skipped)."""
    from tradeloop.data.quality import check_quality

    bars = item.bars
    raw = RawOhlcv(
        item.source,
        np.asarray(bars.ts),
        np.asarray(bars.open),
        np.asarray(bars.high),
        np.asarray(bars.low),
        np.asarray(bars.close),
        np.asarray(bars.volume),
        item.synthetic,
        item.file_rows,
    )
    return check_quality(
        raw,
        item.timeframe,
        thresholds,
        sessions=sessions,
        outliers=False,
    )


def enforce(reports: Sequence[QualityReport], *, allow: bool) -> list[dict[str, Any]]:
    """Refuse data whose report fails, or (``allow``) return the failing findings as records.

    Returns
    -------
    list of dict
        One entry per failing finding: ``source``, ``check``, ``count``, ``rows``, ``times``,
        ``where`` (empty when every report passes).

    Raises
    ------
    DataError
        When a report fails and ``allow`` is False: names the file, each failing check with
        its count and first rows/times, and how to proceed.
    """
    records: list[dict[str, Any]] = []
    for report in reports:
        for finding in report.failing:
            records.append({"source": report.source, **finding.as_dict()})
    if not records or allow:
        for record in records:
            logger.warning(
                "data issue allowed in %s: %s %d (first: %s)",
                record["source"],
                record["check"],
                record["count"],
                "; ".join(record["where"][:3]),
                extra={"file": record["source"], "check": record["check"]},
            )
        return records
    from pathlib import Path

    failed = next(r for r in reports if not r.ok)
    text = " | ".join(f.summary(SHOWN) for f in failed.failing)
    listing = (
        f"`tradeloop data check {failed.source}` lists every finding"
        if Path(failed.source).is_file()
        else "`tradeloop data check` on the data lists every finding"
    )
    raise DataError(
        f"the data fails the data check: {text}. Fix the data ({listing}), or pass "
        "--allow-data-issues to run anyway with the findings recorded in the run record and "
        "report",
        file=failed.source,
    )


def keep_sessions(item: LoadedBars, sessions: Sessions) -> tuple[LoadedBars, int]:
    """Return ``item`` with only the bars opening inside a session, and how many were dropped."""
    from tradeloop.core.timeframes import timeframe_ns

    bars = item.bars
    mask = sessions.in_session(np.asarray(bars.ts), timeframe_ns(bars.timeframe))
    dropped = int(mask.shape[0] - np.count_nonzero(mask))
    if dropped == 0:
        return item, 0
    if not mask.any():
        raise DataError(
            f"no bar falls inside a {sessions.name} session (are the times UTC?)",
            file=item.source,
        )
    from tradeloop.core.bar import BarArrays

    kept = BarArrays(
        bars.symbol,
        bars.timeframe,
        bars.ts[mask],
        bars.open[mask],
        bars.high[mask],
        bars.low[mask],
        bars.close[mask],
        bars.volume[mask],
        None if bars.open_interest is None else bars.open_interest[mask],
        None if bars.cvd is None else bars.cvd[mask],
    )
    extras = {k: v[mask] for k, v in item.extras.items()}
    synthetic = None if item.synthetic is None else item.synthetic[mask]
    rows = np.flatnonzero(mask) if item.file_rows is None else item.file_rows[mask]
    logger.info("%s: %d bar(s) outside %s sessions dropped", item.source, dropped, sessions.name)
    return replace(item, bars=kept, extras=extras, synthetic=synthetic, file_rows=rows), dropped


class GateCache:
    """Data files that passed the gate, remembered by content so a rerun skips the checks.

    A pass is one empty marker file in ``folder`` named by the hash of the data file's sha256,
    the options it was loaded with and the source code of the loader and the checks (any
    change to the file, the options or the checks misses). Only clean passes are remembered:
    data with findings is checked every time, so a refusal always names its rows. The file
    digests computed on the way are kept in :attr:`digests` (resolved path -> sha256) for the
    run record, so a run hashes each file once.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        #: sha256 of each data file looked up, by resolved path
        self.digests: dict[str, str] = {}

    def key(self, path: str | Path, options: Mapping[str, Any]) -> str | None:
        """The marker name of data file ``path`` loaded with ``options`` (hashes the file);
        None when the file cannot be read (the loader then says why)."""
        resolved = str(Path(path).resolve())
        digest = self.digests.get(resolved)
        if digest is None:
            try:
                with open(resolved, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
            except OSError:
                return None
            self.digests[resolved] = digest
        material = {"sha256": digest, "options": dict(options), "checks": _checks_fingerprint()}
        text = json.dumps(material, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def key_soon(self, path: str | Path, options: Mapping[str, Any]) -> Future[str | None]:
        """:meth:`key` computed on a thread of its own, to overlap the load of the same file
        (hashing a large file takes about 30 ms per 30 MB and releases the GIL, as Arrow's
        and the CSV reader's parsing do); the future's result is the key."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="data-digest")
        try:
            return pool.submit(self.key, path, options)
        finally:
            pool.shutdown(wait=False)

    def passed(self, key: str) -> bool:
        """Whether the data of ``key`` passed the gate before."""
        return (self.folder / key).is_file()

    def remember(self, key: str) -> None:
        """Record a clean pass (best effort: an unwritable folder only costs the next run)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{key}.{os.getpid()}.tmp"
            tmp.write_bytes(b"")
            tmp.replace(self.folder / key)
        except OSError as exc:
            logger.debug("data gate cache not written in %s: %s", self.folder, exc)


_FINGERPRINT: list[str] = []


def _checks_fingerprint() -> str:
    """sha256 of the source of the data package and the precision helpers (the loader, the
    checks, the gate): a new version of any of them invalidates every remembered pass."""
    if not _FINGERPRINT:
        here = Path(__file__).resolve().parent
        digest = hashlib.sha256()
        for path in [*sorted(here.glob("*.py")), here.parent / "core" / "precision.py"]:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        _FINGERPRINT.append(digest.hexdigest())
    return _FINGERPRINT[0]
