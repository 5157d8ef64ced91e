"""Checks on the parsed graph, before any runtime sees it: operator domains, opsets, IR version, validity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner.intake import runtime_support
from scanner.intake.errors import CustomOperatorDomain, InvalidModel, UnsupportedIrVersion, UnsupportedOpset, shown
from scanner.intake.tensors import nodes_of

if TYPE_CHECKING:
    import onnx

# The domains the ONNX standard defines; "ai.onnx" is another name for the default "" domain.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
# Domains ONNX Runtime, its execution providers, training builds and onnxruntime-extensions fill with kernels of
# their own, by prefix so that the next such domain is covered too. A kernel there wins over a model-local function
# of the same name, so such a function says nothing about the code that runs.
RUNTIME_DOMAIN_PREFIXES = ("com.microsoft", "com.ms.", "ai.onnx.", "org.pytorch.", "com.intel.ai", "com.xilinx")


def check_graph(model: onnx.ModelProto, serialized: bytes, name: str, allowed_domains: frozenset[str]) -> None:
    """All graph checks; `serialized` is `model` as bytes, which the ONNX checker reads (no second serialisation)."""
    check_ir_version(model, name)
    check_operator_domains(model, name, allowed_domains)
    check_opsets(model, name)
    check_validity(serialized, name)


def check_ir_version(model: onnx.ModelProto, name: str) -> None:
    newest = runtime_support.max_ir_version()
    if model.ir_version > newest:
        raise UnsupportedIrVersion(
            f"{name} has ONNX IR version {model.ir_version}; the installed ONNX Runtime reads up to {newest}"
        )


def check_operator_domains(model: onnx.ModelProto, name: str, allowed_domains: frozenset[str]) -> None:
    """Every operator must come from a standard domain, an allowed one, or a function defined in the model itself.

    A custom domain needs a kernel library registered with the runtime: code that is not ONNX and not ours to run.
    Model-local functions are compositions of other nodes, which are checked like every other node; but only in a
    domain the runtime has no kernels of its own for, since there its kernel runs instead of the function's body.
    """
    defined = {(function.domain, function.name) for function in model.functions}
    local_functions = {(domain, op_type) for domain, op_type in defined if not runtime_owns_domain(domain)}
    permitted = STANDARD_DOMAINS | allowed_domains
    for node in nodes_of(model):
        if node.domain not in permitted and (node.domain, node.op_type) not in local_functions:
            why = f"{name} uses operator '{shown(node.op_type)}' from the non-standard domain '{shown(node.domain)}'"
            if (node.domain, node.op_type) in defined:
                why += "; its model-local function does not count there, as ONNX Runtime may run its own kernel"
            raise CustomOperatorDomain(why)


def runtime_owns_domain(domain: str) -> bool:
    """Whether ONNX Runtime (installed or in another build) may bring its own kernels for operators of `domain`."""
    folded = domain.strip().lower()
    return folded.startswith(RUNTIME_DOMAIN_PREFIXES) or folded in runtime_support.operator_domains()


def check_opsets(model: onnx.ModelProto, name: str) -> None:
    imports = [*model.opset_import, *(opset for function in model.functions for opset in function.opset_import)]
    for opset in imports:
        if opset.domain not in STANDARD_DOMAINS:
            continue  # custom domains were judged by their operators; their versions mean nothing to the checks here
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        newest = runtime_support.max_opset(domain)
        if opset.version > newest:
            label = domain or "ai.onnx"
            raise UnsupportedOpset(
                f"{name} needs {label} opset {opset.version}; the installed ONNX Runtime supports up to {newest}"
            )


def check_validity(serialized: bytes, name: str) -> None:
    """onnx.checker on the in-memory model: structure and types only; it reads no files and runs nothing."""
    import onnx

    try:
        onnx.checker.check_model(serialized)
    except (
        onnx.checker.ValidationError,
        UnicodeError,
        ValueError,
        RuntimeError,
    ) as error:  # C++ checker: all mean invalid
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "validation failed"
        raise InvalidModel(f"{name} is not a valid ONNX graph: {shown(first_line)}") from error
