"""Cache entries are renamed into place from a file of each writer's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.calibration.cache_files import store_atomically


def test_two_writers_of_the_same_entry_both_succeed(tmp_path: Path) -> None:
    """The second writer finishes while the first is still writing (two bench runs sharing a cache did this): with
    a shared partial name, the first writer's rename found its file gone."""
    entry = tmp_path / "cache" / "key-composite.npz"

    def first(partial: str) -> None:
        Path(partial).write_text("first")
        store_atomically(entry, lambda other: Path(other).write_text("second"))
        assert entry.read_text() == "second"

    store_atomically(entry, first)
    assert entry.read_text() == "first"
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]


def test_a_failed_write_leaves_neither_the_entry_nor_its_partial(tmp_path: Path) -> None:
    entry = tmp_path / "key.json"

    def broken(partial: str) -> None:
        Path(partial).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store_atomically(entry, broken)
    assert list(tmp_path.iterdir()) == []
