"""Targeted universal perturbations: BAN's input-space companion statistic.

For every class, one perturbation shared by all images, inside an L-inf ball, is fitted to send clean images to that
class (signed-gradient steps on the cross-entropy towards the class, all classes in one batch). A backdoor is such a
perturbation by construction: its target class is reached from a smaller ball, and by more of the held-out images,
than any class of a clean model. Measured on held-out images, at three radii (fractions of the fit images' value
range) fitted one after the other: each radius starts from the last one's perturbations.

Why beside the neuron noise: one-pixel probes and neuron noise barely move models whose trigger covers the whole
image (blend, sinusoidal, warps); a universal perturbation is one (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

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
    classes: int,
    steps: int,
    progress: Callable[[], None],
) -> torch.Tensor:
    """success[r, c]: the share of held-out images not of class c that class c's perturbation at RADII[r] sends
    to c."""
    import torch
    import torch.nn.functional as F

    low, high = float(x_fit.min()), float(x_fit.max())
    value_range = max(high - low, 1e-6)
    delta = torch.zeros((classes, 1, *x_fit.shape[1:]), device=x_fit.device, requires_grad=True)
    targets = torch.arange(classes, device=x_fit.device).repeat_interleave(len(x_fit))
    success = torch.zeros((len(RADII), classes))
    for r, radius in enumerate(RADII):
        bound = radius * value_range
        for _ in range(steps):
            batch = (x_fit.unsqueeze(0) + delta).clamp(low, high).reshape(-1, *x_fit.shape[1:])
            loss = F.cross_entropy(model.logits(batch, backward=True), targets)
            (grad,) = torch.autograd.grad(loss, [delta])
            with torch.no_grad():
                delta.sub_(2.5 * bound / steps * grad.sign()).clamp_(-bound, bound)
        with torch.no_grad():
            for c in range(classes):
                predicted = model.logits((x_eval + delta[c]).clamp(low, high)).argmax(1)
                others = y_eval != c
                success[r, c] = (predicted[others] == c).float().mean() if others.any() else 0.0
        progress()
    return success


def universal_statistics(success: torch.Tensor) -> dict[str, float]:
    """Per radius: the easiest class's success, its lead over the second easiest, the mean over classes, and which
    class is the easiest (an index, never a feature)."""
    import torch

    statistics: dict[str, float] = {}
    for r, radius in enumerate(RADII):
        ranked, classes = torch.sort(success[r], descending=True)
        statistics[statistic_name("max", radius)] = float(ranked[0])
        statistics[statistic_name("gap", radius)] = float(ranked[0] - ranked[1]) if len(ranked) > 1 else 0.0
        statistics[statistic_name("mean", radius)] = float(ranked.mean())
        statistics[statistic_name("top_class", radius)] = float(classes[0])
    return statistics
