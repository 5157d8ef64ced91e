"""External tensor data: check that every reference stays inside the model's own directory, then inline it.

After `inline_external_data` the model is self-contained, so nothing downstream ever reads a file on its behalf.
Only regular files under the model's directory are read; absolute paths, `..` and symlinks leading out are refused.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from scanner.intake.errors import (
    ExternalDataMissing,
    ExternalDataOutside,
    FileTooLarge,
    PickleRefused,
    UnrecognizedFile,
    shown,
)
from scanner.intake.files import open_checked
from scanner.intake.inspection import Unverifiable, pickle_inside
from scanner.intake.tensors import tensors_of

if TYPE_CHECKING:
    import onnx


def inline_external_data(model: onnx.ModelProto, model_dir: Path, name: str, byte_budget: int) -> int:
    """Replace every external tensor reference by its bytes; returns how many tensors were inlined."""
    import onnx

    root = model_dir.resolve()
    inlined = tensors = 0
    looked_through: set[Path] = set()
    for tensor in tensors_of(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        path = checked_location(entries.get("location", ""), root, name)
        offset, length = _extent(entries, path, name)
        inlined += length
        if inlined > byte_budget:
            raise FileTooLarge(f"{name} with its external data is larger than the intake limit")
        if path not in looked_through:
            _refuse_hidden_pickle(path, name)
            looked_through.add(path)
        with open_checked(path) as stream:
            links = os.fstat(stream.fileno()).st_nlink
            if links > 1:
                # A hard link is the same file as another name, which may be anywhere on the file system.
                raise ExternalDataOutside(
                    f"{name} references external data '{shown(path.name)}', which has {links} hard links:"
                    " it may be a file outside its directory"
                )
            stream.seek(offset)
            data = stream.read(length)
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        tensors += 1
    return tensors


def _refuse_hidden_pickle(path: Path, name: str) -> None:
    try:
        where = pickle_inside(path)
    except Unverifiable as error:
        raise UnrecognizedFile(f"{name}'s external data '{shown(path.name)}' {error}") from None
    if where is not None:
        raise PickleRefused(
            f"{name}'s external data '{shown(path.name)}' holds a Python pickle {where}, refused unopened"
        )


def checked_location(location: str, root: Path, name: str) -> Path:
    """The file an external data `location` names, if and only if it is a regular file inside `root`."""
    if not location or "\x00" in location:
        raise ExternalDataOutside(f"{name} references external data without a valid file name")
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() or location[0] in "/\\":
        raise ExternalDataOutside(f"{name} references external data by absolute path '{shown(location)}'")
    if ".." in PureWindowsPath(location).parts:  # splits on both / and \
        raise ExternalDataOutside(f"{name} references external data outside its directory: '{shown(location)}'")
    resolved = (root / location).resolve()
    if not resolved.is_relative_to(root):
        raise ExternalDataOutside(
            f"{name} references external data '{shown(location)}', which leads out of its directory"
        )
    if not resolved.is_file():
        raise ExternalDataMissing(f"{name} references external data '{shown(location)}', which is missing")
    return resolved


def _extent(entries: dict[str, str], path: Path, name: str) -> tuple[int, int]:
    size = path.stat().st_size
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else size - offset
    except ValueError as error:
        raise ExternalDataMissing(f"{name} has an external data reference with a bad offset or length") from error
    if offset < 0 or length < 0 or offset + length > size:
        raise ExternalDataMissing(
            f"{name} references bytes {offset}..{offset + length} of '{shown(path.name)}', which has only {size} bytes"
        )
    return offset, length
