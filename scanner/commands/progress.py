"""Progress bars on stderr for the CLI; silent when stderr is not a terminal or with --quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from scanner.detectors.interface import Progress


@contextmanager
def progress_bar(description: str, *, quiet: bool = False) -> Iterator[Progress]:
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
