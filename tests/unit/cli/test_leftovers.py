"""A failed command takes back what it created, and nothing that was there before."""

from __future__ import annotations

from pathlib import Path

from tradeloop.cli.leftovers import NewPaths


def test_new_paths_removes_only_what_did_not_exist(tmp_path: Path) -> None:
    # Arrange: an existing folder with a file, and a journal two new folders deep
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("x")
    journal = kept / "a" / "b" / "j.duckdb"
    made = NewPaths(journal, kept / "mine.txt")
    journal.parent.mkdir(parents=True)
    journal.write_text("db")
    journal.with_name("j.duckdb.wal").write_text("wal")
    # Act
    made.remove()
    # Assert
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]
    assert (kept / "mine.txt").read_text() == "x"


def test_new_paths_keeps_a_new_folder_that_holds_something_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    made = NewPaths(out / "study.db")
    out.mkdir()
    (out / "other.csv").write_text("y")
    made.remove()
    assert (out / "other.csv").exists()
