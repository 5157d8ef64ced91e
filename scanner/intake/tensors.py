"""Walk every node and every tensor of an ONNX model, wherever the format allows one to sit.

The walk follows the protocol buffer's own structure (every set message field, recursively) rather than a list of
known places, so tensors in subgraphs (If, Loop, Scan), functions, function attribute defaults, sparse tensors and
training info are all found, including in places a future ONNX version adds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx


def nodes_of(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    import onnx

    return (message for message in _messages(model) if isinstance(message, onnx.NodeProto))


def tensors_of(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    import onnx

    return (message for message in _messages(model) if isinstance(message, onnx.TensorProto))


def _messages(root: Any) -> Iterator[Any]:
    """Every message inside `root`, depth first (iterative: a hostile file may nest graphs very deeply)."""
    import onnx
    from google.protobuf.descriptor import FieldDescriptor

    stack = [root]
    while stack:
        message = stack.pop()
        yield message
        if isinstance(message, onnx.TensorProto):
            continue  # holds no tensor or node; listing its fields would copy its (possibly huge) raw data
        for field, value in message.ListFields():
            if field.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            if _is_repeated(field):
                stack.extend(reversed(value))
            else:
                stack.append(value)


def _is_repeated(field: Any) -> bool:
    from google.protobuf.descriptor import FieldDescriptor

    repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; `label` is deprecated there
    if repeated is not None:
        return bool(repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)
