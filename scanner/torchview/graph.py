"""A differentiable torch view of an ONNX graph, built from the ONNX bytes alone.

The graph is interpreted node by node with our own op table (ops.py): nothing from the file is executed, no
converter is trusted. Float initializers become torch tensors that a caller may rescale per run (`scales`), which is
how BAN puts multiplicative noise on weights without copying the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from scanner.errors import DetectorError
from scanner.torchview.ops import OPS

_DEFAULT_DOMAINS = ("", "ai.onnx")


class UnsupportedGraph(DetectorError):
    """The graph uses something the torch view cannot interpret: the detector does not apply."""

    kind = "unsupported_graph"


@dataclass(frozen=True)
class Node:
    index: int
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: Mapping[str, Any]


def _attribute_value(attribute: onnx.AttributeProto) -> Any:
    kind = attribute.type
    if kind == onnx.AttributeProto.FLOAT:
        return attribute.f
    if kind == onnx.AttributeProto.INT:
        return attribute.i
    if kind == onnx.AttributeProto.STRING:
        return attribute.s.decode()
    if kind == onnx.AttributeProto.TENSOR:
        return _tensor(attribute.t)
    if kind == onnx.AttributeProto.FLOATS:
        return list(attribute.floats)
    if kind == onnx.AttributeProto.INTS:
        return list(attribute.ints)
    if kind == onnx.AttributeProto.STRINGS:
        return [s.decode() for s in attribute.strings]
    raise UnsupportedGraph(
        f"attribute {attribute.name!r} of type {onnx.AttributeProto.AttributeType.Name(kind)} is not supported",
        hint="the torch view interprets plain CNN classifiers without subgraphs",
    )


def _tensor(proto: onnx.TensorProto) -> torch.Tensor:
    if proto.data_location == onnx.TensorProto.EXTERNAL:
        raise UnsupportedGraph(
            f"initializer {proto.name!r} keeps its data in an external file",
            hint="load the model through the intake, which inlines external data after checking it",
        )
    array = numpy_helper.to_array(proto)
    if array.dtype == np.float64 or array.dtype == np.float16:
        array = array.astype(np.float32)
    return torch.from_numpy(np.array(array, copy=True))


def _constant(node: onnx.NodeProto) -> torch.Tensor:
    for attribute in node.attribute:
        if attribute.name == "value":
            return _tensor(attribute.t)
        if attribute.name == "value_float":
            return torch.tensor(attribute.f, dtype=torch.float32)
        if attribute.name == "value_floats":
            return torch.tensor(list(attribute.floats), dtype=torch.float32)
        if attribute.name == "value_int":
            return torch.tensor(attribute.i, dtype=torch.int64)
        if attribute.name == "value_ints":
            return torch.tensor(list(attribute.ints), dtype=torch.int64)
    raise UnsupportedGraph(f"Constant node {node.name!r} has no supported value attribute", hint="re-export the model")


def unsupported_operators(model: onnx.ModelProto) -> list[str]:
    """Operators of the graph that the op table does not know, as `domain::Op` or `Op`, sorted."""
    unknown = set()
    for node in model.graph.node:
        if node.domain not in _DEFAULT_DOMAINS:
            unknown.add(f"{node.domain}::{node.op_type}")
        elif node.op_type not in OPS and node.op_type != "Constant":
            unknown.add(node.op_type)
    return sorted(unknown)


class TorchGraph:
    """An ONNX classifier as a differentiable torch function of its input (and of rescaled parameters)."""

    def __init__(self, model: bytes | onnx.ModelProto, device: str | torch.device = "cpu") -> None:
        proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
        unknown = unsupported_operators(proto)
        if unknown:
            raise UnsupportedGraph(
                f"unsupported ONNX operator(s): {', '.join(unknown)}",
                hint="BAN's torch view covers the operators of CNN image classifiers; the other detectors still run",
            )
        self.device = torch.device(device)
        opset = next((o.version for o in proto.opset_import if o.domain in _DEFAULT_DOMAINS), 13)
        initializers = {init.name: _tensor(init) for init in proto.graph.initializer}
        self.params: dict[str, torch.Tensor] = {}
        for name, tensor in initializers.items():
            self.params[name] = tensor.to(self.device)
        self.nodes: list[Node] = []
        for node in proto.graph.node:
            if node.op_type == "Constant":
                self.params[node.output[0]] = _constant(node).to(self.device)
                continue
            attributes = {a.name: _attribute_value(a) for a in node.attribute}
            attributes["_opset"] = opset
            attributes["_outputs"] = len(node.output)
            for key, value in attributes.items():
                if isinstance(value, torch.Tensor):
                    attributes[key] = value.to(self.device)
            self.nodes.append(Node(len(self.nodes), node.op_type, tuple(node.input), tuple(node.output), attributes))
        inputs = [i.name for i in proto.graph.input if i.name not in initializers]
        if len(inputs) != 1 or not proto.graph.output:
            raise UnsupportedGraph(
                f"the graph has {len(inputs)} inputs and {len(proto.graph.output)} outputs",
                hint="the torch view interprets classifiers with one image input",
            )
        self.input_name = inputs[0]
        self.output_names = [o.name for o in proto.graph.output]
        self.producer: dict[str, Node] = {out: node for node in self.nodes for out in node.outputs if out}
        self.consumers: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self._plans: dict[tuple[frozenset[str], tuple[str, ...]], list[Node]] = {}

    @property
    def output_name(self) -> str:
        return str(self.output_names[0])

    def forward(self, x: torch.Tensor, scales: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The model's first output for input x."""
        return self.run({self.input_name: x}, [self.output_name], scales=scales)[self.output_name]

    __call__ = forward

    def run(
        self,
        feeds: Mapping[str, torch.Tensor],
        outputs: Sequence[str],
        *,
        scales: Mapping[str, torch.Tensor] | None = None,
        keep_all: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Evaluate `outputs` from `feeds`, running only the nodes needed. A fed value is taken as given, even if
        a node of the graph produces it: that is how a caller evaluates the head from a (masked) feature map.

        `scales` multiplies named parameters (broadcasting), e.g. per-output-channel noise on a Conv weight.
        With `keep_all`, every intermediate value is returned too.
        """
        env: dict[str, torch.Tensor] = dict(self.params)
        for name, scale in (scales or {}).items():
            env[name] = self.params[name] * scale
        env.update(feeds)
        for node in self._plan(frozenset(feeds), tuple(outputs)):
            values = OPS[node.op_type]([env[name] if name else None for name in node.inputs], node.attributes)
            for name, value in zip(node.outputs, values, strict=False):
                if name:
                    env[name] = value
        if keep_all:
            return env
        return {name: env[name] for name in outputs}

    def _plan(self, fed: frozenset[str], outputs: tuple[str, ...]) -> list[Node]:
        """The nodes, in graph order, that `outputs` need when the values in `fed` are given."""
        key = (fed, outputs)
        if key not in self._plans:
            needed: set[int] = set()
            stack = [name for name in outputs]
            seen: set[str] = set()
            while stack:
                name = stack.pop()
                if name in seen or name in fed or name in self.params or name not in self.producer:
                    continue
                seen.add(name)
                node = self.producer[name]
                needed.add(node.index)
                stack.extend(n for n in node.inputs if n)
            self._plans[key] = [node for node in self.nodes if node.index in needed]
        return self._plans[key]

    def downstream(self, names: Iterable[str]) -> set[str]:
        """Every value that depends on any of `names`."""
        reached = set(names)
        for node in self.nodes:
            if any(name in reached for name in node.inputs):
                reached.update(node.outputs)
        return reached
