"""The digest of a model version's files: what binds a verdict to the bytes it was made on.

`scan.sha256` names the ONNX file the detectors read; a model version is more than that file (its MLmodel says which
file is the model and how MLflow loads it; external data holds weights). The scanner tags `scan.files` with this
digest of every file under the version's artifact location, and the gate recomputes it at each promotion: a version
whose files changed since its scan is judged as never scanned.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def files_digest(folder: Path) -> str:
    """sha256 over the sorted list of `<sha256 of file>  <path relative to folder>` lines of every regular file."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    lines = [f"{sha256_of(path)}  {path.relative_to(folder).as_posix()}\n" for path in files]
    return hashlib.sha256("".join(sorted(lines, key=lambda line: line[66:])).encode("utf-8")).hexdigest()
