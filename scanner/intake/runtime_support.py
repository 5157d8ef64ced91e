"""What the installed ONNX Runtime accepts: newest IR version and opset per operator domain, and its own domains.

ONNX Runtime has no public API for this, so it is measured once per process: a one-node model stamped with a
given version either opens in a session or is refused. A binary search needs about six tiny sessions per question.
Without onnxruntime installed, the limits of the installed `onnx` package stand in.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_SEARCH_CEILING = 64
_PROBE_OPSET = 13


@functools.cache
def max_ir_version() -> int:
    ort = _onnxruntime_or_none()
    if ort is None:
        import onnx

        return int(onnx.IR_VERSION)
    return _highest_accepted(lambda version: _opens(ort, ir_version=version, opsets={"": _PROBE_OPSET}))


@functools.cache
def max_opset(domain: str) -> int:
    """Newest opset of a standard domain ("" for ai.onnx, "ai.onnx.ml") that the runtime officially supports."""
    ort = _onnxruntime_or_none()
    if ort is None:
        return _onnx_package_max_opset(domain)

    def opsets(version: int) -> dict[str, int]:
        return {"": version} if domain == "" else {"": _PROBE_OPSET, domain: version}

    return _highest_accepted(lambda version: _opens(ort, ir_version=8, opsets=opsets(version)))


@functools.cache
def operator_domains() -> frozenset[str]:
    """The operator domains the installed ONNX Runtime registers schemas or kernels for ("" is ai.onnx).

    Read from the runtime's own registry where this build exposes it; empty without onnxruntime.
    """
    if _onnxruntime_or_none() is None:
        return frozenset()
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as registry

        schemas = registry.get_all_operator_schema()
        kernels = registry.get_all_opkernel_def()
    except (ImportError, AttributeError, RuntimeError):  # a minimal build: the fixed list in graph_checks stands
        return frozenset()
    return frozenset(str(entry.domain) for entry in [*schemas, *kernels])


def _highest_accepted(accepts: Callable[[int], bool]) -> int:
    low, high = 0, _SEARCH_CEILING + 1  # accepts(low) assumed, accepts(high) assumed false
    while high - low > 1:
        middle = (low + high) // 2
        if accepts(middle):
            low = middle
        else:
            high = middle
    return low


def _opens(ort: Any, *, ir_version: int, opsets: dict[str, int]) -> bool:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception:  # refusal is the answer being measured
        return False
    return True


def _onnx_package_max_opset(domain: str) -> int:
    from onnx.onnx_cpp2py_export import defs

    versions: dict[str, tuple[int, int]] = defs.schema_version_map()
    return versions.get(domain, (0, 0))[1]


def _onnxruntime_or_none() -> Any:
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # read at import: else it writes under ~/.cache (as scanner.runtime)
    try:
        import onnxruntime
    except ImportError:
        log.debug("onnxruntime is not installed: checking opsets against the onnx package instead")
        return None
    onnxruntime.disable_telemetry_events()
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime
