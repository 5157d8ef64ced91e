"""Which files a scan target names: one file, or every file under a directory, each a model or accounted for."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import IntakeError
from scanner.intake.errors import ModelNotFound, PickleRefused, SymlinkOutside, Unreadable, UnrecognizedFile, shown
from scanner.intake.files import open_checked
from scanner.intake.formats import (
    ONNX_SUFFIXES,
    PICKLE_SUFFIXES,
    SNIFFED_SUFFIXES,
    FileFormat,
    sniff,
)
from scanner.intake.inspection import Unverifiable, harmless_kind, pickle_inside, refusal_reason
from scanner.intake.limits import PROTOBUF_LIMIT_BYTES


@dataclass(frozen=True)
class RefusedFile:
    """A file in a scanned folder that is refused without being loaded: what it is says it must not pass."""

    path: Path
    error: IntakeError


def find_model_files(target: Path, *, allow_files: Sequence[str] = ()) -> list[Path | RefusedFile]:
    """A file -> [it]; a directory -> its model files, recursively, and a refusal for every other file in it that is
    not accounted for, sorted by path.

    Pickle-format files (.pt, .pth, .pkl, ...) are listed as models, so that the intake refuses them loudly; so is a
    `.bin`, `.npy`, `.h5` or `.safetensors` whose content is a pickle or a torch checkpoint. Every other file must be
    an ONNX model's external data, or verifiably no model (text that parses as its name says, an image, numeric
    arrays, an empty file), or match one of `allow_files` (globs on its path relative to `target`); and none may hold
    a pickle anywhere, compressed or in a zip archive, allowed or not. Symlinked directories are not followed, so a
    scan cannot wander out of the tree or loop.
    """
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise ModelNotFound(f"{shown(target)} does not exist or is neither a file nor a directory")
    models: list[Path] = []
    others: list[Path] = []
    for directory, subdirectories, files in os.walk(target, followlinks=False):
        subdirectories.sort()
        for file_name in files:
            path = Path(directory) / file_name
            (models if is_model_file(path) else others).append(path)
    root = target.resolve()
    accounted = _model_parts(models)
    found: list[Path | RefusedFile] = list(models)
    for path in others:
        relative = path.relative_to(target).as_posix()
        refusal = _refusal(path, relative, root, accounted, allow_files)
        if refusal is not None:
            found.append(RefusedFile(path, refusal))
    return sorted(found, key=lambda entry: entry if isinstance(entry, Path) else entry.path)


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


def _refusal(
    path: Path, relative: str, root: Path, accounted: set[Path], allow_files: Sequence[str]
) -> IntakeError | None:
    name = shown(relative)
    if not path.is_file():
        return None  # a socket, a FIFO, a dangling link: nothing a loader reads as a model
    real = path.resolve()
    if not real.is_relative_to(root):
        return SymlinkOutside(f"{name} is a symlink to {shown(real)}, outside the folder being scanned")
    if real in accounted:
        return None  # a model or its external data: the intake searches it for pickles when it reads it
    try:
        where = pickle_inside(real)
        if where is not None:
            return PickleRefused(f"{name} holds a Python pickle {where}, refused unopened")
        if any(fnmatch.fnmatchcase(relative, glob) for glob in allow_files):
            return None
        if harmless_kind(real) is not None:
            return None
        return UnrecognizedFile(f"{name} is {refusal_reason(real)}")
    except Unverifiable as error:
        return UnrecognizedFile(f"{name} {error}")
    except OSError as error:
        return Unreadable(f"{name} could not be read: {shown(error.strerror)}")


def _model_parts(models: Iterable[Path]) -> set[Path]:
    """The files ONNX models in the folder stand for: their external data, and what a symlinked model leads to
    (the intake judges whether a model may read them; here they only need no second look)."""
    parts: set[Path] = set()
    for model in models:
        if model.suffix.lower() not in ONNX_SUFFIXES:
            continue
        real = model.resolve()
        parts.add(real)
        parts.update(_external_data_of(real))
    return parts


def _external_data_of(model: Path) -> set[Path]:
    import onnx
    from google.protobuf.message import DecodeError

    from scanner.intake.tensors import tensors_of

    try:
        with open_checked(model) as stream:
            data = stream.read(PROTOBUF_LIMIT_BYTES + 1)
        if len(data) > PROTOBUF_LIMIT_BYTES:
            return set()
        proto = onnx.ModelProto()
        proto.ParseFromString(data)
    except (OSError, DecodeError, ValueError, RuntimeError):
        return set()  # the intake says what is wrong with the model
    found = set()
    for tensor in tensors_of(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        if location and "\x00" not in location:
            try:
                found.add((model.parent / location).resolve())
            except (OSError, ValueError, RuntimeError):
                continue
    return found
