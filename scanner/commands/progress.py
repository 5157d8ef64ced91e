"""Progress bars on stderr for the CLI; silent with --quiet, and when stderr is not a terminal (or a line per step,
for long jobs whose steps are few: `lines=True`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from scanner.findings import Progress, no_progress


@contextmanager
def progress_bar(
    description: str, *, quiet: bool = False, unit: str = "step", position: int = 0, lines: bool = False
) -> Iterator[Progress]:
    """A Progress callback drawing a bar on stderr; `position` stacks bars (0: top). With `lines`, when stderr is not
    a terminal (a log, CI), one line per step done instead of nothing."""
    if quiet:
        yield no_progress
        return
    if not sys.stderr.isatty():
        yield _line_per_step(description, unit) if lines else no_progress
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


def _line_per_step(description: str, unit: str) -> Progress:
    said: list[tuple[int, int]] = []

    def update(done: int, total: int) -> None:
        if done and (not said or said[-1] != (done, total)):
            print(f"{description}: {done}/{total} {unit}s", file=sys.stderr, flush=True)
            said.append((done, total))

    return update
