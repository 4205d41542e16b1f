"""Half-open time intervals ``[start, end)`` in UTC ns: which part of a range a cache holds.

A cache records the intervals it has fetched completely (gaps the exchange never filled are
inside them), so a later fetch asks only for the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

__all__ = ["Interval", "coverage_from_json", "coverage_to_json", "merge", "subtract", "total"]

Interval = tuple[int, int]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Return the union of ``intervals`` as sorted, disjoint, non-touching intervals.

    Empty intervals are dropped; touching ones are joined.

    >>> merge([(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)])
    [(0, 3), (5, 9)]
    """
    out: list[Interval] = []
    for start, end in sorted((int(s), int(e)) for s, e in intervals if e > s):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(wanted: Interval, have: Iterable[Interval]) -> list[Interval]:
    """Return the parts of ``wanted`` not covered by ``have``.

    >>> subtract((0, 10), [(2, 4), (6, 8)])
    [(0, 2), (4, 6), (8, 10)]
    >>> subtract((0, 10), [(0, 10)])
    []
    """
    start, end = wanted
    missing: list[Interval] = []
    cursor = start
    for s, e in merge(have):
        if e <= cursor:
            continue
        if s >= end:
            break
        if s > cursor:
            missing.append((cursor, min(s, end)))
        cursor = max(cursor, e)
        if cursor >= end:
            break
    if cursor < end:
        missing.append((cursor, end))
    return missing


def total(intervals: Iterable[Interval]) -> int:
    """Return the summed length of ``intervals`` after merging.

    >>> total([(0, 2), (1, 4), (10, 11)])
    5
    """
    return sum(e - s for s, e in merge(intervals))


def coverage_to_json(intervals: Iterable[Interval]) -> str:
    """Serialize intervals for Parquet metadata.

    >>> coverage_to_json([(0, 5)])
    '[[0, 5]]'
    """
    return json.dumps([[s, e] for s, e in merge(intervals)])


def coverage_from_json(text: str | bytes | None) -> list[Interval]:
    """Parse :func:`coverage_to_json` output (None or empty gives no intervals).

    >>> coverage_from_json(b'[[0, 5], [5, 7]]')
    [(0, 7)]
    """
    if not text:
        return []
    raw = json.loads(text)
    return merge((int(s), int(e)) for s, e in raw)
