"""Export a torch classifier to one self-contained ONNX file with a dynamic batch axis, and check it against torch."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scanner.zoo.errors import ZooError

log = logging.getLogger(__name__)

EXPORTERS = ("legacy", "dynamo")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# An export is accepted only if ONNX Runtime's logits match torch's this closely on random inputs.
MAX_LOGIT_DIFFERENCE = 1e-4


class NhwcInput(nn.Module):
    """Takes NHWC images and hands them to an NCHW model: a Transpose in front of the exported graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(x.permute(0, 3, 1, 2))
        return logits


def export_onnx(
    module: nn.Module,
    path: Path | str,
    *,
    image_shape: tuple[int, int, int],
    exporter: str = "legacy",
    nhwc: bool = False,
) -> float:
    """Write `module` (NCHW, `image_shape` = (C, H, W)) to `path`; returns the largest logit difference to torch.

    `exporter` "legacy" is torch's TorchScript exporter, "dynamo" the torch.export-based one (opset 18); both fold
    BatchNorm into the convolutions of a model in eval mode, but their graphs differ (Flatten vs Reshape, ...).
    `nhwc=True` makes the ONNX model take NHWC input.
    """
    if exporter not in EXPORTERS:
        raise ZooError(f"unknown exporter {exporter!r}", hint=f"use one of: {', '.join(EXPORTERS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    model = NhwcInput(module).eval() if nhwc else module
    channels, height, width = image_shape
    shape = (2, height, width, channels) if nhwc else (2, channels, height, width)
    example = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    # Both exporters talk on stdout/stderr and warn (the legacy one is deprecated): the core prints nothing.
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            _export_legacy(model, example, path)
        else:
            _export_dynamo(model, example, path)
    difference = _difference_to_torch(model, path, shape)
    if not difference <= MAX_LOGIT_DIFFERENCE:
        path.unlink(missing_ok=True)
        raise ZooError(
            f"ONNX export of {path.name} ({exporter}) differs from torch by {difference:.2e} in the logits",
            hint="try the other exporter",
        )
    log.debug("exported %s with the %s exporter (max logit difference %.1e)", path, exporter, difference)
    return difference


def _export_legacy(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=17,
    )


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    # It logs a warning per torchvision operator it cannot find; we use none of them.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )
    if program is None:
        raise ZooError("the dynamo exporter returned no program", hint="use the legacy exporter")
    program.save(str(path), external_data=False)


def _difference_to_torch(model: nn.Module, path: Path, shape: tuple[int, ...]) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    # An odd batch size: also proves the batch axis is dynamic.
    images = torch.rand((7, *shape[1:]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images).numpy()
    got: Any = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0]
    return float(np.abs(np.asarray(got) - expected).max())
