"""Recognise what a file is from its name and first bytes, without ever deserialising it.

Pickles (and PyTorch checkpoints, which are pickles, raw or inside a zip archive) are recognised so they can be
refused with a clear reason: unpickling runs whatever code the file names, so the scanner never does it.
"""

from __future__ import annotations

import enum
import pickletools
import zipfile
from pathlib import Path

from scanner.intake.files import open_checked

ONNX_SUFFIXES = frozenset({".onnx"})
# Always pickles by convention (torch.save, pickle.dump, joblib, Lightning checkpoints).
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})
# Hugging Face's pytorch_model.bin is a torch zip; other .bin files (raw external tensor data) are not models.
SNIFFED_SUFFIXES = frozenset({".bin"})

SNIFF_BYTES = 256
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


class FileFormat(str, enum.Enum):
    PICKLE = "pickle"
    TORCH_ZIP = "torch_zip"
    ZIP = "zip"
    OTHER = "other"


def read_head(path: Path) -> bytes:
    with open_checked(path.resolve()) as stream:
        return stream.read(SNIFF_BYTES)


def sniff(path: Path, head: bytes) -> FileFormat:
    """What the file's first bytes say it is; a zip's member names are read, never its members."""
    if head.startswith(_ZIP_MAGIC):
        return FileFormat.TORCH_ZIP if _zip_holds_pickle(path) else FileFormat.ZIP
    if looks_like_pickle(head):
        return FileFormat.PICKLE
    return FileFormat.OTHER


def looks_like_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 or later: the PROTO opcode, then opcodes that disassemble (never run) cleanly."""
    if len(head) < 2 or head[0] != _PICKLE_PROTO or not 2 <= head[1] <= 5:
        return False
    opcodes = 0
    try:
        for _ in pickletools.genops(head):
            opcodes += 1
    except ValueError:
        pass  # the head ends mid-opcode: what was read so far decides
    return opcodes >= 3


def _zip_holds_pickle(path: Path) -> bool:
    try:
        with open_checked(path.resolve()) as stream, zipfile.ZipFile(stream) as archive:
            return any(name.endswith((".pkl", ".pickle")) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def describe(fmt: FileFormat, suffix: str) -> str:
    if fmt is FileFormat.TORCH_ZIP:
        return "a PyTorch checkpoint (torch.save zip archive holding a pickle)"
    if fmt is FileFormat.PICKLE:
        return "a Python pickle (raw torch.save / pickle.dump format)"
    return f"a pickle-format file by its '{suffix}' extension"
