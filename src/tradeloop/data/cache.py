"""Parquet cache of exchange history: ``{root}/{exchange}/{market}/{SYMBOL}/{dataset}.parquet``.

``SYMBOL`` is the unified symbol made path-safe (``BTC/USDT`` -> ``BTC_USDT``,
``BTC/USDT:USDT`` -> ``BTC_USDT_USDT``). ``dataset`` is a candle timeframe (``1m``, ``1h``...),
``funding_rate``, ``open_interest_<period>`` or ``trades``.

Every file is written atomically (a temporary file in the same folder, flushed, then
``os.replace``), so a crash leaves either the old or the new file, never a torn one. A file
carries in its Parquet metadata the time intervals it has fetched completely
(``tradeloop.coverage``), so a later fetch asks the exchange only for the rest, even where the
exchange itself has no data (outages). A fetch in progress writes each chunk of pages to
``{dataset}.parquet.parts/`` first; the next fetch (or the end of this one) merges those parts
into the main file, which is how an interrupted fetch resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data.coverage import Interval, coverage_from_json, coverage_to_json, merge

__all__ = [
    "CANDLE_COLUMNS",
    "CacheEntry",
    "CacheKey",
    "ParquetCache",
    "dataset_kind",
    "symbol_from_dir",
    "symbol_to_dir",
]

CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
TS_TYPE = pa.timestamp("ns", tz="UTC")
META_PREFIX = "tradeloop."
_SAFE_PART = re.compile(r"^[A-Za-z0-9.\-]+$")
_PART_NAME = re.compile(r"^(\d{20})-(\d{20})\.parquet$")
_MARKETS = ("spot", "perp")

# Columns per dataset kind (besides "timestamp"), and the dedup key of each kind.
_KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "candles": CANDLE_COLUMNS,
    "funding_rate": ("funding_rate",),
    "open_interest": ("open_interest", "open_interest_value"),
    "trades": ("trade_id", "price", "amount", "side"),
}


def symbol_to_dir(symbol: str) -> str:
    """Return the path-safe folder name of a unified symbol.

    Raises
    ------
    ConfigError
        If the symbol is empty or has characters other than letters, digits, ``/ : - .``.

    >>> symbol_to_dir("BTC/USDT"), symbol_to_dir("BTC/USDT:USDT")
    ('BTC_USDT', 'BTC_USDT_USDT')
    """
    text = symbol.strip().upper()
    safe = text.replace("/", "_").replace(":", "_")
    if not re.match(r"^[A-Z0-9][A-Z0-9_.\-]*$", safe) or ".." in safe:
        raise ConfigError(f"symbol {symbol!r} cannot be used in a cache path; use e.g. BTC/USDT")
    return safe


def symbol_from_dir(name: str) -> str:
    """Return the unified symbol of a cache folder (inverse of :func:`symbol_to_dir`).

    >>> symbol_from_dir("BTC_USDT"), symbol_from_dir("BTC_USDT_USDT")
    ('BTC/USDT', 'BTC/USDT:USDT')
    """
    parts = name.split("_")
    if len(parts) == 2:
        return f"{parts[0]}/{parts[1]}"
    if len(parts) == 3:
        return f"{parts[0]}/{parts[1]}:{parts[2]}"
    return name


def dataset_kind(dataset: str) -> str:
    """Return ``candles``, ``funding_rate``, ``open_interest`` or ``trades`` for a dataset name.

    Raises
    ------
    ConfigError
        If the name is none of those (candle datasets must be valid timeframes).

    >>> dataset_kind("1h"), dataset_kind("open_interest_5m"), dataset_kind("trades")
    ('candles', 'open_interest', 'trades')
    """
    if dataset in ("funding_rate", "trades"):
        return dataset
    if dataset.startswith("open_interest_"):
        timeframe_ns(dataset.removeprefix("open_interest_"))
        return "open_interest"
    timeframe_ns(dataset)
    return "candles"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """One cached series: exchange, market (``spot`` or ``perp``), unified symbol, dataset."""

    exchange: str
    market: str
    symbol: str
    dataset: str

    def __post_init__(self) -> None:
        if not _SAFE_PART.match(self.exchange):
            raise ConfigError(f"exchange name {self.exchange!r} cannot be used in a cache path")
        if self.market not in _MARKETS:
            raise ConfigError(f"market must be one of {', '.join(_MARKETS)}, got {self.market!r}")
        symbol_to_dir(self.symbol)
        dataset_kind(self.dataset)

    @property
    def kind(self) -> str:
        """The dataset kind (see :func:`dataset_kind`)."""
        return dataset_kind(self.dataset)

    def relative_path(self) -> Path:
        """Path below the cache root."""
        return Path(
            self.exchange, self.market, symbol_to_dir(self.symbol), f"{self.dataset}.parquet"
        )

    def with_dataset(self, dataset: str) -> CacheKey:
        """Return the key of another dataset of the same exchange, market and symbol."""
        return CacheKey(self.exchange, self.market, self.symbol, dataset)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What ``tradeloop data list`` shows for one cached file."""

    key: CacheKey
    path: Path
    rows: int
    first_ns: int | None
    last_ns: int | None
    gaps: int
    missing_bars: int
    synthetic: int
    error: str | None = None


class ParquetCache:
    """Read, write and merge cached series under ``root``.

    Parameters
    ----------
    root
        Cache root folder; created on first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    # ------------------------------------------------------------------ paths

    def path(self, key: CacheKey) -> Path:
        """Return the Parquet file of ``key``."""
        return self.root / key.relative_path()

    def parts_dir(self, key: CacheKey) -> Path:
        """Return the folder holding the not yet merged page chunks of ``key``."""
        p = self.path(key)
        return p.with_name(p.name + ".parts")

    def exists(self, key: CacheKey) -> bool:
        """Return True when the main file of ``key`` exists."""
        return self.path(key).is_file()

    # ------------------------------------------------------------------ reading

    def read(self, key: CacheKey, columns: list[str] | None = None) -> pa.Table | None:
        """Return the cached table of ``key`` (None when not cached).

        Raises
        ------
        DataError
            If the file exists but is not readable Parquet (the file is left untouched).
        """
        return read_table(self.path(key), columns)

    def metadata(self, key: CacheKey) -> dict[str, str]:
        """Return the ``tradeloop.*`` metadata of ``key`` (empty when not cached).

        Raises
        ------
        DataError
            If the file is corrupt.
        """
        return read_metadata(self.path(key))

    def columns(self, key: CacheKey) -> list[str]:
        """Return the column names of the cached file of ``key`` (empty when not cached).

        Raises
        ------
        DataError
            If the file is corrupt.
        """
        path = self.path(key)
        if not path.is_file():
            return []
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt(path, exc) from exc

    def coverage(self, key: CacheKey) -> list[Interval]:
        """Return the intervals ``key`` has fetched completely, main file and pending parts.

        A file without coverage metadata (written by another tool) covers
        ``[first bar, last bar + one step)``.

        Raises
        ------
        DataError
            If the main file is corrupt.
        """
        intervals = list(self._main_coverage(key))
        for start, end, _ in self._parts(key):
            intervals.append((start, end))
        return merge(intervals)

    def _main_coverage(self, key: CacheKey) -> list[Interval]:
        path = self.path(key)
        if not path.is_file():
            return []
        meta = read_metadata(path)
        if "coverage" in meta:
            return coverage_from_json(meta["coverage"])
        table = read_table(path, ["timestamp"])
        if table is None or table.num_rows == 0:
            return []
        ts = timestamps_ns(table)
        step = timeframe_ns(key.dataset) if key.kind == "candles" else 1
        return [(int(ts.min()), int(ts.max()) + step)]

    # ------------------------------------------------------------------ writing

    def write(
        self,
        key: CacheKey,
        table: pa.Table,
        coverage: list[Interval],
        meta: Mapping[str, str] | None = None,
    ) -> Path:
        """Write ``table`` as the whole cached series of ``key``, atomically.

        Returns
        -------
        Path
            The file written.
        """
        path = self.path(key)
        info = {
            "kind": key.kind,
            "exchange": key.exchange,
            "market": key.market,
            "symbol": key.symbol,
            "dataset": key.dataset,
            "coverage": coverage_to_json(coverage),
        }
        info.update(meta or {})
        atomic_write_table(path, _with_meta(table, info))
        return path

    def write_part(self, key: CacheKey, table: pa.Table, interval: Interval) -> Path:
        """Persist one chunk of fetched pages covering ``interval`` (merged later)."""
        folder = self.parts_dir(key)
        path = folder / f"{interval[0]:020d}-{interval[1]:020d}.parquet"
        atomic_write_table(path, _with_meta(table, {"coverage": coverage_to_json([interval])}))
        return path

    def pending_parts(self, key: CacheKey) -> int:
        """Return how many page chunks of ``key`` wait to be merged."""
        return len(self._parts(key))

    def _parts(self, key: CacheKey) -> list[tuple[int, int, Path]]:
        folder = self.parts_dir(key)
        if not folder.is_dir():
            return []
        found = []
        for p in folder.iterdir():
            match = _PART_NAME.match(p.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), p))
        return sorted(found)

    def consolidate(
        self,
        key: CacheKey,
        new: pa.Table | None = None,
        new_coverage: list[Interval] | None = None,
        transform: Callable[[pa.Table], pa.Table] | None = None,
    ) -> pa.Table | None:
        """Merge pending parts (and ``new`` rows) into the main file and delete the parts.

        Rows are de-duplicated on the dataset's key (``timestamp``; ``trade_id`` for trades),
        the later source winning (parts in time order, then ``new``). Coverage intervals are
        merged. ``transform`` may rewrite the merged table before it is written (derived
        columns); its ``tradeloop.*`` schema metadata is kept. Returns the merged table, or
        None when nothing is cached.

        Raises
        ------
        DataError
            If the main file or a part is corrupt.
        """
        parts = self._parts(key)
        if not parts and new is None:
            return self.read(key)
        existing = self.read(key)
        coverage = list(self._main_coverage(key))
        meta = {k: v for k, v in self.metadata(key).items() if k != "coverage"}
        tables = [] if existing is None else [existing]
        for start, end, path in parts:
            part = read_table(path)
            if part is not None:
                tables.append(part)
            coverage.append((start, end))
        if new is not None:
            tables.append(new)
            coverage.extend(new_coverage or [])
        merged = merge_tables(tables, key.kind)
        if transform is not None:
            merged = transform(merged)
            meta.update(_tradeloop_meta(merged.schema.metadata))
        self.write(key, merged, merge(coverage), meta)
        for _, _, path in parts:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.parts_dir(key).rmdir()
        return merged

    def remove_temporary(self, key: CacheKey) -> int:
        """Delete temporary files a killed writer of ``key`` left behind; return how many.

        Call it only while holding :meth:`lock`, so no live writer owns them.
        """
        path = self.path(key)
        found = list(path.parent.glob(f".{path.name}.*.tmp"))
        parts = self.parts_dir(key)
        if parts.is_dir():
            found += list(parts.glob(".*.tmp"))
        for tmp in found:
            tmp.unlink(missing_ok=True)
        return len(found)

    def replace_corrupt(self, key: CacheKey) -> None:
        """Delete the main file and pending parts of ``key`` (used by ``--force``)."""
        self.path(key).unlink(missing_ok=True)
        for _, _, path in self._parts(key):
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, key: CacheKey) -> Iterator[None]:
        """Hold an exclusive lock on ``key`` for one writer (released if the process dies).

        Raises
        ------
        ConfigError
            If another process holds the lock.
        """
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
                pass
            except BlockingIOError:
                raise ConfigError(
                    f"another tradeloop process is writing {path}; wait for it to finish"
                ) from None
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ listing

    def entries(self) -> list[CacheEntry]:
        """Return every cached file below the root, sorted by path."""
        from tradeloop.data.gaps import find_gaps

        out: list[CacheEntry] = []
        if not self.root.is_dir():
            return out
        for path in sorted(self.root.glob("*/*/*/*.parquet")):
            exchange, market, sym_dir = path.parts[-4:-1]
            try:
                key = CacheKey(exchange, market, symbol_from_dir(sym_dir), path.stem)
            except ConfigError:
                continue
            try:
                meta = read_metadata(path)
                if "symbol" in meta:
                    key = CacheKey(exchange, market, meta["symbol"], path.stem)
                wanted = ["timestamp"] + (["synthetic"] if key.kind == "candles" else [])
                names = pq.read_schema(path).names
                table = read_table(path, [c for c in wanted if c in names])
            except DataError as exc:
                out.append(CacheEntry(key, path, 0, None, None, 0, 0, 0, error=str(exc)))
                continue
            assert table is not None
            ts = timestamps_ns(table)
            gaps = missing = synthetic = 0
            if key.kind == "candles" and ts.size:
                found = find_gaps(ts, timeframe_ns(key.dataset))
                gaps, missing = len(found), int(found.missing.sum())
                if "synthetic" in table.column_names:
                    synthetic = int(np.count_nonzero(table.column("synthetic").to_numpy(False)))
            out.append(
                CacheEntry(
                    key,
                    path,
                    int(table.num_rows),
                    int(ts.min()) if ts.size else None,
                    int(ts.max()) if ts.size else None,
                    gaps,
                    missing,
                    synthetic,
                )
            )
        return out


# ---------------------------------------------------------------------- table helpers


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    """Read a Parquet file (None when it does not exist).

    Raises
    ------
    DataError
        If the file is not readable Parquet; the message says the file was left untouched.
    """
    if not path.is_file():
        return None
    try:
        return pq.read_table(path, columns=columns, memory_map=True)
    except (pa.ArrowException, OSError) as exc:
        raise _corrupt(path, exc) from exc


def read_metadata(path: Path) -> dict[str, str]:
    """Return the ``tradeloop.*`` key-value metadata of a Parquet file (prefix removed).

    Raises
    ------
    DataError
        If the file is not readable Parquet.
    """
    if not path.is_file():
        return {}
    try:
        raw = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise _corrupt(path, exc) from exc
    return _tradeloop_meta(raw)


def _tradeloop_meta(raw: Mapping[bytes, bytes] | None) -> dict[str, str]:
    out = {}
    for k, v in (raw or {}).items():
        name = k.decode("utf-8", "replace")
        if name.startswith(META_PREFIX):
            out[name[len(META_PREFIX) :]] = v.decode("utf-8", "replace")
    return out


def _corrupt(path: Path, exc: BaseException) -> DataError:
    return DataError(
        f"cached file is corrupt or not Parquet ({exc}); it was left untouched: delete it or "
        "re-run the fetch with --force to replace it",
        file=str(path),
    )


def _with_meta(table: pa.Table, info: Mapping[str, str]) -> pa.Table:
    existing = dict(table.schema.metadata or {})
    existing.pop(b"pandas", None)
    for k, v in info.items():
        existing[(META_PREFIX + k).encode()] = str(v).encode()
    return table.replace_schema_metadata(existing)


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """Write ``table`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def timestamps_ns(table: pa.Table) -> np.ndarray:
    """Return the ``timestamp`` column as UTC int64 ns."""
    col = table.column("timestamp")
    if not pa.types.is_timestamp(col.type):
        return np.asarray(col.to_numpy(), dtype=np.int64)
    col = col.cast(TS_TYPE) if col.type != TS_TYPE else col
    return np.asarray(col.cast(pa.int64()).to_numpy(), dtype=np.int64)


def merge_tables(tables: list[pa.Table], kind: str) -> pa.Table:
    """Concatenate, de-duplicate (the later table wins) and sort tables of one dataset kind."""
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return empty_table(kind)
    combined = pa.concat_tables(
        [t.replace_schema_metadata(None) for t in tables], promote_options="default"
    )
    ts = timestamps_ns(combined)
    n = combined.num_rows
    order_in = np.arange(n, dtype=np.int64)
    if kind == "trades":
        ids = np.asarray(combined.column("trade_id").to_numpy(zero_copy_only=False), dtype=object)
        # keep the last occurrence of each id
        _, first_rev = np.unique(ids[::-1], return_index=True)
        keep = np.sort(n - 1 - first_rev)
        numeric = np.array([_id_number(x) for x in ids[keep]], dtype=np.float64)
        order = (
            keep[np.lexsort((numeric, ts[keep]))]
            if np.isfinite(numeric).all()
            else keep[np.argsort(ts[keep], kind="stable")]
        )
    else:
        order = np.lexsort((-order_in, ts))  # by time, later source first within a time
        sorted_ts = ts[order]
        first = np.ones(n, dtype=bool)
        first[1:] = sorted_ts[1:] != sorted_ts[:-1]
        order = order[first]
    out = combined.take(pa.array(order))
    if "synthetic" in out.column_names:
        filled = out.column("synthetic").fill_null(False)
        out = out.set_column(out.column_names.index("synthetic"), "synthetic", filled)
    return out


def _id_number(value: object) -> float:
    try:
        return float(int(str(value)))
    except ValueError:
        return float("nan")


def empty_table(kind: str) -> pa.Table:
    """Return an empty table with the columns of ``kind``."""
    fields = [pa.field("timestamp", TS_TYPE)]
    for name in _KIND_COLUMNS[kind]:
        kind_type = pa.string() if name in ("trade_id", "side") else pa.float64()
        fields.append(pa.field(name, kind_type))
    return pa.schema(fields).empty_table()
