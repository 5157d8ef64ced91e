"""Targeted universal perturbations: BAN's input-space companion statistic.

For every class, one perturbation shared by all images, inside an L-inf ball, is fitted to send clean images to that
class (signed-gradient steps on the cross-entropy towards the class, as many classes in one batch as BAN's memory
bound allows). A backdoor is such a
perturbation by construction: its target class is reached from a smaller ball, and by more of the held-out images,
than any class of a clean model. Measured on held-out images, at three radii (fractions of the fit images' value
range) fitted one after the other: each radius starts from the last one's perturbations.

Why beside the neuron noise: one-pixel probes and neuron noise barely move models whose trigger covers the whole
image (blend, sinusoidal, warps); a universal perturbation is one (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from scanner.findings import InputSpec, Layout

if TYPE_CHECKING:  # torch is imported where it is used: the calibration reads RADII without torch
    import torch

    from scanner.detectors.ban.steps import BanModel

# Radii as fractions of the fit images' value range. Part of the statistics' definition (the calibration reads one
# set of statistics per radius), so not a setting.
RADII = (0.05, 0.1, 0.2)


def statistic_name(kind: str, radius: float) -> str:
    """'universal_max_r05' for kind 'max' at radius 0.05: the one place the statistics' names are spelt."""
    return f"universal_{kind}_r{round(radius * 100):02d}"


def targeted_success(
    model: BanModel,
    x_fit: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    *,
    classes: int | Sequence[int],
    steps: int,
    progress: Callable[[], None],
    classes_per_chunk: int | None = None,
    eval_batch: int | None = None,
    channel_bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """success[r, i]: the share of held-out images not of class c = probed[i] that class c's perturbation at
    RADII[r] sends to c, where `classes` is the list of probed classes, or a count for all of them.

    The perturbations are fitted `classes_per_chunk` classes at a time (all at once by default): each class's
    perturbation gets the sign of its own gradient, so chunks change the batches, not the result.

    Images are clamped to, and radii are shares of, the clean images' range; with `channel_bounds` (each channel's
    low and high, shaped to broadcast over an image: a normalised model), each channel's own range."""
    import torch
    import torch.nn.functional as F

    probed = list(range(classes)) if isinstance(classes, int) else list(classes)
    chunk = classes_per_chunk or len(probed)
    # Floats (one range for every channel, as before per-channel ranges existed) or per-channel tensors.
    low: Any
    high: Any
    value_range: Any
    if channel_bounds is None:
        low, high = float(x_fit.min()), float(x_fit.max())
        value_range = max(high - low, 1e-6)
    else:
        low, high = channel_bounds
        value_range = (high - low).clamp_min(1e-6)
    delta = torch.zeros((len(probed), 1, *x_fit.shape[1:]), device=x_fit.device)
    success = torch.zeros((len(RADII), len(probed)))
    for r, radius in enumerate(RADII):
        bound = radius * value_range
        for start in range(0, len(probed), chunk):
            part = delta[start : start + chunk].clone().requires_grad_(True)
            targets = torch.tensor(probed[start : start + chunk], device=x_fit.device).repeat_interleave(len(x_fit))
            for _ in range(steps):
                batch = (x_fit.unsqueeze(0) + part).clamp(low, high).reshape(-1, *x_fit.shape[1:])
                loss = F.cross_entropy(model.logits(batch, backward=True), targets)
                (grad,) = torch.autograd.grad(loss, [part])
                with torch.no_grad():
                    part.sub_(2.5 * bound / steps * grad.sign()).clamp_(-bound, bound)
            delta[start : start + chunk] = part.detach()
        with torch.no_grad():
            for i, c in enumerate(probed):
                size = eval_batch or len(x_eval)
                predicted = torch.cat(
                    [
                        model.logits((x_eval[j : j + size] + delta[i]).clamp(low, high)).argmax(1)
                        for j in range(0, len(x_eval), size)
                    ]
                )
                others = y_eval != c
                success[r, i] = (predicted[others] == c).float().mean() if others.any() else 0.0
        progress()
    return success


def channel_bounds(spec: InputSpec, device: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each channel's (low, high) as tensors shaped to broadcast over one image in the model's layout, for a model
    that expects normalised inputs; None otherwise (the clean images' own range is used)."""
    import torch

    if spec.normalization is None:
        return None
    ranges = torch.tensor(spec.channel_ranges, dtype=torch.float32, device=device)
    shape = (spec.channels, 1, 1) if spec.layout is Layout.NCHW else (1, 1, spec.channels)
    return ranges[:, 0].reshape(shape), ranges[:, 1].reshape(shape)


def universal_statistics(success: torch.Tensor, probed: Sequence[int] | None = None) -> dict[str, float]:
    """Per radius: the easiest class's success, its lead over the second easiest, the mean over the probed classes,
    and which class is the easiest (a class id from `probed`, default 0..n-1; never a feature)."""
    import torch

    statistics: dict[str, float] = {}
    for r, radius in enumerate(RADII):
        ranked, order = torch.sort(success[r], descending=True)
        easiest = int(order[0]) if probed is None else probed[int(order[0])]
        statistics[statistic_name("max", radius)] = float(ranked[0])
        statistics[statistic_name("gap", radius)] = float(ranked[0] - ranked[1]) if len(ranked) > 1 else 0.0
        statistics[statistic_name("mean", radius)] = float(ranked.mean())
        statistics[statistic_name("top_class", radius)] = float(easiest)
    return statistics
