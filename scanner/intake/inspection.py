"""Look through a file for what a scan must refuse: a pickle anywhere in it, inside compression or in a zip archive,
and tell the files that are verifiably not models (text that parses as its name says, images, numeric arrays).

Nothing is deserialised: pickles are only read as opcodes, zip members and compressed data only decompressed (with a
bound on the bytes), text only parsed, images only opened for their header.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import lzma
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

from scanner.intake.files import open_checked
from scanner.intake.formats import numpy_data_offset
from scanner.intake.pickles import SearchTooCostly, find_pickle_stream

# Compressed data and compressed zip members are decompressed into memory up to this many bytes, all of one file's
# together; stored (uncompressed) zip members are read in place, however large.
MAX_DECOMPRESSED_BYTES = 256 * 2**20
# Archives in archives (or compressed data in them) are looked into this deep.
MAX_NESTING = 3
MAX_ZIP_MEMBERS = 10_000
# Text whose format is parsed whole (JSON, YAML) is read up to this size; plain text is only decoded, in chunks.
MAX_PARSED_TEXT_BYTES = 16 * 2**20

_NUMPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_COMPRESSIONS: dict[bytes, tuple[str, Callable[[BinaryIO], Any]]] = {
    b"\x1f\x8b": ("gzip", lambda stream: gzip.GzipFile(fileobj=stream)),
    b"BZh": ("bz2", bz2.BZ2File),
    b"\xfd7zXZ\x00": ("xz", lzma.LZMAFile),
}
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".bmp": "BMP", ".webp": "WEBP"}
_PLAIN_TEXT_SUFFIXES = frozenset({".txt", ".md", ".csv"})
_PARSED_TEXT_SUFFIXES = frozenset({".json", ".yaml", ".yml"})


class Unverifiable(Exception):
    """The file could not be looked through within the bounds: it is refused, since it could hide a pickle."""


def pickle_inside(path: Path) -> str | None:
    """Where in the file at `path` (already resolved) a pickle sits, in words ('at byte 512', 'in its zip member
    data.pkl'), or None. Raises Unverifiable where the bounds stop the search, OSError where the file cannot be read."""
    with open_checked(path) as stream:
        return _pickle_in(stream, depth=0, budget=[MAX_DECOMPRESSED_BYTES])


def _pickle_in(stream: BinaryIO, *, depth: int, budget: list[int]) -> str | None:
    stream.seek(0)
    head = stream.read(16)
    starts = [0]
    if head.startswith(_NUMPY_MAGIC):
        starts.append(numpy_data_offset(head))  # an object array's pickle starts after the header
    try:
        at = find_pickle_stream(stream, starts)
    except SearchTooCostly:
        raise Unverifiable("holds too many pickle-like opcode runs to look through") from None
    if at is not None:
        return "from its first byte" if at == 0 else f"at byte {at}"
    for magic, (kind, opener) in _COMPRESSIONS.items():
        if head.startswith(magic):
            stream.seek(0)
            inner = _bounded(opener(stream), f"its {kind} data", budget)
            where = _nested(inner, depth, budget)
            return None if where is None else f"inside its {kind} compression ({where})"
    stream.seek(0)
    if zipfile.is_zipfile(stream):
        return _pickle_in_zip(stream, depth, budget)
    return None


def _nested(stream: BinaryIO, depth: int, budget: list[int]) -> str | None:
    if depth + 1 > MAX_NESTING:
        raise Unverifiable(f"nests archives or compression more than {MAX_NESTING} deep")
    return _pickle_in(stream, depth=depth + 1, budget=budget)


def _pickle_in_zip(stream: BinaryIO, depth: int, budget: list[int]) -> str | None:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None  # the end-of-archive record is there by chance: nothing reads this as an archive
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise Unverifiable(f"is a zip archive of {len(members)} members, over the {MAX_ZIP_MEMBERS} looked into")
        for member in members:
            shown_name = member.filename.encode("unicode_escape").decode("ascii")[:100]
            if member.flag_bits & 0x1:
                raise Unverifiable(f"holds an encrypted zip member '{shown_name}', which cannot be looked into")
            try:
                content = _member(stream, archive, member, budget)
                where = _nested(content, depth, budget)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as error:
                raise Unverifiable(f"has a zip member '{shown_name}' that cannot be read: {error}") from None
            if where is not None:
                return f"in its zip member '{shown_name}' ({where})"
    return None


def _member(stream: BinaryIO, archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: list[int]) -> BinaryIO:
    if member.compress_type == zipfile.ZIP_STORED:
        stream.seek(member.header_offset)
        header = stream.read(30)
        if len(header) < 30 or not header.startswith(b"PK\x03\x04"):
            raise zipfile.BadZipFile("bad local header")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        start = member.header_offset + 30 + name_length + extra_length
        return io.BufferedReader(_Window(stream, start, member.compress_size))
    return _bounded(archive.open(member), "its member", budget)


def _bounded(opened: IO[bytes], what: str, budget: list[int]) -> BinaryIO:
    with opened:
        try:
            data = opened.read(budget[0] + 1)
        except (OSError, EOFError, lzma.LZMAError, ValueError) as error:
            raise Unverifiable(f"has {what} that cannot be decompressed: {error}") from None
    budget[0] -= len(data)
    if budget[0] < 0:
        raise Unverifiable(f"decompresses to more than the {MAX_DECOMPRESSED_BYTES // 2**20} MiB looked through")
    return io.BytesIO(data)


class _Window(io.RawIOBase):
    """Bytes [start, start + length) of a seekable stream, as a stream of their own."""

    def __init__(self, stream: BinaryIO, start: int, length: int) -> None:
        self._stream, self._start, self._length, self._position = stream, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._length - self._position)
        if wanted <= 0:
            return 0
        self._stream.seek(self._start + self._position)
        data = self._stream.read(wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def harmless_kind(path: Path) -> str | None:
    """What the file at `path` (already resolved) verifiably is, if it is no model: 'empty', 'text', 'JSON', 'YAML',
    'a PNG image', 'numeric arrays'. None: it could be anything (a model in some format, code, an archive)."""
    suffix = path.suffix.lower()
    with open_checked(path) as stream:
        head = stream.read(16)
        stream.seek(0)
        if not head:
            return "empty"
        # No suffix: LICENSE, README, a zoo's COMPLETE marker. Text, once the pickle search (which runs first, on
        # every file) has found no protocol 0/1 pickle in it, is no model.
        if suffix in _PLAIN_TEXT_SUFFIXES or not suffix:
            return "text" if _is_text(stream) else None
        if suffix in _PARSED_TEXT_SUFFIXES:
            return _parsed_text(stream, suffix)
        if suffix in _IMAGE_FORMATS:
            return _image(stream, _IMAGE_FORMATS[suffix])
        if suffix == ".npy" and head.startswith(_NUMPY_MAGIC):
            return "a numeric array" if _numeric_array(stream) else None
        if suffix == ".npz" and zipfile.is_zipfile(stream):
            return "numeric arrays" if _numeric_arrays(stream) else None
    return None


def refusal_reason(path: Path) -> str:
    """Why an unrecognised file is not taken for harmless, in words."""
    with open_checked(path) as stream:
        head = stream.read(16)
    if head.startswith(_HDF5_MAGIC):
        return "an HDF5 file (a Keras .h5 model runs the code of its Lambda layers when loaded)"
    suffix = path.suffix.lower()
    if suffix in _PLAIN_TEXT_SUFFIXES | _PARSED_TEXT_SUFFIXES:
        return f"not text that parses as its '{suffix}' name says"
    if suffix in _IMAGE_FORMATS or suffix in (".npy", ".npz"):
        return f"not a valid '{suffix}' file of its kind"
    return "neither an ONNX model, its external data, nor a file verifiably not a model (text, image, numeric arrays)"


def _is_text(stream: BinaryIO) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := stream.read(1 << 20):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _parsed_text(stream: BinaryIO, suffix: str) -> str | None:
    data = stream.read(MAX_PARSED_TEXT_BYTES + 1)
    if len(data) > MAX_PARSED_TEXT_BYTES or b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
        if suffix == ".json":
            json.loads(text)
            return "JSON"
        import yaml

        for _ in yaml.safe_load_all(text):
            pass
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    except Exception as error:  # yaml.YAMLError and its kin: text that does not parse
        if type(error).__module__.startswith("yaml"):
            return None
        raise
    return "YAML"


def _image(stream: BinaryIO, expected: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(stream, formats=[expected]) as image:  # reads the header only, decodes no pixels
            return f"a {image.format} image" if image.format == expected else None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _numeric_array(stream: BinaryIO) -> bool:
    import numpy as np

    try:
        version = np.lib.format.read_magic(stream)
        header = (
            np.lib.format.read_array_header_1_0(stream)
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0(stream)
        )
    except (ValueError, OSError, SyntaxError, TypeError):
        return False
    return not header[2].hasobject


def _numeric_arrays(stream: BinaryIO) -> bool:
    try:
        with zipfile.ZipFile(stream) as archive:
            for member in archive.infolist():
                if not member.filename.endswith(".npy") or member.flag_bits & 0x1:
                    return False
                with archive.open(member) as opened:
                    header = opened.read(4096)
                if not _numeric_array(io.BytesIO(header)):
                    return False
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
        return False
    return True
