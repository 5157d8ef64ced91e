"""Writing a cache entry so that readers never see half of it and concurrent writers of the same entry both succeed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def store_atomically(path: Path, save: Callable[[str], object]) -> None:
    """Have `save` write a file of this call's own beside `path`, then rename it to `path`.

    Two processes (a bench and a trainer sharing the cache) may compute the same entry at once: each writes its own
    file and the last rename wins, with the same content. A shared ".partial" name made the loser's rename fail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=f".partial{path.suffix}")
    os.close(descriptor)
    try:
        save(partial)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
