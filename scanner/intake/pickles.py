"""Recognise a pickle by reading its opcodes one by one, never by loading it.

A pickle is a program for a small stack machine that `pickle.load` runs; its GLOBAL-type opcodes import any callable
the author names. Reading the opcodes (their codes, the extent of their arguments, how many stack items they take)
runs nothing. Pickles of protocol 2 and later open with a PROTO opcode; protocols 0 and 1 have no header, so their
whole program is walked: valid opcodes through to STOP, importing something on the way, make a pickle that would run
code when loaded. Long arguments are skipped, not read, so padding a pickle with gigabytes of data neither hides it
nor costs memory.

Every check here is at most as strict as `pickle.load` itself (its C and its Python unpickler): a stricter check
would let a pickle written to fail it, yet still load, slip through as "not a pickle".
"""

from __future__ import annotations

import io
import os
import pickletools
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

_PROTO = 0x80
_OPCODES = {opcode.code.encode("latin-1"): opcode for opcode in pickletools.opcodes}
_OPCODES_BYTES = sorted(code[0] for code in _OPCODES)
# Where a pickle gets the callables it calls: without one of these, loading it builds plain data and runs nothing.
# (EXT1/2/4 name callables too, but only ones registered with copyreg's extension registry, empty unless a program
# fills it: counted as imports they would make random bytes read as pickles more often than any pickle uses them.)
_IMPORTING = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})
# What calls a callable the pickle holds (INST imports and calls at once).
_CALLING = frozenset({"REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
# Where a pickle may start in the middle of a file: PROTO and its protocol, or a protocol 0/1 import (GLOBAL or INST)
# of a module and a name that Python could import (ASCII names: no installed module has another), each on a line,
# followed by an opcode. Each pattern opens with one fixed byte, which the regex engine skips to fast (a set of two
# bytes is tried at every position instead: 15 times slower).
_PROTO_ANCHOR = re.compile(rb"\x80[\x02-\x05]")
_IMPORT_ANCHORS = tuple(
    re.compile(opcode + rb"[A-Za-z_][\w.]{0,255}\n[A-Za-z_][\w.]{0,255}\n[" + re.escape(bytes(_OPCODES_BYTES)) + rb"]")
    for opcode in (b"c", b"i")
)
_SEARCH_CHUNK = 1 << 20
_SEARCH_OVERLAP = 1024
# Pickles read one after another from one stream (torch's legacy format writes five).
_MAX_CHAINED = 64
# Opcodes read while searching one file: random candidates fail within a few opcodes, so only a file made to look
# like pickles everywhere comes near this.
_BASE_OPCODE_BUDGET = 1_000_000
_BYTES_PER_BUDGETED_OPCODE = 16
# The shortest pickle that calls what it imports: MARK, INST module and name, STOP.
_MIN_OPCODES = 3
# A run of this many valid opcodes is a pickle, whatever follows: no other file reads as one for that long.
MAX_OPCODES = 100_000
# Arguments that start with their own length: how that length is written.
_LENGTH_FORMATS = {
    pickletools.TAKEN_FROM_ARGUMENT1: "<B",
    pickletools.TAKEN_FROM_ARGUMENT4: "<i",
    pickletools.TAKEN_FROM_ARGUMENT4U: "<I",
    pickletools.TAKEN_FROM_ARGUMENT8U: "<Q",
}
# Arguments up to this long are checked as `pickle.load` would read them; longer ones are only skipped.
_CHECKED_BYTES = 4096


def starts_with_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 or later: the PROTO opcode, then opcodes that disassemble (never run) cleanly."""
    if len(head) < 2 or head[0] != _PROTO or not 2 <= head[1] <= 5:
        return False
    opcodes = 0
    try:
        for _ in pickletools.genops(head):
            opcodes += 1
    except ValueError:
        pass  # the head ends mid-opcode: what was read so far decides
    return opcodes >= 3


def runs_as_pickle(stream: BinaryIO) -> bool:
    """Whether the opcodes from the stream's position run validly to STOP, importing a callable on the way."""
    return _walk(stream).is_pickle


@dataclass(frozen=True)
class _Walk:
    opcodes: int
    end: int | None  # where the program's STOP ends; None: no valid program (or one of MAX_OPCODES or more)
    imports: bool
    calls: bool
    is_pickle: bool


def _walk(stream: BinaryIO, *, open_bottom: bool = False) -> _Walk:
    """Read the opcodes from the stream's position. `open_bottom`: the program may start in the middle of a pickle,
    so the stack below it is unknown and never runs short."""
    start = stream.tell()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(start)
    imports = calls = False
    items = 0
    marks: list[int] = []
    for count in range(1, MAX_OPCODES + 1):
        opcode = _OPCODES.get(stream.read(1))
        if opcode is None:
            return _Walk(count, None, imports, calls, False)
        if not open_bottom:
            after = _stack_after(opcode, items, marks)
            if after is None:
                return _Walk(count, None, imports, calls, False)
            items = after
        if opcode.name == "STOP":
            return _Walk(count, stream.tell(), imports, calls, imports and count >= _MIN_OPCODES)
        imports = imports or opcode.name in _IMPORTING
        calls = calls or opcode.name in _CALLING
        if opcode.arg is not None and not _skip_argument(stream, opcode.arg, size):
            return _Walk(count, None, imports, calls, False)
    return _Walk(MAX_OPCODES, None, imports, calls, True)


class SearchTooCostly(Exception):
    """The file holds so many pickle-like opcode runs that checking them all would cost more than its size allows."""


def find_pickle_stream(stream: BinaryIO, starts: Iterable[int] = (0,)) -> int | None:
    """Where a pickle stream sits in the (seekable) stream, or None.

    Checked: a pickle at each of `starts` and right after every pickle that ends there (a second `pickle.load` on the
    same file reads it), and one starting at every PROTO opcode (0x80 and a protocol 2-5) or protocol 0/1 import
    (GLOBAL or INST: 'c' or 'i', a module and a name on lines of their own) anywhere in the file. A run found in the
    middle of a file counts only where `pickle.load` started there would import and call something: bytes of weights
    hold 0x80 0x04 by chance, but not a valid program through to STOP that imports and calls. Reads in chunks, so
    memory stays bounded whatever the size; raises SearchTooCostly past a budget of opcodes proportional to the size.
    """
    size = stream.seek(0, os.SEEK_END)
    budget = _Budget(_BASE_OPCODE_BUDGET + size // _BYTES_PER_BUDGETED_OPCODE)
    for start in starts:
        found = _chained_pickle(stream, start, budget)
        if found is not None:
            return found
    position = 0
    while position < size:
        stream.seek(position)
        chunk = stream.read(_SEARCH_CHUNK + _SEARCH_OVERLAP)
        last = position + len(chunk) >= size
        for at in _anchors(chunk, _SEARCH_CHUNK if not last else len(chunk)):
            stream.seek(position + at)
            strict = chunk[at] == _PROTO
            walk = _walk(stream, open_bottom=not strict)
            budget.spend(walk.opcodes)
            if walk.is_pickle and (strict or walk.calls or chunk[at : at + 1] == b"i"):
                return position + at
        position += _SEARCH_CHUNK
    return None


def _anchors(chunk: bytes, end: int) -> list[int]:
    """Offsets below `end` where a pickle may start; the chunk runs on past `end` so that a candidate there is whole."""
    found = [match.start() for match in _PROTO_ANCHOR.finditer(chunk, 0, end + 1)]
    for anchor in _IMPORT_ANCHORS:
        at = 0
        while (match := anchor.search(chunk, at)) is not None and match.start() < end:
            found.append(match.start())
            at = match.start() + 1  # candidates may overlap
    return sorted(found)


def _chained_pickle(stream: BinaryIO, start: int, budget: _Budget) -> int | None:
    """A pickle at `start`, or after the pickles that follow one another from there."""
    for _ in range(_MAX_CHAINED):
        stream.seek(start)
        walk = _walk(stream)
        budget.spend(walk.opcodes)
        if walk.is_pickle:
            return start
        if walk.end is None or walk.end == start:
            return None
        start = walk.end
    return None


class _Budget:
    def __init__(self, opcodes: int) -> None:
        self.left = opcodes

    def spend(self, opcodes: int) -> None:
        self.left -= opcodes
        if self.left < 0:
            raise SearchTooCostly


def _stack_after(opcode: pickletools.OpcodeInfo, items: int, marks: list[int]) -> int | None:
    """The unpickler's stack size after `opcode` (`marks` updated in place); None where it would run short.

    Items are counted across marks: the C unpickler lets APPEND and SETITEM reach below a mark, the Python one
    does not, so counting per mark would be stricter than one of them.
    """
    before = opcode.stack_before
    if pickletools.markobject in before:
        if not marks:
            return None
        at = before.index(pickletools.markobject)
        mark = min(marks.pop(), items)
        if items - mark < len(before) - at - 2:  # items the opcode needs above its mark (OBJ: the class)
            return None
        items = mark - at
    elif opcode.name == "POP" and marks and marks[-1] == items:
        marks.pop()  # POP on an empty stack frame pops its mark instead
    else:
        items -= len(before)
    if items < 0:
        return None
    if opcode.stack_after == [pickletools.markobject]:
        marks.append(items)
        return items
    return items + len(opcode.stack_after)


def _skip_argument(stream: BinaryIO, argument: pickletools.ArgumentDescriptor, size: int) -> bool:
    if argument.n >= 0:
        return len(stream.read(argument.n)) == argument.n
    length_format = _LENGTH_FORMATS.get(argument.n)
    if length_format is not None:
        encoded = stream.read(struct.calcsize(length_format))
        if len(encoded) < struct.calcsize(length_format):
            return False
        (length,) = struct.unpack(length_format, encoded)
        if length < 0 or stream.tell() + length > size:
            return False
        if length > _CHECKED_BYTES:
            stream.seek(length, os.SEEK_CUR)
            return True
        return _parses(argument, encoded + stream.read(length))
    lines = [_line(stream) for _ in range(2 if argument is pickletools.stringnl_noescape_pair else 1)]
    check = _TEXT_CHECKS.get(argument.name)
    return all(line is not None and (check is None or len(line) > _CHECKED_BYTES or check(line)) for line in lines)


def _parses(argument: pickletools.ArgumentDescriptor, encoded: bytes) -> bool:
    """pickletools' reader on a counted argument: it fails only where `pickle.load` does, on text that is no UTF-8."""
    try:
        argument.reader(io.BytesIO(encoded))
    except ValueError:
        return False
    return True


def _line(stream: BinaryIO) -> bytes | None:
    """The next line with its newline, only its start kept if it is long; None if the file ends first."""
    kept = stream.readline(_CHECKED_BYTES + 1)
    line = kept
    while line and not line.endswith(b"\n"):
        line = stream.readline(1 << 16)
    return kept if line.endswith(b"\n") else None


def _is_number(line: bytes) -> bool:
    # The C unpickler reads a number up to a NUL byte, in any base int(text, 0) or C's strtol knows.
    return not line[:-1].split(b"\0")[0].translate(None, b"0123456789+-._ \t\rxXoObBaAcCdDeEfFiInNtTyYlL")


def _is_quoted(line: bytes) -> bool:
    text = line[:-1]
    return len(text) >= 2 and text[0] == text[-1] and text[:1] in (b"'", b'"')


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# What `pickle.load` demands of a protocol-0 text argument, by the argument's pickletools name.
_TEXT_CHECKS: dict[str, Callable[[bytes], bool]] = {
    "decimalnl_short": _is_number,
    "decimalnl_long": _is_number,
    "floatnl": _is_number,
    "stringnl": _is_quoted,
    "stringnl_noescape_pair": _is_utf8,
}
