"""A differentiable torch view of an ONNX classifier (for BAN), interpreted with our own op table."""

from scanner.torchview.graph import TorchGraph, UnsupportedGraph, unsupported_operators

__all__ = ["TorchGraph", "UnsupportedGraph", "unsupported_operators"]
