"""`load_model`: a model file in, a checked, self-contained `ModelArtifact` out, or a precise refusal.

Order matters: size and format are judged from the file system and the first bytes, before parsing; external data
paths are judged before any of them is opened; the graph is judged before anything could run it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from pathlib import Path

from scanner.errors import UsageError
from scanner.findings import InputSpec, Layout, ModelArtifact, Normalization
from scanner.intake.errors import (
    EmptyFile,
    FileTooLarge,
    ModelNotFound,
    PickleRefused,
    SymlinkOutside,
    Unreadable,
    UnrecognizedFile,
    shown,
)
from scanner.intake.external_data import inline_external_data
from scanner.intake.files import open_checked
from scanner.intake.formats import PICKLE_SUFFIXES, FileFormat, describe, sniff
from scanner.intake.graph_checks import check_graph
from scanner.intake.inspection import Unverifiable, pickle_inside
from scanner.intake.limits import PROTOBUF_LIMIT_BYTES, IntakeLimits
from scanner.intake.parsing import parse_model
from scanner.intake.spec import infer_spec

log = logging.getLogger(__name__)

DEFAULT_VALUE_RANGE = (0.0, 1.0)


def load_model(
    path: Path,
    *,
    limits: IntakeLimits = IntakeLimits(),  # noqa: B008 - frozen, so a shared default is safe
    value_range: tuple[float, float] | None = None,
    layout: Layout | None = None,
    allowed_domains: frozenset[str] = frozenset(),
    normalization: Normalization | None = None,
) -> ModelArtifact:
    """Check `path` and return it as a `ModelArtifact`; raises an `IntakeError` subclass saying why not."""
    path = Path(path)
    name = shown(path.name)
    value_range = _checked_value_range(value_range)
    layout = _checked_layout(layout)
    normalization = checked_normalization(normalization)
    try:
        data = _read_checked(path, limits)
        sha256 = hashlib.sha256(data).hexdigest()
        model = parse_model(data, name)
        budget = min(limits.max_model_bytes, PROTOBUF_LIMIT_BYTES) - len(data)
        inlined = inline_external_data(model, path.resolve().parent, name, budget)
    except OSError as error:
        raise Unreadable(f"{name} or its external data could not be read: {shown(error.strerror)}") from error
    onnx_bytes = model.SerializeToString() if inlined else data
    check_graph(model, onnx_bytes, name, allowed_domains)
    spec: InputSpec = infer_spec(model, name, limits=limits, value_range=value_range, layout=layout)
    if normalization is not None:
        if len(normalization.mean) != spec.channels:
            raise UsageError(
                f"the normalisation gives {len(normalization.mean)} channels' mean and std, but {name} takes"
                f" {spec.channels} channel{'s' if spec.channels != 1 else ''}",
                hint="give one mean and one std per input channel, in channel order",
            )
        spec = dataclasses.replace(spec, normalization=normalization)
    log.debug("intake accepted %s: %s, %d external tensors inlined", path, spec, inlined)
    return ModelArtifact(path=str(path), sha256=sha256, onnx_bytes=onnx_bytes, spec=spec)


def _read_checked(path: Path, limits: IntakeLimits) -> bytes:
    """The file's bytes, once it is known to be a non-empty, not-too-large file that is not a pickle."""
    name = shown(path.name)
    if not path.is_file():
        raise ModelNotFound(f"{shown(path)} does not exist or is not a regular file")
    real = path.resolve()
    if not real.is_relative_to(path.parent.resolve()):
        raise SymlinkOutside(f"{name} is a symlink to {shown(real)}, outside the directory it is in")
    size = real.stat().st_size
    if size == 0:
        raise EmptyFile(f"{name} is empty (0 bytes)")
    fmt = sniff(path)
    if fmt in (FileFormat.PICKLE, FileFormat.TORCH_ZIP) or path.suffix.lower() in PICKLE_SUFFIXES:
        raise PickleRefused(f"{name} is {describe(fmt, path.suffix.lower())}, refused unopened")
    try:
        where = pickle_inside(real)
    except Unverifiable as error:
        raise UnrecognizedFile(f"{name} {error}") from None
    if where is not None:
        raise PickleRefused(f"{name} holds a Python pickle {where}, refused unopened")
    limit = min(limits.max_model_bytes, PROTOBUF_LIMIT_BYTES)
    if size > limit:
        raise FileTooLarge(f"{name} has {size} bytes, over the intake limit of {limit} bytes")
    with open_checked(real) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise FileTooLarge(f"{name} has more than {limit} bytes, over the intake limit")
    return data


def _checked_layout(layout: Layout | str | None) -> Layout | None:
    if layout is None:
        return None
    try:
        return Layout(layout)
    except ValueError as error:
        raise UsageError(f"unknown input layout '{shown(layout)}'", hint="give NCHW or NHWC") from error


def checked_normalization(normalization: Normalization | None) -> Normalization | None:
    """`normalization` as floats, once every mean is finite and every std finite and positive."""
    if normalization is None:
        return None
    mean = tuple(float(value) for value in normalization.mean)
    std = tuple(float(value) for value in normalization.std)
    if not mean or len(mean) != len(std):
        raise UsageError(
            f"the normalisation gives {len(mean)} means and {len(std)} stds",
            hint="give one mean and one std per input channel, e.g. --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225",
        )
    if not all(math.isfinite(value) for value in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise UsageError(
            f"the normalisation mean {list(mean)} / std {list(std)} is not usable",
            hint="give finite means and finite stds above 0",
        )
    return Normalization(mean=mean, std=std)


def _checked_value_range(value_range: tuple[float, float] | None) -> tuple[float, float]:
    if value_range is None:
        return DEFAULT_VALUE_RANGE
    low, high = (float(bound) for bound in value_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UsageError(
            f"the input value range [{low}, {high}] is not an interval", hint="give two finite numbers, low < high"
        )
    return (low, high)
