"""Walk every tensor and every node of an ONNX model: main graph, nested subgraphs (If, Loop, Scan) and functions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def graphs_of(model: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    yield from _graph_and_subgraphs(model.graph)
    for training in model.training_info:
        yield from _graph_and_subgraphs(training.initialization)
        yield from _graph_and_subgraphs(training.algorithm)
    for function in model.functions:
        for node in function.node:
            for attribute in node.attribute:
                for graph in _attribute_graphs(attribute):
                    yield from _graph_and_subgraphs(graph)


def nodes_of(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    for graph in graphs_of(model):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def tensors_of(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor that can carry data: initializers, sparse initializers, and tensor-valued node attributes."""
    for graph in graphs_of(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
    for node in nodes_of(model):
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices
            for sparse in attribute.sparse_tensors:
                yield sparse.values
                yield sparse.indices


def _graph_and_subgraphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for subgraph in _attribute_graphs(attribute):
                yield from _graph_and_subgraphs(subgraph)


def _attribute_graphs(attribute: onnx.AttributeProto) -> Iterator[onnx.GraphProto]:
    if attribute.HasField("g"):
        yield attribute.g
    yield from attribute.graphs
