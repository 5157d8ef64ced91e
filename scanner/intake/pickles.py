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
import struct
from collections.abc import Callable
from typing import BinaryIO

_PROTO = 0x80
_OPCODES = {opcode.code.encode("latin-1"): opcode for opcode in pickletools.opcodes}
# Where a pickle gets the callables it calls: without one of these, loading it builds plain data and runs nothing.
# (EXT1/2/4 name callables too, but only ones registered with copyreg's extension registry, empty unless a program
# fills it: counted as imports they would make random bytes read as pickles more often than any pickle uses them.)
_IMPORTING = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})
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
    start = stream.tell()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(start)
    imports = False
    items = 0
    marks: list[int] = []
    for count in range(1, MAX_OPCODES + 1):
        opcode = _OPCODES.get(stream.read(1))
        if opcode is None:
            return False
        after = _stack_after(opcode, items, marks)
        if after is None:
            return False
        items = after
        if opcode.name == "STOP":
            return imports and count >= _MIN_OPCODES
        imports = imports or opcode.name in _IMPORTING
        if opcode.arg is not None and not _skip_argument(stream, opcode.arg, size):
            return False
    return True


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
