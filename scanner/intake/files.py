"""Opening files the intake has already checked, without following a symlink swapped in after the check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


def open_checked(resolved: Path) -> BinaryIO:
    """Open `resolved` (a path with every symlink already resolved) for reading, refusing to follow a symlink.

    Between the check of where a path leads and the read, the file could be replaced by a link elsewhere;
    O_NOFOLLOW makes that read fail (ELOOP, an OSError) instead of following it.
    """
    return os.fdopen(os.open(resolved, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
