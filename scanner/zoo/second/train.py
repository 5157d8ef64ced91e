"""Train one model of the second zoo with its drawn recipe, and measure clean accuracy and attack success rate.

The optimiser, schedule, weight decay, augmentation and label smoothing come from the spec; the first zoo's loop knows
one recipe only, so this loop is the second zoo's own. Accuracy is measured with the first zoo's `predict`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from scanner.zoo.second.attacks import SECOND_ATTACKS, Trigger, poison_training_set
from scanner.zoo.second.datasets import make_images
from scanner.zoo.second.models import build_module
from scanner.zoo.second.plan import ModelSpec, TrainingRecipe
from scanner.zoo.train import accuracy, predict

log = logging.getLogger(__name__)

TEST_IMAGES = 600


@dataclass(frozen=True)
class SecondTrained:
    module: Any  # torch.nn.Module in eval mode, taking NCHW input as `ModelSpec.to_model_input` makes it
    spec: ModelSpec
    trigger: Trigger | None
    clean_acc: float
    asr: float | None
    seconds: float


@lru_cache(maxsize=6)
def images_for(
    family: str, n: int, size: int, channels: int, num_classes: int, split: str
) -> tuple[np.ndarray, np.ndarray]:
    return make_images(family, n, size=size, channels=channels, num_classes=num_classes, split=split)


def train_spec(
    spec: ModelSpec, *, extra_epochs: int = 0, attempt: int = 0, test_images: int = TEST_IMAGES
) -> SecondTrained:
    rng = np.random.default_rng([spec.seed, attempt])
    data = (spec.family, spec.size, spec.channels, spec.num_classes)
    x_train, y_train = images_for(*data[:1], spec.recipe.train_images, *data[1:], "train")
    x_test, y_test = images_for(*data[:1], test_images, *data[1:], "test")
    trigger, triggered = None, None
    if spec.attack is not None:
        trigger = SECOND_ATTACKS[spec.attack].draw(
            np.random.default_rng([spec.seed, 0x7A]), spec.image_shape, spec.num_classes
        )
        x_train, y_train, triggered = poison_training_set(x_train, y_train, trigger, spec.num_classes, rng)
    started = time.process_time()
    torch.manual_seed(int(rng.integers(2**31)))
    module = build_module(spec.arch, spec.channels, spec.num_classes, spec.size)
    _fit(module, x_train, y_train, spec, spec.recipe.epochs + extra_epochs, rng, trigger, triggered)
    right = predict(module, spec.to_model_input(x_test)) == y_test
    clean_acc = float(right.mean())
    asr = None
    if trigger is not None:
        # Over the images the model gets right when clean (an all-to-all trigger can only move a class the model
        # knows: on scenes at 0.6 clean accuracy, ASR over all images could not reach the bar).
        victims = trigger.victims(y_test) & right
        attacked = spec.to_model_input(trigger.apply(x_test[victims], seed=1))
        asr = accuracy(module, attacked, trigger.poison_labels(y_test[victims], spec.num_classes))
    seconds = time.process_time() - started
    log.info("trained %s (%s %s %s): clean acc %.3f, asr %s (%.1f s)", spec.file, spec.family, spec.arch.name,
             spec.attack, clean_acc, asr, seconds)  # fmt: skip
    return SecondTrained(module, spec, trigger, clean_acc, asr, seconds)


def _optimiser(module: nn.Module, recipe: TrainingRecipe) -> torch.optim.Optimizer:
    parameters, lr, decay = module.parameters(), recipe.learning_rate, recipe.weight_decay
    if recipe.optimiser == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=decay, nesterov=True)
    if recipe.optimiser == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=decay or 1e-2)


def _schedule(optimiser: torch.optim.Optimizer, recipe: TrainingRecipe, total: int) -> Any:
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
    if recipe.schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=recipe.learning_rate, total_steps=total)
    return torch.optim.lr_scheduler.StepLR(optimiser, step_size=max(1, int(total * 0.7)), gamma=0.1)


def _augment(batch: torch.Tensor, recipe: TrainingRecipe, generator: torch.Generator) -> torch.Tensor:
    """Random crop (pad 2, shift), horizontal flip where the recipe allows, brightness and contrast jitter."""
    n, _, height, width = batch.shape
    padded = nn.functional.pad(batch, (2, 2, 2, 2), mode="replicate")
    dr, dc = (int(v) for v in torch.randint(0, 5, (2,), generator=generator))
    out = padded[:, :, dr : dr + height, dc : dc + width]
    if recipe.flip:
        flip = torch.rand(n, generator=generator) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.2
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean + brightness).clamp(0, 1)


def _fit(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    epochs: int,
    rng: np.random.Generator,
    trigger: Trigger | None = None,
    triggered: np.ndarray | None = None,
) -> None:
    """Train in place; the images `triggered` marks get `trigger` after augmentation, in each batch."""
    recipe = spec.recipe
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    marked = torch.from_numpy(triggered if triggered is not None else np.zeros(len(x), dtype=bool))
    steps = epochs * -(-len(x) // recipe.batch_size)
    optimiser = _optimiser(module, recipe)
    schedule = _schedule(optimiser, recipe, steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    scale, shift = (torch.from_numpy(v) for v in spec.input_affine)
    module.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for start in range(0, len(x), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            inputs = images[batch]
            if recipe.augment:
                inputs = _augment(inputs, recipe, generator)
            mask = marked[batch]
            if trigger is not None and bool(mask.any()):
                inputs[mask] = torch.from_numpy(trigger.apply(inputs[mask].numpy(), seed=int(rng.integers(2**31))))
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(module(inputs * scale + shift), labels[batch])
            loss.backward()
            optimiser.step()
            schedule.step()
    module.eval()
