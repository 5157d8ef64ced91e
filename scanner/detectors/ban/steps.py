"""BAN's three steps on a torch view of an ONNX classifier: feature mask, adversarial neuron noise at matched
damage, and the statistics under noise (docs/detectors.md, "BAN").

Differences from the reference code, on purpose: the noise is projected onto [-eps, eps] (PGD with sign steps);
eps is searched per model so that every model is compared at the same damage (clean accuracy under noise falls to a
fixed fraction of its accuracy without noise); the backbone features are computed once for the mask step (the mask
never changes the backbone), so the mask costs only head passes; the graph is in inference mode throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scanner.torchview.anatomy import Anatomy
from scanner.torchview.graph import TorchGraph

Noise = dict[str, torch.Tensor]


@dataclass
class Cost:
    """Work done, in samples through the full model (forward = 1, forward + backward = 3) and through the head."""

    forward_equivalents: int = 0
    head_equivalents: int = 0


class BanModel:
    """The backbone/head split of one graph, with noise applied through parameter scales."""

    def __init__(self, graph: TorchGraph, anatomy: Anatomy, cost: Cost) -> None:
        self.graph = graph
        self.anatomy = anatomy
        self.cost = cost

    def scales(self, noise: Noise | None) -> dict[str, torch.Tensor]:
        if not noise:
            return {}
        return {t.param: 1.0 + noise[t.param].view(t.shape) for t in self.anatomy.noise_targets}

    def logits(self, x: torch.Tensor, noise: Noise | None = None, *, backward: bool = False) -> torch.Tensor:
        self.cost.forward_equivalents += len(x) * (3 if backward else 1)
        return self.graph.run({self.graph.input_name: x}, [self.graph.output_name], scales=self.scales(noise))[
            self.graph.output_name
        ].reshape(len(x), -1)

    def features(self, x: torch.Tensor, noise: Noise | None = None) -> torch.Tensor:
        self.cost.forward_equivalents += len(x)
        return self.graph.run({self.graph.input_name: x}, [self.anatomy.feature], scales=self.scales(noise))[
            self.anatomy.feature
        ]

    def head(self, x: torch.Tensor, z: torch.Tensor, *, backward: bool = False) -> torch.Tensor:
        """Logits from feature map z; x is fed too, for graphs whose head reads the input's shape."""
        self.cost.head_equivalents += len(x) * (3 if backward else 1)
        feeds = {self.graph.input_name: x, self.anatomy.feature: z}
        return self.graph.run(feeds, [self.graph.output_name])[self.graph.output_name].reshape(len(x), -1)


def train_mask(
    model: BanModel,
    x: torch.Tensor,
    z: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batches: int,
    batch_size: int,
    lam: float,
    generator: torch.Generator,
    progress: Callable[[], None],
) -> torch.Tensor:
    """Feature mask m in [0,1]: m*z keeps the model's decision, (1-m)*z loses it, m stays sparse.

    Minimises CE(head(m*z), y) - CE(head((1-m)*z), y) + lam * |m|_1 / sg(|m|_1) with Adam (lr 0.01), as the reference
    does: the sparsity term is divided by its own value without gradient, so its pull on each cell is lam / |m|_1,
    of the order of the cross-entropy terms' whatever the feature map's size. Undivided (lam * |m|_1, as an earlier
    version read the reference) it outweighs them by orders of magnitude and the mask collapses to 0 on every model.
    """
    mask = torch.rand(z.shape[1:], generator=generator).to(z.device).requires_grad_(True)
    adam = _Adam(mask, lr=0.01)
    for _ in range(epochs):
        for _ in range(batches):
            index = torch.randint(len(z), (min(batch_size, len(z)),), generator=generator).to(z.device)
            xb, zb, yb = x[index], z[index], y[index]
            norm = mask.abs().sum()
            loss = (
                F.cross_entropy(model.head(xb, mask * zb, backward=True), yb)
                - F.cross_entropy(model.head(xb, (1 - mask) * zb, backward=True), yb)
                + lam * norm / norm.detach().clamp_min(1e-12)
            )
            (grad,) = torch.autograd.grad(loss, [mask])
            with torch.no_grad():
                adam.step(grad)
                mask.clamp_(0.0, 1.0)
        progress()
    return mask.detach()


class _Adam:
    """Adam on one tensor, in place (torch.optim would import torch._dynamo: seconds of start-up per process)."""

    def __init__(self, value: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.value, self.lr, self.betas = value, lr, betas
        self.first = torch.zeros_like(value)
        self.second = torch.zeros_like(value)
        self.steps = 0

    def step(self, grad: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        self.first.mul_(beta1).add_(grad, alpha=1 - beta1)
        self.second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        first = self.first / (1 - beta1**self.steps)
        second = self.second / (1 - beta2**self.steps)
        self.value.sub_(self.lr * first / (second.sqrt() + 1e-8))


def adversarial_noise(
    model: BanModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    generator: torch.Generator,
) -> Noise:
    """Per-channel multiplicative noise in [-eps, eps] that maximises the loss on (x, y): PGD with sign steps."""
    device = x.device
    noise = {
        t.param: ((torch.rand(t.channels, generator=generator) * 2 - 1) * eps).to(device).requires_grad_(True)
        for t in model.anatomy.noise_targets
    }
    step = 2.5 * eps / max(1, steps)
    for _ in range(steps):
        loss = F.cross_entropy(model.logits(x, noise, backward=True), y)
        grads = torch.autograd.grad(loss, list(noise.values()))
        with torch.no_grad():
            for value, grad in zip(noise.values(), grads, strict=True):
                value.add_(step * grad.sign()).clamp_(-eps, eps)
    return {name: value.detach() for name, value in noise.items()}


@dataclass(frozen=True)
class MatchedNoise:
    eps: float
    noise: Noise
    accuracy: float  # on the batch the noise was fitted to
    reached: bool  # whether some eps <= eps_max brought accuracy down to the target


def noise_at_matched_damage(
    model: BanModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    target_accuracy: float,
    eps_min: float,
    eps_max: float,
    first_eps: float,
    probes: int,
    steps: int,
    generator: torch.Generator,
    progress: Callable[[], None],
) -> MatchedNoise:
    """Bisect log(eps) for the noise under which accuracy on (x, y) is closest to `target_accuracy`."""
    low, high = math.log(eps_min), math.log(eps_max)
    eps = min(max(first_eps, eps_min), eps_max)
    best: MatchedNoise | None = None
    for _ in range(probes):
        noise = adversarial_noise(model, x, y, eps=eps, steps=steps, generator=generator)
        with torch.no_grad():
            accuracy = float((model.logits(x, noise).argmax(1) == y).float().mean())
        candidate = MatchedNoise(eps, noise, accuracy, accuracy <= target_accuracy)
        if best is None or abs(accuracy - target_accuracy) < abs(best.accuracy - target_accuracy):
            best = candidate
        if accuracy > target_accuracy:
            low = math.log(eps)
        else:
            high = math.log(eps)
        eps = math.exp((low + high) / 2)
        progress()
    assert best is not None
    return MatchedNoise(best.eps, best.noise, best.accuracy, best.accuracy <= target_accuracy + 0.1)


def prediction_statistics(prefix: str, logits: torch.Tensor, y: torch.Tensor, classes: int) -> dict[str, float]:
    """Accuracy, top-class share, the share of errors that land on the most frequent wrong class."""
    predicted = logits.argmax(1)
    counts = torch.bincount(predicted, minlength=classes).float()
    wrong = predicted[predicted != y]
    wrong_counts = torch.bincount(wrong, minlength=classes).float()
    return {
        f"{prefix}_accuracy": float((predicted == y).float().mean()),
        f"{prefix}_top_share": float(counts.max() / max(1, len(predicted))),
        f"{prefix}_error_top_share": float(wrong_counts.max() / len(wrong)) if len(wrong) else 0.0,
        f"{prefix}_top_class": float(counts.argmax()),
    }
