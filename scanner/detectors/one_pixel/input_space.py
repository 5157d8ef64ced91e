"""Models that do not take [0, 1] probed in their own input space, channel by channel.

A model with another value range (such as [-1, 1]) or one that expects (x - mean) / std takes each channel in its own
range (`InputSpec.channel_ranges`). The probes are built as for a model taking [0, 1] on every channel (candidate
values, bases, composites, patches, unchanged) and each channel is mapped onto that channel's range just before the
forward pass; clean data is mapped the other way once. So every value the model sees lies in its own channel's range
(a patch's solid colours at its ends), and the features read the same as for the same network taking [0, 1].
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scanner.detectors.interface import CleanData
from scanner.detectors.one_pixel.signature import ImageModel
from scanner.findings import InputSpec, Layout


def in_unit_space(spec: InputSpec) -> bool:
    """Whether the model takes [0, 1] on every channel: the probes' own space, nothing to map."""
    return all(pair == (0.0, 1.0) for pair in spec.channel_ranges)


def probed_model(model: ImageModel) -> ImageModel:
    """`model` as the probes talk to it: in [0, 1] on every channel."""
    return model if in_unit_space(model.spec) else UnitSpaceModel(model)


def unit_spec(spec: InputSpec) -> InputSpec:
    """The spec the probes are built on: every channel in [0, 1], no normalisation."""
    return dataclasses.replace(spec, value_range=(0.0, 1.0), normalization=None)


def _low_and_span(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's low end and width, shaped to broadcast over a batch in the model's layout."""
    ranges = np.asarray(spec.channel_ranges, dtype=np.float32)
    shape = (spec.channels, 1, 1) if spec.layout is Layout.NCHW else (1, 1, spec.channels)
    return ranges[:, 0].reshape(shape), (ranges[:, 1] - ranges[:, 0]).reshape(shape)


def to_model_space(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    low, span = _low_and_span(spec)
    return np.asarray(low + np.asarray(images, dtype=np.float32) * span, dtype=np.float32)


def to_unit_space(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    low, span = _low_and_span(spec)
    return np.asarray((np.asarray(images, dtype=np.float32) - low) / span, dtype=np.float32)


def unit_clean_data(clean: CleanData | None, spec: InputSpec) -> CleanData | None:
    """Clean data in the model's input space, mapped into the probes' [0, 1] (left alone when it does not fit, or when
    the model takes [0, 1])."""
    if clean is None or tuple(clean.x.shape[1:]) != spec.image_shape or in_unit_space(spec):
        return clean
    return CleanData(x=to_unit_space(clean.x, spec), y=clean.y)


class UnitSpaceModel:
    """`model` seen as taking [0, 1] on every channel: images are mapped onto the model's channel ranges."""

    def __init__(self, model: ImageModel) -> None:
        self.model = model
        self.spec = unit_spec(model.spec)

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self.model.logits(to_model_space(images, self.model.spec))
