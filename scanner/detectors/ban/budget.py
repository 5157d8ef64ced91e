"""BAN's bounds: how many images one batch may hold within its memory bound, which classes the universal
perturbations probe when there are many, what a run costs, and whether it fits the time left.

Measured, not guessed: the bytes a sample needs come from the values of one traced forward pass (backward keeps about
as much again), the seconds a sample takes, without and with a backward pass, from one timed batch. A run that would
pass a bound is refused before it starts, as an error result that says so, so that the process is never killed for
memory mid-scan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scanner.errors import DetectorError

if TYPE_CHECKING:
    import torch

    from scanner.detectors.ban.steps import BanModel

GIB = 1024**3


class OverBound(DetectorError):
    """BAN would pass its memory or time bound on this model: it does not start."""

    kind = "ban_over_bound"


def bytes_per_sample(values: Mapping[str, torch.Tensor], batch: int) -> int:
    """Bytes one sample takes through a forward and backward pass: every floating value of a traced forward pass
    of `batch` samples that carries the batch axis, twice (autograd keeps the values, the backward pass makes
    gradients of the same size)."""
    total = sum(
        v.numel() * v.element_size()
        for v in values.values()
        if v.is_floating_point() and v.dim() > 0 and v.shape[0] == batch
    )
    return max(1, 2 * total // batch)


@dataclass(frozen=True)
class BatchPlan:
    """How BAN's batches are cut to stay within `memory_bytes`."""

    memory_bytes: int
    sample_bytes: int
    max_batch: int  # images through the model with gradients at once
    classes_per_chunk: int  # universal perturbations fitted together (each on universal_samples images)


def plan_batches(memory_bytes: int, sample_bytes: int, universal_samples: int, classes: int) -> BatchPlan:
    max_batch = memory_bytes // sample_bytes
    if max_batch < universal_samples:
        raise OverBound(
            f"BAN needs {universal_samples * sample_bytes / GIB:.2f} GiB for its smallest batch "
            f"({universal_samples} images at {sample_bytes / 2**20:.1f} MiB each), over its memory bound of "
            f"{memory_bytes / GIB:.2f} GiB",
            hint="raise BAN's memory bound (--ban-setting memory_gib=N) or scan on a machine with more memory",
        )
    return BatchPlan(memory_bytes, sample_bytes, max_batch, max(1, min(classes, max_batch // universal_samples)))


def classes_to_probe(suspicion: torch.Tensor, cap: int) -> list[int]:
    """The `cap` classes with the highest suspicion (all of them when there are no more than `cap`), ascending."""
    if len(suspicion) <= cap:
        return list(range(len(suspicion)))
    import torch

    return sorted(int(c) for c in torch.topk(suspicion, cap).indices)


@dataclass(frozen=True)
class Work:
    """A run's work in samples, as `steps.Cost` counts it: through the whole model without a backward pass, with one,
    and through the head alone (the mask's training and its statistics; with backward counted 3)."""

    forwards: int
    backwards: int
    heads: int

    @property
    def forward_equivalents(self) -> int:
        """What Cost.forward_equivalents will read after the run: a forward with its backward counts 3."""
        return self.forwards + 3 * self.backwards

    def seconds(self, timing: Timing) -> float:
        """At the measured seconds per sample. A backward pass is timed, not taken to cost 2 forwards: it costs more
        than that where the gradients of the neuron noise's scales make torch compute the weights' gradients
        (bench/RESULTS.md: 68.6 s of a 60 s share on a 224 x 224 ResNet while it was taken to cost 2). The head is
        the pooling and classifier after the last feature map, a small share of a pass, and is left out."""
        return self.forwards * timing.per_forward + self.backwards * timing.per_backward


@dataclass(frozen=True)
class Timing:
    """Seconds one sample takes through the whole model: forward only, and forward with its backward pass."""

    per_forward: float
    per_backward: float


def seconds_per_sample(model: BanModel, x: torch.Tensor) -> Timing:
    """Timed on `x` (a few images): a forward pass, and a forward pass with the backward BAN makes, to the input (the
    universal perturbations) and to the neuron noise's scales (whose gradients need the weights' as well)."""
    import time

    import torch

    noise = {t.param: torch.zeros(t.channels, device=x.device, requires_grad=True) for t in model.anatomy.noise_targets}
    inputs = x.detach().clone().requires_grad_(True)
    with torch.no_grad():
        began = time.perf_counter()
        model.logits(x)
        per_forward = (time.perf_counter() - began) / len(x)
    wrt = [inputs, *noise.values()]
    torch.autograd.grad(model.logits(inputs[:1], noise, backward=True).sum(), wrt)  # the first sets autograd up
    began = time.perf_counter()
    torch.autograd.grad(model.logits(inputs, noise, backward=True).sum(), wrt)
    per_backward = (time.perf_counter() - began) / len(x)
    return Timing(per_forward, per_backward)


def check_time(planned: Work, timing: Timing, remaining: float | None) -> float:
    """The seconds the run is expected to take; OverBound when that is more than the `remaining` seconds."""
    expected = planned.seconds(timing)
    if remaining is not None and expected > remaining:
        raise OverBound(
            f"BAN would take about {math.ceil(expected)} s ({planned.forward_equivalents} forward-equivalents at "
            f"{timing.per_forward * 1000:.2f} ms, {timing.per_backward * 1000:.2f} ms with backward), over the "
            f"{max(0, math.floor(remaining))} s left of the time limit",
            hint="raise --time-limit, scan on a GPU (--device cuda), or lower BAN's probed_classes",
        )
    return expected
