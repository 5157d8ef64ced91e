"""Which files a scan target names: one file, or every model file under a directory."""

from __future__ import annotations

import os
from pathlib import Path

from scanner.intake.errors import ModelNotFound, shown
from scanner.intake.formats import (
    ONNX_SUFFIXES,
    PICKLE_SUFFIXES,
    SNIFFED_SUFFIXES,
    FileFormat,
    sniff,
)


def find_model_files(target: Path) -> list[Path]:
    """A file -> [it]; a directory -> its model files, recursively, sorted.

    Pickle-format files (.pt, .pth, .pkl, ...) are listed too, so that they are refused loudly instead of
    skipped silently; a `.bin`, `.npy`, `.h5` or `.safetensors` is listed when its content is a pickle or a torch
    checkpoint (not raw tensor data, a NumPy array of numbers, or a real HDF5 or safetensors file).
    Symlinked directories are not followed, so a scan cannot wander out of the tree or loop.
    """
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise ModelNotFound(f"{shown(target)} does not exist or is neither a file nor a directory")
    found = []
    for directory, subdirectories, files in os.walk(target, followlinks=False):
        subdirectories.sort()
        for file_name in files:
            path = Path(directory) / file_name
            if is_model_file(path):
                found.append(path)
    return sorted(found)


def is_model_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES or suffix in PICKLE_SUFFIXES:
        return path.is_file()
    if suffix in SNIFFED_SUFFIXES and path.is_file():
        if not path.resolve().is_relative_to(path.parent.resolve()):
            return False  # a link out of its directory is never read, and only its content could make it a model
        try:
            return sniff(path) in (FileFormat.PICKLE, FileFormat.TORCH_ZIP)
        except OSError:
            return True  # unreadable: let the intake say so
    return False
