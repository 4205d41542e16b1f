"""Load OHLCV bars from CSV, Parquet and Feather/Arrow files into :class:`BarArrays`.

Parquet and Feather are read with pyarrow directly (only the needed columns, memory-mapped);
CSV (optionally compressed) is read with pandas. Columns are detected by name, timestamps are
converted to UTC int64 nanoseconds, and every file is validated before it is returned.
"""

from __future__ import annotations

import csv
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.precision import price_decimals as infer_price_decimals
from tradeloop.core.time import NS_PER_SECOND
from tradeloop.core.timeframes import timeframe_from_ns, timeframe_ns
from tradeloop.data.validation import count_time_order_problems, validate_ohlcv

__all__ = [
    "ColumnMap",
    "CsvLayout",
    "LoadedBars",
    "infer_price_decimals",
    "infer_symbol",
    "infer_timeframe",
    "load_ohlcv",
]

logger = logging.getLogger(__name__)

# Candidate names per canonical field, in priority order, compared case-insensitively.
_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "date", "datetime", "time", "open_time", "ts"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "price"),
    "volume": ("volume", "vol", "v"),
}
_OPTIONAL_ALIASES: dict[str, tuple[str, ...]] = {
    "open_interest": ("open_interest", "openinterest", "oi"),
    "cvd": ("cvd",),
}
_REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")
# Names pandas/pyarrow give an index column written without a name.
_INDEX_NAME = re.compile(r"^(unnamed: ?0|__index_level_0__|index|)$", re.IGNORECASE)

_NS_PER_UNIT: dict[str, int] = {"s": NS_PER_SECOND, "ms": 1_000_000, "us": 1_000, "ns": 1}
_COMPRESSION_SUFFIXES = frozenset({".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"})
_FORMAT_BY_SUFFIX = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".ftr": "feather",
    ".arrow": "feather",
    ".ipc": "feather",
}
_FORMAT_SUFFIXES = frozenset(_FORMAT_BY_SUFFIX)


def _csv_float_options() -> dict[str, str]:
    # Decimal text must become the nearest float64 (bit-exact round trip). pandas >= 3 does
    # that by default and deprecates the option; older pandas needs "round_trip".
    import pandas as pd

    return {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


_PAIR_PART = re.compile(r"^[A-Z0-9]+$")


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Explicit source column names; a field left as None is detected by name."""

    timestamp: str | None = None
    open: str | None = None
    high: str | None = None
    low: str | None = None
    close: str | None = None
    volume: str | None = None


@dataclass(frozen=True)
class LoadedBars:
    """Bars loaded from one file plus what was learnt about the file.

    Attributes
    ----------
    bars
        The bars, with ``symbol`` and ``timeframe`` set.
    source
        The path as given to :func:`load_ohlcv`.
    timeframe
        The timeframe given, or detected from the most common bar spacing.
    price_decimals
        Smallest number of decimals that represents every open/high/low/close exactly, or None
        when more than 10 are needed.
    tick_size
        ``10 ** -price_decimals``, or 0.0 when unknown.
    repaired
        Counts of repairs made with ``repair=True``, e.g. ``{"duplicates_dropped": 3}``; empty
        when nothing was repaired.
    synthetic
        For bars from the cache: True for bars filled by the gap policy (``--fill forward``),
        which the engine can refuse to trade on; None when no bar is synthetic information.
    extras
        Further per-bar columns aligned with ``bars`` (e.g. ``funding_rate``,
        ``volume_delta`` from the cache's order-flow columns).
    meta
        Provenance, e.g. ``{"exchange": "binance", "cvd_method": "bar_sign"}``.
    issues
        Data-check findings a run was allowed to proceed with (``--allow-data-issues``), as
        records of :meth:`~tradeloop.data.quality.Finding.as_dict`; empty when the data passed.
    file_rows
        The file's data row (0-based) of each bar when they differ (a newest-first file
        reversed, rows moved or dropped by ``repair``, bars outside a calendar's sessions
        dropped); None: bar ``i`` is row ``i``. Findings name the file's rows with it.
    """

    bars: BarArrays
    source: str
    timeframe: str
    price_decimals: int | None
    tick_size: float
    repaired: dict[str, int] = field(default_factory=dict)
    synthetic: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    file_rows: np.ndarray | None = None
    issues: tuple[dict[str, Any], ...] = ()


# --------------------------------------------------------------------------- public helpers


def infer_symbol(path: str | Path) -> str:
    """Return the symbol encoded in a data file name (freqtrade naming understood).

    The name is cut at the first ``-``; ``BASE_QUOTE`` becomes ``BASE/QUOTE`` and
    ``BASE_QUOTE_SETTLE`` becomes ``BASE/QUOTE:SETTLE`` when every part is upper-case
    letters/digits. Other names are returned unchanged (case kept).

    Raises
    ------
    ConfigError
        If no symbol is left after removing the suffixes.

    Examples
    --------
    >>> infer_symbol("BTC_USDT-1m.parquet")
    'BTC/USDT'
    >>> infer_symbol("data/BTC_USDT_USDT-1m-futures.feather")
    'BTC/USDT:USDT'
    >>> infer_symbol("GOOG.csv.gz")
    'GOOG'
    """
    name = Path(path).name
    while True:
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem:
            break
        lowered = "." + suffix.lower()
        if lowered in _COMPRESSION_SUFFIXES or lowered in _FORMAT_SUFFIXES:
            name = stem
        else:
            break
    base = name.split("-", 1)[0].strip()
    if not base:
        raise ConfigError(f"cannot infer a symbol from file name {str(path)!r}; pass symbol=")
    parts = base.split("_")
    if len(parts) in (2, 3) and all(len(p) >= 2 and _PAIR_PART.match(p) for p in parts):
        return f"{parts[0]}/{parts[1]}" + (f":{parts[2]}" if len(parts) == 3 else "")
    return base


def infer_timeframe(ts_ns: np.ndarray, *, file: str | None = None) -> str:
    """Return the timeframe of bars from their most common positive spacing.

    Gaps (missing bars) do not matter as long as the regular spacing is the most common one.

    Parameters
    ----------
    ts_ns
        Bar open times, UTC int64 ns, sorted.
    file
        The file the times come from, named in an error.

    Raises
    ------
    DataError
        If there are fewer than two distinct timestamps, the most common spacing is not a
        whole number of minutes, or the bars are calendar months or quarters apart.

    Examples
    --------
    >>> m = 60_000_000_000
    >>> infer_timeframe(np.array([0, 5 * m, 10 * m, 30 * m, 35 * m]))
    '5m'
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    step = _most_common_step(ts)
    if step is None:
        raise DataError(
            "cannot infer the timeframe from fewer than two distinct timestamps", file=file
        )
    _refuse_calendar_months(ts, step, file)
    try:
        return timeframe_from_ns(step)
    except ConfigError:
        raise DataError(
            f"the most common bar spacing is {step / NS_PER_SECOND:g} s, not a whole number of "
            "minutes (tick data or jittered timestamps?)",
            file=file,
        ) from None


def _refuse_calendar_months(ts: np.ndarray, step: int, file: str | None) -> None:
    """Refuse monthly or quarterly bars (28 to 92 days apart): no fixed-length timeframe."""
    day = 86_400 * NS_PER_SECOND
    if not 28 * day <= step <= 92 * day:
        return
    spacing = np.diff(ts)
    if np.count_nonzero((spacing >= 28 * day) & (spacing <= 92 * day)) * 2 > spacing.size:
        raise DataError(
            "the bars are a calendar month or a quarter apart (28 to 92 days): timeframes "
            "have a fixed length, up to 1w; use daily or weekly bars of the same market",
            file=file,
        )


def _most_common_step(ts: np.ndarray) -> int | None:
    # Most common positive difference; ties go to the smaller step.
    if ts.shape[0] < 2:
        return None
    step = np.diff(ts)
    step = step[step > 0]
    if step.size == 0:
        return None
    smallest = step.min()
    # Fast path: regular data, where the smallest step is the majority (no sort needed).
    if 2 * int(np.count_nonzero(step == smallest)) > step.size:
        return int(smallest)
    values, counts = np.unique(step, return_counts=True)
    return int(values[np.argmax(counts)])


# --------------------------------------------------------------------------- load_ohlcv


def load_ohlcv(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    columns: ColumnMap | None = None,
    time_unit: str | None = None,
    repair: bool = False,
    layout: CsvLayout | None = None,
    check_ohlc: bool = True,
    tz: str | None = None,
) -> LoadedBars:
    """Load, check and return the OHLCV bars of one file.

    Formats are chosen by suffix: ``.csv``/``.txt``/``.tsv`` (optionally compressed, e.g.
    ``.csv.gz``), ``.parquet``, ``.feather``/``.arrow``. Column names are matched
    case-insensitively: timestamp from ``timestamp, date, datetime, time, open_time, ts`` (an
    unnamed leading index column is used only when there is no such column), prices from
    ``open|o, high|h, low|l, close|c|price``, volume from ``volume|vol|v``; optional
    ``open_interest|oi`` and ``cvd`` columns are carried along. Timestamps may be ISO-8601
    text (naive text is read as UTC), Arrow/Parquet timestamps with or without a time zone,
    dates, or integer/float epochs whose unit (s, ms, us, ns) is detected from their magnitude.

    Parameters
    ----------
    path
        File to read.
    symbol
        Symbol of the bars; inferred from the file name when None (see :func:`infer_symbol`).
    timeframe
        Timeframe of the bars; detected from the most common spacing when None. Data whose
        spacing is finer than a given timeframe is refused (use :func:`resample`).
    columns
        Explicit column names for some or all fields.
    time_unit
        Force the unit (``"s"``, ``"ms"``, ``"us"``, ``"ns"``) of a numeric epoch column.
    repair
        Sort rows by time and drop duplicate timestamps (keeping the first), logging a warning
        and recording the counts in :attr:`LoadedBars.repaired`. Other problems still raise.
        A file stored newest first (every step backwards) is always reversed, with a warning
        and ``repaired["reversed_newest_first"]``.
    layout
        How a CSV file is laid out (header, banner lines, separator, column names); detected
        when None (see :class:`CsvLayout`).
    check_ohlc
        Refuse bars whose high/low contradict open/close (the default). False lets them
        through (``--allow-data-issues``: the data gate records them instead); NaN and
        non-positive prices are refused either way.
    tz
        The time zone (IANA name, e.g. ``America/New_York``) the file's times are written in
        when they carry no offset: its wall-clock times become UTC, daylight saving time
        included (``--tz``). Times with an offset, zone-aware columns and epoch numbers are
        already UTC-anchored and are refused with it. None: naive times are UTC.

    Returns
    -------
    LoadedBars
        The bars plus the detected timeframe, price decimals and repairs.

    Raises
    ------
    ConfigError
        If ``timeframe`` or ``time_unit`` is not valid, or ``time_unit`` is given for a column
        that is not a numeric epoch.
    DataError
        If the file is missing, unreadable, of an unknown type, lacks a required column, or
        breaks a rule checked by :func:`~tradeloop.data.validation.validate_ohlcv` (the error
        names file, 0-based data row and field); also if the timeframe cannot be detected or is
        finer than ``timeframe``.
    """
    file = str(path)
    p = Path(path)
    if time_unit is not None and time_unit not in _NS_PER_UNIT:
        raise ConfigError(f"time_unit must be one of {', '.join(_NS_PER_UNIT)}, got {time_unit!r}")
    given_step = None if timeframe is None else timeframe_ns(timeframe)
    fmt = _format_of(p, file)
    if not p.is_file():
        raise DataError("file not found", file=file)

    picked, raw = _read_columns(p, fmt, columns, file, layout)
    n_rows = len(raw["timestamp"])
    if n_rows == 0:
        raise DataError("file has no data rows", file=file)

    ts = _to_ns(raw["timestamp"], time_unit, file=file, field=picked["timestamp"], tz=tz)
    values = _with_volume(
        {
            name: _to_float(raw[name], file=file, field=picked[name])
            for name in raw
            if name != "timestamp"
        },
        n_rows,
    )
    reversed_rows = _newest_first(ts)
    # the values are checked in file order (an error names the file's row); a newest-first
    # file's times strictly decrease, so reversed they strictly increase
    validate_ohlcv(
        None if repair or reversed_rows else ts,
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        values["volume"],
        file=file,
        names=picked,
        check_ohlc=check_ohlc,
    )
    file_rows: np.ndarray | None = None
    if reversed_rows:
        ts = ts[::-1].copy()
        values = {k: v[::-1].copy() for k, v in values.items()}
        file_rows = np.arange(n_rows - 1, -1, -1, dtype=np.int64)
        logger.warning(
            "%s: rows are stored newest first; sorted oldest first (%d rows)",
            file,
            reversed_rows,
            extra={"file": file, "rows": reversed_rows},
        )
    repaired: dict[str, int] = {}
    if repair:
        ts, values, repaired, kept = _repair(ts, values, file)
        if kept is not None:
            file_rows = kept if file_rows is None else file_rows[kept]
    if reversed_rows:
        repaired["reversed_newest_first"] = reversed_rows

    tf = _resolve_timeframe(ts, timeframe, given_step, file)
    decimals = infer_price_decimals(values["open"], values["high"], values["low"], values["close"])
    bars = BarArrays(
        symbol if symbol is not None else infer_symbol(p),
        tf,
        ts,
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        values["volume"],
        values.get("open_interest"),
        values.get("cvd"),
    )
    logger.debug(
        "loaded %s: %d bars, timeframe %s, price decimals %s",
        file,
        len(bars),
        tf,
        decimals,
        extra={"file": file, "rows": len(bars), "timeframe": tf},
    )
    return LoadedBars(
        bars=bars,
        source=file,
        timeframe=tf,
        price_decimals=decimals,
        tick_size=0.0 if decimals is None else 10.0**-decimals,
        repaired=repaired,
        file_rows=file_rows,
    )


def _newest_first(ts: np.ndarray) -> int:
    """Row count when every step goes back in time (a newest-first file), else 0."""
    if ts.shape[0] < 2 or ts[1] >= ts[0]:  # the first step already goes forward
        return 0
    step = np.diff(ts)
    return int(ts.shape[0]) if bool(np.all(step < 0)) else 0


def _resolve_timeframe(
    ts: np.ndarray, timeframe: str | None, given_step: int | None, file: str
) -> str:
    step = _most_common_step(ts)
    if timeframe is None or given_step is None:
        if step is None:
            raise DataError(
                "cannot detect the timeframe from fewer than two bars (a backtest needs two or "
                "more; from Python, load_ohlcv(..., timeframe=...) loads one)",
                file=file,
            )
        _refuse_calendar_months(ts, step, file)
        try:
            return timeframe_from_ns(step)
        except ConfigError:
            raise DataError(
                f"the most common bar spacing is {step / NS_PER_SECOND:g} s, not a whole number "
                "of minutes (tick data or jittered timestamps?); aggregate it into minute bars "
                "first (from Python, load_ohlcv(..., timeframe=...) loads it anyway)",
                file=file,
            ) from None
    if step is not None and step < given_step:
        raise DataError(
            f"bars are {step / NS_PER_SECOND:g} s apart, finer than the requested {timeframe}; "
            f"load without timeframe= and call resample(bars, {timeframe!r})",
            file=file,
        )
    if step is not None and step != given_step:
        logger.warning(
            "%s: most common bar spacing is %g s but timeframe %s was given",
            file,
            step / NS_PER_SECOND,
            timeframe,
            extra={"file": file},
        )
    return timeframe


def _repair(
    ts: np.ndarray, values: dict[str, np.ndarray], file: str
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int], np.ndarray | None]:
    # Sort by time (stable, so equal stamps keep file order) and drop repeated stamps,
    # keeping the first row of each. "rows_sorted" counts rows earlier than their predecessor.
    # The last item: the input row of each row kept (None when nothing moved).
    backward, _ = count_time_order_problems(ts)
    repaired: dict[str, int] = {}
    index = np.arange(ts.shape[0], dtype=np.int64)
    if backward:
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        values = {k: v[order] for k, v in values.items()}
        index = index[order]
        repaired["rows_sorted"] = backward
    if ts.shape[0] > 1:
        keep = np.empty(ts.shape[0], dtype=bool)
        keep[0] = True
        np.not_equal(ts[1:], ts[:-1], out=keep[1:])
        dropped = int(ts.shape[0] - np.count_nonzero(keep))
        if dropped:
            ts = ts[keep]
            values = {k: v[keep] for k, v in values.items()}
            index = index[keep]
            repaired["duplicates_dropped"] = dropped
    if repaired:
        logger.warning(
            "%s: repaired time order: %s",
            file,
            ", ".join(f"{k}={v}" for k, v in repaired.items()),
            extra={"file": file, **repaired},
        )
    return ts, values, repaired, (index if repaired else None)


# --------------------------------------------------------------------------- reading


def _format_of(p: Path, file: str) -> str:
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
        core = suffixes[-1] if suffixes else ""
        if _FORMAT_BY_SUFFIX.get(core) == "csv":
            return "csv"
        held = ""
        if p.suffix.lower() == ".zip":
            members = _zip_members(p, file)
            if len(members) != 1:
                raise DataError(
                    f"a .zip must hold exactly one CSV file, this one holds {len(members)}",
                    file=file,
                )
            if _FORMAT_BY_SUFFIX.get(Path(members[0]).suffix.lower()) == "csv":
                return "csv"  # a venue's monthly archive: BTCUSDT-1m-2024-01.zip of a .csv
            held = f" (this one holds {members[0]})"
        raise DataError(
            f"compressed files are supported for CSV only (e.g. .csv.gz){held}", file=file
        )
    core = suffixes[-1] if suffixes else ""
    fmt = _FORMAT_BY_SUFFIX.get(core)
    if fmt is None:
        raise DataError(
            f"unsupported file type {core or '(no suffix)'!r}; use .csv, .csv.gz, .parquet, "
            ".feather or .arrow",
            file=file,
        )
    return fmt


def _zip_members(p: Path, file: str) -> list[str]:
    """The names of the files a .zip holds (folders left out)."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as archive:
            return [m for m in archive.namelist() if not m.endswith("/")]
    except FileNotFoundError:
        raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"corrupt or truncated zip file: {exc}", file=file) from None


def _read_columns(
    p: Path, fmt: str, columns: ColumnMap | None, file: str, layout: CsvLayout | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Return (canonical field -> source column name, canonical field -> arrow/pandas column)."""
    if fmt == "csv":
        return _read_csv(p, columns, file, layout)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # ParquetFile avoids read_table's dataset layer (and its ~0.3 s of imports)
            parquet = pq.ParquetFile(p, memory_map=True)
            names = list(parquet.schema_arrow.names)
            picked = _pick_columns(names, columns, file)
            table = parquet.read(columns=_unique(picked.values()))
        else:
            import pyarrow.feather as pf

            names = _feather_names(p)
            picked = _pick_columns(names, columns, file)
            table = pf.read_table(p, columns=_unique(picked.values()), memory_map=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"cannot read {fmt} file (truncated or corrupt?): {exc}", file=file
        ) from exc
    return picked, {k: table.column(v) for k, v in picked.items()}


def _feather_names(p: Path) -> list[str]:
    # Feather v2 is the Arrow IPC file format: read the schema without the data.
    try:
        with pa.memory_map(str(p)) as source:
            return list(pa.ipc.open_file(source).schema.names)
    except pa.ArrowInvalid:
        import pyarrow.feather as pf  # Feather v1: no cheap schema, read it all

        return list(pf.read_table(p).column_names)


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """How a text (CSV) file is laid out; a field left as None is detected.

    Attributes
    ----------
    header
        Whether the first line after ``skip_rows`` names the columns (None: detected: a first
        line with three or more numbers is data).
    names
        Column names in file order, for a file without a header (``--columns``); a headerless
        file of six columns is read as ``timestamp, open, high, low, close, volume``.
    skip_rows
        Lines above the header (or the first data row) to skip, e.g. a banner (None:
        detected: leading lines whose field count differs from the data's are skipped).
    sep
        Field separator (None: detected among ``,`` ``;`` tab and ``|``).
    """

    header: bool | None = None
    names: tuple[str, ...] | None = None
    skip_rows: int | None = None
    sep: str | None = None

    @classmethod
    def from_options(
        cls, no_header: bool = False, columns: str | None = None, skip_rows: int | None = None
    ) -> CsvLayout | None:
        """The layout of the CLI options ``--no-header``, ``--columns a,b,..``, ``--skip-rows``.

        Returns None when no option is given (everything detected).

        Raises
        ------
        ConfigError
            For a negative ``skip_rows`` or empty column names.
        """
        if not no_header and columns is None and skip_rows is None:
            return None
        if skip_rows is not None and skip_rows < 0:
            raise ConfigError(f"--skip-rows must be >= 0, got {skip_rows}")
        names = None
        if columns is not None:
            names = tuple(c.strip() for c in columns.split(","))
            if not all(names):
                raise ConfigError(f"--columns expects comma-separated names, got {columns!r}")
        return cls(header=False if no_header else None, names=names, skip_rows=skip_rows)


_DEFAULT_HEADERLESS = ("timestamp", "open", "high", "low", "close", "volume")
_SEPARATORS = (",", ";", "\t", "|")


def _decompressed(p: Path, file: str) -> bytes | None:
    """The bytes of a compressed file (None for a plain one), with named errors."""
    import bz2
    import gzip
    import lzma
    import zipfile
    import zlib

    suffix = p.suffix.lower()
    kind = suffix.lstrip(".")
    try:
        if suffix == ".gz":
            with gzip.open(p, "rb") as fh:
                return fh.read()
        if suffix == ".bz2":
            with bz2.open(p, "rb") as fh:
                return fh.read()
        if suffix == ".xz":
            with lzma.open(p, "rb") as fh:
                return fh.read()
        if suffix == ".zst":
            with pa.CompressedInputStream(pa.OSFile(str(p)), "zstd") as stream:
                return bytes(stream.read())
        if suffix == ".zip":
            with zipfile.ZipFile(p) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise DataError(
                        f"a .zip must hold exactly one file, this one holds {len(members)}",
                        file=file,
                    )
                return archive.read(members[0])
    except DataError:
        raise
    except EOFError as exc:
        raise DataError(
            f"truncated {kind} file: it ends before the end of its compressed stream ({exc}); "
            "download or copy it again",
            file=file,
        ) from None
    except (
        OSError,
        zlib.error,
        lzma.LZMAError,
        zipfile.BadZipFile,
        pa.ArrowException,
        ValueError,
    ) as exc:
        raise DataError(f"corrupt or truncated {kind} file: {exc}", file=file) from None
    if suffix in _COMPRESSION_SUFFIXES:
        raise DataError(
            f"{kind} compression is not supported; use gz, bz2, xz, zst or zip", file=file
        )
    return None


def _split(line: str, sep: str) -> list[str]:
    """The fields of one text line; a quoted field may hold the separator."""
    if '"' not in line:
        return line.split(sep)
    return next(csv.reader([line], delimiter=sep), [])


def _sniff(head: list[str], layout: CsvLayout, file: str) -> tuple[str, int, bool, int]:
    """Return ``(sep, skip_rows, has_header, fields)`` from the first lines of a text file.

    The separator is the candidate that splits the data lines (below any banner) into the
    same number of fields most often, counting separators outside quotes; on a tie, the one
    that also splits the most of all the first lines (the header included) that way: a
    ``;``-separated file with decimal commas is ``;``, not ``,``.
    """
    lines = [line.rstrip("\r\n") for line in head]
    body = [line for line in lines if line.strip()]
    if not body:
        raise DataError("file is empty (no header row)", file=file)
    tail = body[min(len(body) - 1, 5) :] or body
    sep = layout.sep
    if sep is None:
        best = (0, 0, 0)
        sep = ","
        for candidate in _SEPARATORS:
            counts = [len(_split(line, candidate)) - 1 for line in tail]
            mode = max(set(counts), key=counts.count)
            everywhere = sum(len(_split(line, candidate)) - 1 == mode for line in body)
            score = (counts.count(mode), everywhere, mode)
            if mode > 0 and score > best:
                best, sep = score, candidate
    fields_per_line = [len(_split(line, sep)) for line in lines]
    tail_fields = [len(_split(line, sep)) for line in tail]
    fields = max(set(tail_fields), key=tail_fields.count)
    # data lines that all end with a separator: a header without one is one field shorter
    trailing = all(_split(line, sep)[-1].strip() == "" for line in tail)
    widths = {fields, fields - 1} if trailing else {fields}
    if layout.skip_rows is not None:
        skip = layout.skip_rows
    else:
        skip = 0
        for n_fields, line in zip(fields_per_line, lines, strict=True):
            if line.strip() and n_fields in widths and not line.lstrip().startswith("#"):
                break
            skip += 1
    first = _split(lines[skip], sep) if skip < len(lines) else []
    if layout.header is not None:
        header = layout.header
    elif layout.names is not None:
        header = False
    else:
        header = sum(_is_number(f) for f in first) < 3
    return sep, skip, header, fields


def _is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


#: byte order marks of UTF-32 and UTF-16 text (a spreadsheet's "Unicode text" export is
#: UTF-16), the longer first: UTF-32's little-endian mark begins with UTF-16's
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _as_utf8(content: bytes, file: str) -> bytes:
    """``content`` as UTF-8: UTF-16 or UTF-32 text (told by its byte order mark, as
    spreadsheets save "Unicode text") is converted; anything else is read as UTF-8."""
    encoding = next((name for bom, name in _BOMS if content.startswith(bom)), None)
    if encoding is None:
        return content
    try:
        return content.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"the file starts as {encoding.upper()} text but byte {exc.start} does not decode; "
            "save it as UTF-8",
            file=file,
        ) from exc


def _read_csv(
    p: Path, columns: ColumnMap | None, file: str, layout: CsvLayout | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    import io

    import pandas as pd  # imported lazily: only CSV and text times need it

    layout = layout or CsvLayout()
    payload = _decompressed(p, file)
    try:
        content = _as_utf8(payload if payload is not None else p.read_bytes(), file)
        head_text = content[:65536].decode("utf-8", errors="replace")
        head = head_text.splitlines(keepends=True)[:50]
        sep, skip, header, n_fields = _sniff(head, layout, file)
        if skip:
            logger.warning(
                "%s: skipped %d line(s) above the %s",
                file,
                skip,
                "header" if header else "data",
                extra={"file": file, "skip_rows": skip},
            )
        source = io.BytesIO(content)
        if header:
            names = [str(c) for c in pd.read_csv(source, nrows=0, sep=sep, skiprows=skip).columns]
            source.seek(0)
        else:
            names = list(layout.names) if layout.names is not None else []
            if not names:
                if n_fields != len(_DEFAULT_HEADERLESS):
                    raise DataError(
                        f"the file has no header row and {n_fields} columns; name them with "
                        "--columns timestamp,open,high,low,close,volume,... (in file order)",
                        file=file,
                    )
                names = list(_DEFAULT_HEADERLESS)
            elif len(names) != n_fields:
                raise DataError(
                    f"--columns names {len(names)} columns but the file has {n_fields}",
                    file=file,
                )
        picked = _pick_columns(names, columns, file)
        wanted = _unique(picked.values())
        data_lines = head[skip + int(header) :]
        quoted = b'"' in content
        frame = pd.read_csv(
            source,
            sep=sep,
            skiprows=skip,
            header=0 if header else None,
            names=None if header else names,
            # a row with more fields than the header: the reader refuses it when it reads
            # every column (quoted text may hold the separator), else it is counted below
            usecols=None if quoted else [names.index(c) for c in wanted],
            index_col=False,
            decimal="," if sep != "," and _decimal_commas(data_lines, sep) else ".",
            **_csv_float_options(),
            low_memory=False,
        )
        if not quoted:
            _check_field_counts(
                content, sep, head[: skip + int(header)], len(names), len(frame), file
            )
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError("file is empty (no header row)", file=file) from None
    except EOFError as exc:
        raise DataError(f"truncated file: {exc}", file=file) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"cannot read CSV: {exc}", file=file) from exc
    frame.columns = [str(c) for c in frame.columns]
    if not header:
        wanted_names = [names[i] for i in sorted(names.index(c) for c in wanted)]
        frame.columns = wanted_names
    return picked, {k: frame[v] for k, v in picked.items()}


_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")


def _decimal_commas(lines: list[str], sep: str) -> bool:
    """Whether the first data lines write numbers with a decimal comma (``9840,5``)."""
    sample = [f for line in lines[:20] if line.strip() for f in _split(line.rstrip("\r\n"), sep)]
    return any(_DECIMAL_COMMA.match(f) for f in sample)


def _check_field_counts(
    content: bytes, sep: str, above: list[str], n_names: int, n_rows: int, file: str
) -> None:
    """Refuse rows with more fields than the header names (an unquoted ``1,820.54``, an
    extra column), which a reader of some columns would silently cut off.

    All the separators below the header are counted at once (C speed): more than
    ``(fields - 1) x rows`` means a longer row somewhere, found and named line by line. Empty
    trailing fields (a separator at the end of every line) are allowed.
    """
    expected = (n_names - 1) * n_rows
    below = content.count(sep.encode()) - sum(line.count(sep) for line in above)
    if below <= expected:
        return
    row = 0
    for line in content.decode("utf-8", errors="replace").splitlines()[len(above) :]:
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) > n_names and any(f.strip() for f in fields[n_names:]):
            raise DataError(
                f"row has {len(fields)} fields but the header names {n_names} (an unquoted "
                "thousands separator such as 1,820.54, or an extra column?)",
                file=file,
                row=row,
            )
        row += 1


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


#: the command-line option naming each field's column
_FLAG = {
    "timestamp": "--ts-col",
    "open": "--open-col",
    "high": "--high-col",
    "low": "--low-col",
    "close": "--close-col",
    "volume": "--volume-col",
}


#: ``ColumnMap(volume=NO_VOLUME)`` (``--volume-col none``): the data has no volume column
NO_VOLUME = "none"


def _no_volume(explicit: str, names: list[str]) -> bool:
    """Whether ``--volume-col`` says the data has no volume (``none``, unless so named)."""
    return explicit.strip().lower() == NO_VOLUME and explicit not in names


def _with_volume(values: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """``values`` with a volume of 0 for data read without one (``--volume-col none``)."""
    if "volume" not in values:
        values["volume"] = np.zeros(rows, dtype=np.float64)
    return values


def _pick_columns(names: list[str], columns: ColumnMap | None, file: str) -> dict[str, str]:
    """Map canonical fields to source column names (explicit ColumnMap first, then aliases)."""
    by_lower: dict[str, list[str]] = {}
    for column in names:
        by_lower.setdefault(column.strip().lower(), []).append(column)
    found = ", ".join(repr(n) for n in names)

    def lookup(alias: str, fld: str) -> str | None:
        matches = by_lower.get(alias.lower(), [])
        if len(matches) > 1:
            raise DataError(
                f"ambiguous {fld} column: {matches} differ only in case; name the one to use "
                f"with {_FLAG[fld]} (columns=ColumnMap(...) from Python)",
                file=file,
                field=fld,
            )
        return matches[0] if matches else None

    picked: dict[str, str] = {}
    for fld in _REQUIRED:
        explicit: str | None = getattr(columns, fld) if columns is not None else None
        name: str | None
        if fld == "volume" and explicit is not None and _no_volume(explicit, names):
            continue  # data without volume (FX quotes, an index): read as 0
        if explicit is not None:
            name = explicit if explicit in names else lookup(explicit, fld)
            if name is None:
                raise DataError(
                    f"column {explicit!r} given for {fld} is not in the file; columns found: "
                    f"{found}",
                    file=file,
                    field=fld,
                )
            picked[fld] = name
            continue
        name = None
        for alias in _ALIASES[fld]:
            name = lookup(alias, fld)
            if name is not None:
                break
        if name is None and fld == "timestamp":
            index_like = [n for n in names if _INDEX_NAME.match(n.strip())]
            name = index_like[0] if index_like else None
        if name is None:
            looked = ", ".join(_ALIASES[fld])
            without = (
                f", or pass {_FLAG[fld]} none for data without volume (read as 0)"
                if fld == "volume"
                else ""
            )
            raise DataError(
                f"no {fld} column (looked for {looked}, case-insensitive); columns found: "
                f"{found}; name it with {_FLAG[fld]} (columns=ColumnMap({fld}=...) from "
                f"Python){without}",
                file=file,
                field=fld,
            )
        picked[fld] = name
    for fld, aliases in _OPTIONAL_ALIASES.items():
        for alias in aliases:
            optional = lookup(alias, fld)
            if optional is not None:
                picked[fld] = optional
                break
    return picked


# --------------------------------------------------------------------------- conversion


def _numpy(arr: pa.ChunkedArray) -> np.ndarray:
    """A column's values as a numpy array.

    ``to_numpy`` goes through pandas (about 0.3 s of imports); a fixed-width column without
    nulls (every timestamp and price column of a valid file) is a read-only view of its
    Arrow buffer instead (the array keeps the buffer alive): no copy, so no fresh memory to
    fault in (about 0.1 s of CPU for the six columns of 1M bars).
    """
    whole = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    dtype = _BUFFER_DTYPES.get(whole.type)
    if dtype is None or whole.null_count:
        return np.asarray(whole.to_numpy(zero_copy_only=False))
    width = np.dtype(dtype).itemsize
    data = whole.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(whole), offset=whole.offset * width)


_BUFFER_DTYPES: dict[pa.DataType, type] = {
    pa.int64(): np.int64,
    pa.float64(): np.float64,
    pa.int32(): np.int32,
    pa.float32(): np.float32,
}


def _as_arrow(col: Any) -> pa.ChunkedArray:
    if isinstance(col, pa.ChunkedArray):
        return col
    if isinstance(col, pa.Array):
        return pa.chunked_array([col])
    return pa.chunked_array([pa.array(col, from_pandas=True)])


def _first_true(mask: np.ndarray) -> tuple[int, int]:
    return int(np.argmax(mask)), int(np.count_nonzero(mask)) - 1


def _more(count: int) -> str:
    return f" (and {count} more row{'s' if count != 1 else ''})" if count else ""


def _to_ns(
    col: Any, time_unit: str | None, *, file: str, field: str, tz: str | None = None
) -> np.ndarray:
    """Convert a timestamp column to UTC int64 ns (naive times read in ``tz``, else UTC)."""
    if tz is None:
        return _utc_ns(col, time_unit, file=file, field=field)
    arr = _as_arrow(col)
    kind = arr.type
    anchored = (
        "epoch numbers"
        if pa.types.is_integer(kind) or pa.types.is_floating(kind)
        else f"a {kind} column"
        if pa.types.is_timestamp(kind) and kind.tz is not None
        else None
    )
    if anchored is None and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        import pandas as pd

        text = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object).astype(str)
        offsets = text.str.contains(_OFFSET).to_numpy()
        if offsets.any():
            marked = int(np.argmax(offsets))
            anchored = f"times with an offset (row {marked}: {text.iloc[marked]!r})"
    if anchored is not None:
        raise ConfigError(
            f"--tz {tz} reads times written without an offset, but column {field!r} of {file} "
            f"holds {anchored}, which are UTC-anchored already; leave --tz out"
        )
    return _localized(_utc_ns(col, time_unit, file=file, field=field), tz, file, field)


#: a time of day followed by its offset: ``Z``, ``+05:30``, ``-0500``
_OFFSET = re.compile(r"\d(?:Z|[+-]\d\d:?\d\d)\s*$", re.IGNORECASE)


def _localized(wall: np.ndarray, tz: str, file: str, field: str) -> np.ndarray:
    """Wall-clock times of ``tz`` (as UTC-read ns) as UTC ns; DST's repeated hour is told
    apart by the order of the bars, a time in the hour it skips is refused by row."""
    import pandas as pd

    zone = _zone(tz)
    index = pd.DatetimeIndex(wall.view("datetime64[ns]"))
    skipped = index.tz_localize(zone, ambiguous=True, nonexistent="NaT").isna()
    if skipped.any():
        row = int(np.argmax(skipped))
        raise DataError(
            f"{index[row]} does not exist in {tz}: daylight saving time skips that hour",
            file=file,
            row=row,
            field=field,
        )
    try:
        local = index.tz_localize(zone, ambiguous="infer")
    except Exception:  # pandas' AmbiguousTimeError (its module moved between versions)
        twice = index.tz_localize(zone, ambiguous="NaT").isna()
        row = int(np.argmax(twice))
        raise DataError(
            f"{index[row]} happens twice in {tz} (the hour daylight saving time repeats) and "
            "the bars' order does not tell which is meant; write such times with their offset",
            file=file,
            row=row,
            field=field,
        ) from None
    return np.asarray(local.asi8, dtype=np.int64)


def _zone(tz: str) -> Any:
    """The IANA time zone ``tz``, or a ConfigError naming the option."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"--tz {tz!r} is not a time zone name (e.g. America/New_York, Europe/London, "
            "Asia/Tokyo)"
        ) from None


def _utc_ns(col: Any, time_unit: str | None, *, file: str, field: str) -> np.ndarray:
    """Convert a timestamp column to UTC int64 ns (naive times are UTC)."""
    arr = _as_arrow(col)
    if arr.null_count:
        mask = _numpy(arr.is_null())
        row, more = _first_true(mask)
        raise DataError("missing timestamp" + _more(more), file=file, row=row, field=field)
    kind = arr.type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if time_unit is not None and not numeric:
        raise ConfigError(
            f"time_unit={time_unit!r} applies to numeric epoch columns, but column {field!r} "
            f"of {file} holds {kind}"
        )
    try:
        if pa.types.is_timestamp(kind):
            # already nanoseconds (the cache's and the bench's files): no conversion at all
            out = arr if kind.unit == "ns" else arr.cast(pa.timestamp("ns", tz=kind.tz))
            # the int64 values read in place (a view; a cast would import pyarrow.compute,
            # about 30 ms of every backtest on such a file)
            ints = pa.chunked_array([c.view(pa.int64()) for c in out.chunks], type=pa.int64())
            return np.asarray(_numpy(ints), dtype=np.int64)
        if pa.types.is_date(kind):
            out = arr.cast(pa.timestamp("ns")).cast(pa.int64())
            return np.asarray(_numpy(out), dtype=np.int64)
    except pa.ArrowInvalid as exc:
        raise DataError(f"timestamps out of range: {exc}", file=file, field=field) from None
    if numeric:
        return _epoch_to_ns(_numpy(arr), time_unit, file=file, field=field)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _parse_time_text(arr.to_numpy(zero_copy_only=False), file=file, field=field)
    raise DataError(f"cannot read a column of type {kind} as timestamps", file=file, field=field)


def _epoch_to_ns(values: np.ndarray, time_unit: str | None, *, file: str, field: str) -> np.ndarray:
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            row, more = _first_true(bad)
            raise DataError(
                "missing or non-finite timestamp" + _more(more), file=file, row=row, field=field
            )
    magnitude = float(np.abs(values).max()) if values.size else 0.0
    if time_unit is None:
        mixed = _mixed_units(values, file)
        if mixed is not None:
            return mixed
        # Seconds up to ~5138 AD are < 1e11, ms < 1e14, us < 1e17; ns beyond.
        thresholds = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
        time_unit = next((u for limit, u in thresholds if magnitude < limit), "ns")
        logger.debug("%s: epoch timestamps read as %s", file, time_unit)
    factor = _NS_PER_UNIT[time_unit]
    if magnitude * factor >= 2.0**63:
        raise DataError(
            f"epoch timestamps in {time_unit} overflow int64 nanoseconds", file=file, field=field
        )
    return _scaled(values, factor)


def _scaled(values: np.ndarray, factor: int) -> np.ndarray:
    """Epoch ``values`` times ``factor`` as int64 ns."""
    if values.dtype.kind == "f":
        # Whole and fractional parts separately: values * factor can exceed 2**53 and lose ns.
        whole = np.floor(values)
        fraction_ns = np.rint((values - whole) * factor).astype(np.int64)
        return np.asarray(whole.astype(np.int64) * factor + fraction_ns, dtype=np.int64)
    return np.asarray(values.astype(np.int64) * factor, dtype=np.int64)


#: the epoch units by magnitude: a time after 2001 in each unit lies in [low, high)
_UNIT_BANDS = (("s", 1e9, 1e11), ("ms", 1e12, 1e14), ("us", 1e15, 1e17), ("ns", 1e18, 2.0**63))


def _mixed_units(values: np.ndarray, file: str) -> np.ndarray | None:
    """Epoch times that change unit partway (Binance's spot files: ms up to 2024, us from
    2025) read each by its own magnitude, with a warning; None when one unit holds them all
    or a value is no time after 2001 in any unit (then the largest value decides)."""
    if values.size == 0:
        return None

    def band_of(value: float) -> int:
        return next((k for k, (_, lo, hi) in enumerate(_UNIT_BANDS) if lo <= value < hi), -1)

    first, last = band_of(float(values.min())), band_of(float(values.max()))
    if first < 0 or first == last:  # one unit (the common case: two comparisons)
        return None
    band = np.full(values.shape, -1, dtype=np.int8)
    for k, (_, low, high) in enumerate(_UNIT_BANDS):
        band[(values >= low) & (values < high)] = k
    used = np.flatnonzero(np.bincount(band + 1, minlength=len(_UNIT_BANDS) + 1)) - 1
    if used[0] < 0:
        return None
    out = np.empty(values.shape, dtype=np.int64)
    spans = []
    for k in used:
        unit = _UNIT_BANDS[int(k)][0]
        at = band == k
        out[at] = _scaled(values[at], _NS_PER_UNIT[unit])
        rows = np.flatnonzero(at)
        spans.append(f"{unit} in {rows.size:,} rows from row {int(rows[0]):,}")
    logger.warning(
        "%s: epoch timestamps change unit (%s); each is read by its magnitude",
        file,
        ", ".join(spans),
    )
    return out


def _parse_time_text(values: np.ndarray, *, file: str, field: str) -> np.ndarray:
    import pandas as pd  # imported lazily: only CSV and text times need it

    text = pd.Series(values, dtype=object)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    if parsed.isna().any():
        # Not all ISO-8601: let pandas infer the format (element-wise fallback if it must),
        # told whether numeric dates put the day or the month first
        dayfirst = _day_first(text, file=file, field=field)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(text, utc=True, errors="coerce", dayfirst=dayfirst)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row, more = _first_true(bad)
        raise DataError(
            f"cannot read {values[row]!r} as a time (expected ISO-8601 such as "
            f"2025-05-20T00:00:00Z, or epoch numbers)" + _more(more),
            file=file,
            row=row,
            field=field,
        )
    try:
        return np.asarray(pd.DatetimeIndex(parsed).as_unit("ns").asi8, dtype=np.int64)
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise DataError(f"timestamps out of range: {exc}", file=file, field=field) from None


_NUMERIC_DATE = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}\b"


def _day_first(text: Any, *, file: str, field: str) -> bool:
    """Whether numeric dates such as ``13/01/2018`` put the day first, judged on the whole
    column: a first number above 12 somewhere means day first, a second number above 12 month
    first. When no number tells (every one up to 12), the reading whose bars are in order
    with the fewest distinct spacings wins (10/01 then 11/01 five minutes apart is a day
    later, not a month); a tie is refused rather than guessed.

    Raises
    ------
    DataError
        When the column's numeric dates are ambiguous or contradict each other.
    """
    parts = text.astype(str).str.extract(_NUMERIC_DATE)
    if parts.empty or parts[0].isna().all():
        return False  # not numeric dates (month names, compact digits...): as pandas reads
    first = parts[0].dropna().astype(int)
    second = parts[1].dropna().astype(int)
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    if day_first and month_first:
        raise DataError(
            "dates mix day/month/year and month/day/year (a first and a second number above "
            "12); write ISO-8601 dates such as 2018-01-13",
            file=file,
            field=field,
        )
    if not (day_first or month_first):
        import pandas as pd

        def read(dayfirst: bool) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                ts = pd.to_datetime(text, utc=True, errors="coerce", dayfirst=dayfirst)
            return np.asarray(ts.dropna().astype("int64"))

        def spacing(ts: np.ndarray) -> tuple[int, int]:
            diffs = np.diff(ts)
            return int(np.count_nonzero(diffs <= 0)), int(np.unique(diffs).size)

        days, months = read(True), read(False)
        if np.array_equal(days, months):  # the day and the month are the same number
            return False
        by_day, by_month = spacing(days), spacing(months)
        if by_day != by_month:
            return by_day < by_month
        sample = text.iloc[int(parts[0].first_valid_index() or 0)]
        raise DataError(
            f"dates such as {sample!r} may be day/month or month/day and no date in the file "
            "tells which; write ISO-8601 dates such as 2018-01-13",
            file=file,
            field=field,
        )
    return day_first


def _to_float(col: Any, *, file: str, field: str) -> np.ndarray:
    """Convert a numeric column to float64 (nulls become NaN, caught by validation)."""
    arr = _as_arrow(col)
    kind = arr.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        if kind != pa.float64():
            arr = arr.cast(pa.float64(), safe=False)
        return np.asarray(_numpy(arr), dtype=np.float64)
    if pa.types.is_null(kind):
        return np.full(len(arr), np.nan)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        import pandas as pd  # imported lazily: only text numbers need it

        text = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)
        number = pd.to_numeric(text, errors="coerce")
        blank = text.isna() | (text.astype(str).str.strip() == "")
        bad = (number.isna() & ~blank).to_numpy()
        if bad.any():
            row, more = _first_true(bad)
            raise DataError(
                f"cannot read {text.iloc[row]!r} as a number" + _more(more),
                file=file,
                row=row,
                field=field,
            )
        return np.asarray(number.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    raise DataError(f"cannot read a column of type {kind} as numbers", file=file, field=field)


# --------------------------------------------------------------------------- unvalidated read


@dataclass(frozen=True)
class RawOhlcv:
    """OHLCV columns exactly as a file holds them: file order, no checks (quality reports).

    ``synthetic`` is the boolean column of bars filled by the gap policy, when present;
    ``file_rows`` the file's data row (0-based) of each row when they differ (a newest-first
    file is read oldest first), so findings name the file's rows; ``has_volume`` is False for
    data read without volume (``--volume-col none``: a volume of 0 that is no finding).
    """

    source: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    synthetic: np.ndarray | None = None
    file_rows: np.ndarray | None = None
    has_volume: bool = True


def read_unvalidated(
    path: str | Path,
    *,
    columns: ColumnMap | None = None,
    time_unit: str | None = None,
    layout: CsvLayout | None = None,
    tz: str | None = None,
) -> RawOhlcv:
    """Read the OHLCV columns of a file without validating them (internal: ``data check``).

    Unlike :func:`load_ohlcv` this keeps unsorted rows, duplicates, NaN and OHLC violations so
    a quality report can count them. Unreadable files and unreadable timestamps still raise.

    Raises
    ------
    DataError
        If the file is missing, unreadable, lacks a column, or holds unreadable timestamps.
    """
    file = str(path)
    p = Path(path)
    fmt = _format_of(p, file)
    if not p.is_file():
        raise DataError("file not found", file=file)
    picked, raw = _read_columns(p, fmt, columns, file, layout)
    if len(raw["timestamp"]) == 0:
        raise DataError("file has no data rows", file=file)
    ts = _to_ns(raw["timestamp"], time_unit, file=file, field=picked["timestamp"], tz=tz)
    values = _with_volume(
        {
            name: _to_float(raw[name], file=file, field=picked[name])
            for name in ("open", "high", "low", "close", "volume")
            if name in raw
        },
        ts.shape[0],
    )
    file_rows = None
    if _newest_first(ts):  # a file stored newest first is sorted, as load_ohlcv does
        ts = ts[::-1].copy()
        values = {k: v[::-1].copy() for k, v in values.items()}
        file_rows = np.arange(ts.shape[0] - 1, -1, -1, dtype=np.int64)
        logger.warning(
            "%s: rows are stored newest first; checked oldest first (rows named as in the file)",
            file,
            extra={"file": file},
        )
    synthetic = None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            if "synthetic" in pq.read_schema(p).names:
                col = pq.read_table(p, columns=["synthetic"]).column("synthetic")
                synthetic = np.asarray(col.fill_null(False).to_numpy(), dtype=bool)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read parquet file: {exc}", file=file) from exc
    has_volume = "volume" in raw
    return RawOhlcv(
        file, ts, synthetic=synthetic, file_rows=file_rows, has_volume=has_volume, **values
    )
