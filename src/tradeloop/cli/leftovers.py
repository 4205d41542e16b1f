"""Files and folders a command creates, taken back when it fails before writing anything."""

from __future__ import annotations

from pathlib import Path

__all__ = ["NewPaths"]


class NewPaths:
    """The paths among ``paths`` (and their parent folders) that do not exist yet.

    :meth:`remove` deletes them again, deepest first: a file (with a DuckDB ``.wal`` or a
    SQLite ``-journal`` beside it) and each folder left empty. Paths that existed before are
    never touched, nor a new folder that holds anything else.
    """

    def __init__(self, *paths: Path) -> None:
        seen: dict[Path, None] = {}
        for path in paths:
            for p in (*reversed(path.parents), path):
                if not p.exists():
                    seen[p] = None
        self.paths = list(seen)

    def remove(self) -> None:
        """Delete the paths created since, deepest first (empty folders only)."""
        for path in sorted(self.paths, key=lambda p: len(p.parts), reverse=True):
            for leftover in (path, path.with_name(path.name + ".wal"),
                             path.with_name(path.name + "-journal")):  # fmt: skip
                if leftover.is_file():
                    leftover.unlink()
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
