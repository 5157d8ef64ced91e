"""Progress bars on stderr for the CLI; silent when stderr is not a terminal or with --quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from scanner.findings import Progress, no_progress


@contextmanager
def progress_bar(description: str, *, quiet: bool = False, unit: str = "step", position: int = 0) -> Iterator[Progress]:
    """A Progress callback drawing a bar on stderr; `position` stacks bars (0: top)."""
    if quiet or not sys.stderr.isatty():
        yield no_progress
        return
    from tqdm import tqdm

    bar = tqdm(desc=description, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True, position=position)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
