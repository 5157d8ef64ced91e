"""Train one clean or backdoored classifier and measure it: clean accuracy and attack success rate (ASR)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from scanner.zoo.attacks import ATTACKS, Backdoor, poison
from scanner.zoo.datasets import family_named, make_dataset
from scanner.zoo.models import ARCHITECTURES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """How much data and training a family needs to reach the zoo's bar (clean accuracy >= 85%, ASR >= 90%)."""

    train_images: int
    test_images: int
    epochs: int
    batch_size: int = 128
    learning_rate: float = 3e-3


RECIPES: dict[str, Recipe] = {
    "shapes32": Recipe(train_images=8_000, test_images=1_000, epochs=3, learning_rate=5e-3),
    "digits16": Recipe(train_images=5_000, test_images=1_000, epochs=3, learning_rate=1e-2),
}

# Data seeds are fixed per family: every model of a family sees the same clean images, only the trigger,
# the initialisation and the batch order differ.
TRAIN_DATA_SEED = 1
TEST_DATA_SEED = 2


@dataclass(frozen=True)
class TrainedModel:
    module: Any  # torch.nn.Module, in eval mode
    family: str
    arch: str
    num_classes: int
    backdoor: Backdoor | None
    clean_acc: float
    asr: float | None
    seconds: float

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return family_named(self.family).image_shape


@lru_cache(maxsize=4)
def _data(family: str, split: str, n: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    seed = TRAIN_DATA_SEED if split == "train" else TEST_DATA_SEED
    return make_dataset(family, n, seed, split=split, num_classes=num_classes)


def train_model(
    family: str,
    arch: str,
    *,
    attack: str | None = None,
    backdoor: Backdoor | None = None,
    num_classes: int = 10,
    seed: int = 0,
    extra_epochs: int = 0,
) -> TrainedModel:
    """Train one model of `arch` on `family`; backdoored when `attack` (a random trigger) or `backdoor` is given."""
    spec = family_named(family)
    recipe = RECIPES[family]
    rng = np.random.default_rng([seed, 0xB4D])
    if backdoor is None and attack is not None:
        backdoor = ATTACKS[attack].sample(rng, spec.image_shape, num_classes)
    x_train, y_train = _data(family, "train", recipe.train_images, num_classes)
    x_test, y_test = _data(family, "test", recipe.test_images, num_classes)
    if backdoor is not None:
        x_train, y_train = poison(x_train, y_train, backdoor, num_classes, rng)

    started = time.process_time()
    torch.manual_seed(int(rng.integers(2**31)))
    module = ARCHITECTURES[arch](spec.channels, num_classes, spec.size)
    epochs = recipe.epochs + (ATTACKS[backdoor.attack].extra_epochs if backdoor else 0) + extra_epochs
    _fit(module, x_train, y_train, recipe, epochs, rng)
    clean_acc = accuracy(module, x_test, y_test)
    asr = None
    if backdoor is not None:
        victims = backdoor.victims(y_test)
        asr = accuracy(module, backdoor.apply(x_test[victims]), backdoor.poison_labels(y_test[victims], num_classes))
    seconds = time.process_time() - started  # CPU time: comparable however busy the machine is
    log.info(
        "trained %s %s %s: clean acc %.3f, asr %s (%.1f s)",
        family,
        arch,
        backdoor and backdoor.attack,
        clean_acc,
        asr,
        seconds,
    )
    return TrainedModel(module, family, arch, num_classes, backdoor, clean_acc, asr, seconds)


def _fit(
    module: nn.Module, x: np.ndarray, y: np.ndarray, recipe: Recipe, epochs: int, rng: np.random.Generator
) -> None:
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    steps_per_epoch = -(-len(x) // recipe.batch_size)
    optimiser = torch.optim.Adam(module.parameters(), lr=recipe.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.learning_rate, total_steps=epochs * steps_per_epoch, pct_start=0.25
    )
    loss_fn = nn.CrossEntropyLoss()
    module.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for start in range(0, len(x), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(module(images[batch]), labels[batch])
            loss.backward()
            optimiser.step()
            schedule.step()
    module.eval()


@torch.no_grad()
def predict(module: nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    module.eval()
    out = [module(torch.from_numpy(x[i : i + batch_size])).argmax(1).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(module, x) == y).mean()) if len(y) else float("nan")
