"""Turn bytes into an ONNX ModelProto, telling a truncated model apart from a file that never was one.

Parsing a protocol buffer only decodes data; nothing in it is executed. External data is not touched here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner.intake.errors import NotOnnx, TruncatedModel

if TYPE_CHECKING:
    import onnx

# ModelProto's top-level fields and their wire types (0 varint, 2 length-delimited), from onnx.proto.
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 21: 2, 25: 2}
# Serialisers write fields in number order, so every ONNX file starts with field 1 (ir_version) as a varint.
_IR_VERSION_KEY = 0x08
_MAX_VARINT_BYTES = 10


def parse_model(data: bytes, name: str) -> onnx.ModelProto:
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        if runs_past_end(data):
            raise TruncatedModel(f"{name} is a truncated ONNX model: its data ends in the middle of a field") from error
        raise NotOnnx(f"{name} is not an ONNX model (it does not decode as an ONNX protocol buffer)") from error
    if model.ir_version <= 0:
        raise NotOnnx(f"{name} is not an ONNX model (no IR version)")
    if not model.HasField("graph") or not model.opset_import:
        missing = "graph" if not model.HasField("graph") else "opset imports"
        raise TruncatedModel(f"{name} is an incomplete ONNX model: it has no {missing}")
    return model


def runs_past_end(data: bytes) -> bool:
    """True when `data` is a well-formed start of an ONNX model whose last field runs past the end of the file."""
    if not data or data[0] != _IR_VERSION_KEY:
        return False
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        if key is None:
            return True
        if key < 0:
            return False
        field, wire_type = key >> 3, key & 7
        if _MODEL_FIELDS.get(field) != wire_type:
            return False
        value, position = _varint(data, position)
        if value is None:
            return True
        if value < 0:
            return False
        if wire_type == 2:
            if position + value > len(data):
                return True
            position += value
    return False  # the framing is whole: the damage is inside a field, which is corruption, not truncation


def _varint(data: bytes, position: int) -> tuple[int | None, int]:
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if position + index >= len(data):
            return None, len(data)
        byte = data[position + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, position + index + 1
    return -1, position + _MAX_VARINT_BYTES  # over-long varint: not protobuf
