"""Vectorized checks of OHLCV columns; each failure is a :class:`DataError` naming file/row/field.

Every check builds one boolean mask over all rows (no Python loop over rows), reports the FIRST
offending row and says how many more rows break the same rule.
"""

from __future__ import annotations

import numpy as np

from tradeloop.core.errors import DataError

__all__ = ["count_time_order_problems", "validate_ohlcv", "validate_timestamps"]

_PRICE_FIELDS = ("open", "high", "low", "close")


def _raise_first(mask: np.ndarray, message: str, *, file: str, field: str, offset: int = 0) -> None:
    """Raise a DataError at the first True of ``mask`` (row = index + ``offset``), if any."""
    if not mask.any():
        return
    first = int(np.argmax(mask))
    more = int(np.count_nonzero(mask)) - 1
    suffix = f" (and {more} more row{'s' if more != 1 else ''})" if more else ""
    raise DataError(message + suffix, file=file, row=first + offset, field=field)


def count_time_order_problems(ts: np.ndarray) -> tuple[int, int]:
    """Return ``(backward_steps, duplicate_steps)`` of consecutive timestamps.

    ``backward_steps`` counts rows whose time is earlier than the previous row's;
    ``duplicate_steps`` counts rows whose time equals the previous row's.

    >>> count_time_order_problems(np.array([1, 3, 2, 2, 5]))
    (1, 1)
    """
    step = np.diff(np.asarray(ts, dtype=np.int64))
    return int(np.count_nonzero(step < 0)), int(np.count_nonzero(step == 0))


def validate_timestamps(ts: np.ndarray, *, file: str, field: str = "timestamp") -> None:
    """Check that int64 ns timestamps are strictly increasing.

    Parameters
    ----------
    ts
        Bar open times, UTC ns, in file order.
    file
        Source name used in error messages.
    field
        Name of the timestamp column in the source.

    Raises
    ------
    DataError
        At the first row whose time goes backwards (unsorted) or repeats the previous row's
        time (duplicate), with the number of further rows of the same kind.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape[0] < 2:
        return
    step = np.diff(ts)
    # Row i+1 is the offending row for step i, hence offset=1.
    _raise_first(
        step < 0,
        "timestamp is earlier than the previous row's: data is not sorted by time "
        "(--repair sorts the rows; repair=True from Python)",
        file=file,
        field=field,
        offset=1,
    )
    _raise_first(
        step == 0,
        "duplicate timestamp, same as the previous row "
        "(--repair drops duplicates, keeping the first; repair=True from Python)",
        file=file,
        field=field,
        offset=1,
    )


def validate_ohlcv(
    ts: np.ndarray | None,
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    *,
    file: str,
    names: dict[str, str] | None = None,
    check_ohlc: bool = True,
) -> None:
    """Check OHLCV columns for the rules every bar must satisfy.

    Checks run in this order, and the first rule that is broken raises:
    timestamps sorted and unique (skipped when ``ts`` is None), no NaN/inf in any of
    open/high/low/close/volume, prices > 0, ``high >= max(open, close)``,
    ``low <= min(open, close)`` (together these imply ``high >= low``), ``volume >= 0``.

    Parameters
    ----------
    ts
        Bar open times as int64 UTC ns, or None to skip the time-order checks.
    open, high, low, close, volume
        float64 columns of equal length, in file order (row numbers in errors are indexes
        into these arrays).
    file
        Source name used in error messages.
    names
        Optional map from canonical field (``"open"``, ``"timestamp"``...) to the column name
        in the source, so errors name the column the user sees.
    check_ohlc
        Check the high/low against open/close (False: only NaN, positivity, volume and time
        order are checked; the data gate reports the rest).

    Raises
    ------
    DataError
        Naming the file, the first offending 0-based data row and the field, with the count of
        further rows breaking the same rule.

    Examples
    --------
    >>> validate_ohlcv(None, np.array([1.0]), np.array([2.0]), np.array([0.5]),
    ...                np.array([1.5]), np.array([10.0]), file="x.csv")
    """
    names = names or {}

    def col(field: str) -> str:
        return names.get(field, field)

    if ts is not None:
        validate_timestamps(ts, file=file, field=col("timestamp"))
    arrays = {
        "open": np.asarray(open, dtype=np.float64),
        "high": np.asarray(high, dtype=np.float64),
        "low": np.asarray(low, dtype=np.float64),
        "close": np.asarray(close, dtype=np.float64),
        "volume": np.asarray(volume, dtype=np.float64),
    }
    lengths = {a.shape[0] for a in arrays.values()}
    if ts is not None:
        lengths.add(np.asarray(ts).shape[0])
    if len(lengths) != 1:
        raise DataError(f"OHLCV columns have different lengths {sorted(lengths)}", file=file)

    for field, values in arrays.items():
        _raise_first(
            ~np.isfinite(values),
            "missing, NaN or infinite value",
            file=file,
            field=col(field),
        )
    for field in _PRICE_FIELDS:
        values = arrays[field]
        bad = values <= 0.0
        if bad.any():
            _raise_first(
                bad,
                f"price {float(values[np.argmax(bad)])!r} is not positive",
                file=file,
                field=col(field),
            )
    o, h, lo, c = arrays["open"], arrays["high"], arrays["low"], arrays["close"]
    body_top = np.maximum(o, c)
    bad = h < body_top if check_ohlc else np.zeros(0, dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        _raise_first(
            bad,
            f"high {float(h[i])!r} is below max(open, close) {float(body_top[i])!r}",
            file=file,
            field=col("high"),
        )
    body_bottom = np.minimum(o, c)
    bad = lo > body_bottom if check_ohlc else np.zeros(0, dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        _raise_first(
            bad,
            f"low {float(lo[i])!r} is above min(open, close) {float(body_bottom[i])!r}",
            file=file,
            field=col("low"),
        )
    v = arrays["volume"]
    bad = v < 0.0
    if bad.any():
        _raise_first(
            bad, f"volume {float(v[np.argmax(bad)])!r} is negative", file=file, field=col("volume")
        )
