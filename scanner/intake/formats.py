"""Recognise what a file is from its name and content, without ever deserialising it.

Pickles (and PyTorch checkpoints, which are pickles, raw or inside a zip archive) are recognised so they can be
refused with a clear reason: unpickling runs whatever code the file names, so the scanner never does it.
"""

from __future__ import annotations

import enum
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from scanner.intake.files import open_checked
from scanner.intake.pickles import runs_as_pickle, starts_with_pickle

ONNX_SUFFIXES = frozenset({".onnx"})
# Always pickles by convention (torch.save, pickle.dump, joblib, Lightning checkpoints).
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})
# Listed in a directory scan only when their content is a pickle: Hugging Face's pytorch_model.bin is a torch zip,
# other .bin files (raw external tensor data) are not models; a NumPy file can hold a pickle (an object array), and
# a pickle renamed to .safetensors or .h5 still runs its code in whatever loads it with pickle.
SNIFFED_SUFFIXES = frozenset({".bin", ".npy", ".h5", ".hdf5", ".safetensors"})

SNIFF_BYTES = 256
_ZIP_MAGIC = b"PK\x03\x04"
_NUMPY_MAGIC = b"\x93NUMPY"


class FileFormat(str, enum.Enum):
    PICKLE = "pickle"
    TORCH_ZIP = "torch_zip"
    ZIP = "zip"
    OTHER = "other"


def sniff(path: Path) -> FileFormat:
    """What the file's content says it is: a zip's member names are read, never its members; a pickle's opcodes are
    read, never run. A NumPy file is judged by its array data, where an object array keeps its pickle."""
    with open_checked(path.resolve()) as stream:
        head = stream.read(SNIFF_BYTES)
        if head.startswith(_ZIP_MAGIC):
            return FileFormat.TORCH_ZIP if _zip_holds_pickle(stream) else FileFormat.ZIP
        start = numpy_data_offset(head) if head.startswith(_NUMPY_MAGIC) else 0
        return FileFormat.PICKLE if _pickle_at(stream, start) else FileFormat.OTHER


def _pickle_at(stream: BinaryIO, offset: int) -> bool:
    stream.seek(offset)
    if starts_with_pickle(stream.read(SNIFF_BYTES)):
        return True
    stream.seek(offset)
    return runs_as_pickle(stream)


def numpy_data_offset(head: bytes) -> int:
    """Where a .npy file's array data starts: an object array is stored there as a pickle."""
    major = head[len(_NUMPY_MAGIC)] if len(head) > len(_NUMPY_MAGIC) else 0
    length_format = "<H" if major == 1 else "<I"
    fields = len(_NUMPY_MAGIC) + 2
    encoded = head[fields : fields + struct.calcsize(length_format)]
    if len(encoded) < struct.calcsize(length_format):
        return 0
    (header_length,) = struct.unpack(length_format, encoded)
    return int(fields + len(encoded) + header_length)


def _zip_holds_pickle(stream: BinaryIO) -> bool:
    try:
        with zipfile.ZipFile(stream) as archive:
            return any(name.endswith((".pkl", ".pickle")) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def describe(fmt: FileFormat, suffix: str) -> str:
    if fmt is FileFormat.TORCH_ZIP:
        return "a PyTorch checkpoint (torch.save zip archive holding a pickle)"
    if fmt is FileFormat.PICKLE:
        return "a Python pickle (raw torch.save / pickle.dump format, or a NumPy object array)"
    return f"a pickle-format file by its '{suffix}' extension"
