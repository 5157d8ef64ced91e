"""Every choice for one model of the second zoo, drawn from (build seed, index, clean or backdoored).

The axes the transfer bench groups by (data family, architecture, attack) cycle through a seed-shuffled order, so that
even a small zoo covers each; clean model i and backdoored model i share family and architecture, so neither kind is
told apart by them. Everything else (size, channels, classes, width, BatchNorm, activation, optimiser, schedule, weight
decay, augmentation, label smoothing, epochs, trigger parameters, poison rate, input range or per-channel mean/std
normalisation, layout, exporter) is drawn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scanner.findings import Normalization
from scanner.zoo.second.attacks import SECOND_ATTACKS
from scanner.zoo.second.datasets import DATA_FAMILIES, data_family
from scanner.zoo.second.models import ARCH_ACTIVATIONS, ARCHITECTURES, ArchChoice

GENERATOR = "second"
SIZES = (24, 28, 32, 40, 48, 64)
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))
# A share of the models take (x - mean) / std of [0, 1] images, as most published image models do, with a mean and std
# per channel drawn around the usual ImageNet ones (0.41-0.49 and 0.22-0.23), wider, since others' data differ.
NORMALIZED_SHARE = 0.3
MEANS = (0.3, 0.6)
STDS = (0.15, 0.35)
OPTIMISERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "one_cycle", "step")
# Peak learning rate drawn per optimiser (one-cycle's maximum); measured to train every architecture at 24-64 px.
LEARNING_RATES = {"sgd": (0.03, 0.08), "adam": (2e-3, 5e-3), "adamw": (2e-3, 5e-3)}
EPOCHS = (6, 11)  # drawn from [6, 11), plus the attack's extra epochs
# The avg-pool MLP with dropout and the ConvMixer learnt nothing without BatchNorm (accuracy at chance), nor did the
# depthwise-separable nets even from He initialisation at 2.5x the rate (0.10-0.35 on scenes): only VGG-GAP draws it.
ALWAYS_BATCH_NORM = ("avgpool_mlp", "convmixer", "depthwise")
# Training images: the number of classes times a drawn 110-149 per class, but at least the family's floor. Glyphs' 43
# classes had 60-95 images each; scenes at 2 500 images reached 0.35-0.6 on the depthwise nets (0.54 at 4 500).
IMAGES_PER_CLASS = (110, 150)
MIN_TRAIN_IMAGES = {"glyphs": 2500, "textures": 2000, "scenes": 4000}


@dataclass(frozen=True)
class TrainingRecipe:
    optimiser: str
    learning_rate: float
    schedule: str
    weight_decay: float
    augment: bool
    flip: bool
    label_smoothing: float
    epochs: int
    batch_size: int
    train_images: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    file: str
    index: int
    build_seed: int
    family: str
    size: int
    channels: int
    num_classes: int
    arch: ArchChoice
    recipe: TrainingRecipe
    attack: str | None
    value_range: tuple[float, float]
    nhwc: bool
    exporter: str
    seed: int  # initialisation, batch order, trigger
    normalization: Normalization | None = None  # per channel, after the value range

    def to_model_input(self, x: np.ndarray) -> np.ndarray:
        """Images in [0, 1] (N, C, H, W) as this model takes them: in its value range, then normalised."""
        scale, shift = self.input_affine
        return np.asarray(x * scale + shift, dtype=np.float32)

    @property
    def input_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (scale, shift), shaped (C, 1, 1), that `to_model_input` applies."""
        low, high = self.value_range
        normalization = self.normalization or Normalization((0.0,) * self.channels, (1.0,) * self.channels)
        mean, std = normalization.mean, normalization.std
        scale = (high - low) / np.asarray(std, dtype=np.float32)
        shift = (low - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
        return scale.reshape(-1, 1, 1).astype(np.float32), shift.reshape(-1, 1, 1).astype(np.float32)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def summary(self) -> dict[str, Any]:
        """The drawn choices as plain JSON (the manifest's `recipe`)."""
        return {
            "generator": GENERATOR,
            "architecture": asdict(self.arch),
            "training": self.recipe.to_json(),
            "value_range": list(self.value_range),
            "normalization": None if self.normalization is None else asdict(self.normalization),
            "layout": "NHWC" if self.nhwc else "NCHW",
        }


def _cycled(names: tuple[str, ...], build_seed: int, salt: int, index: int) -> str:
    order = np.random.default_rng([build_seed, salt]).permutation(len(names))
    return names[int(order[index % len(names)])]


def draw_model(build_seed: int, index: int, backdoored: bool, *, tiny: bool = False) -> ModelSpec:
    """Model `index` of a build; `tiny` shrinks data and epochs (tests only: every axis drawn, nothing trained long)."""
    rng = np.random.default_rng([build_seed, index, int(backdoored), 0x20])
    family = _cycled(tuple(DATA_FAMILIES), build_seed, 1, index)
    arch_name = _cycled(tuple(ARCHITECTURES), build_seed, 2, index)  # 3 and 4 are coprime: 12 models cover every pair
    attack = _cycled(tuple(SECOND_ATTACKS), build_seed, 3, index) if backdoored else None
    spec = data_family(family)
    size = int(rng.choice(SIZES))
    channels = int(rng.choice(spec.channels))
    normalization = _draw_normalization(build_seed, index, backdoored, channels)
    num_classes = int(rng.integers(spec.min_classes, spec.max_classes + 1))
    batch_norm = bool(rng.random() < 0.5) or arch_name in ALWAYS_BATCH_NORM
    arch = ArchChoice(
        name=arch_name,
        width=int(rng.choice((8, 12, 16))),
        batch_norm=batch_norm,
        activation=str(rng.choice(ARCH_ACTIVATIONS[arch_name])),
        depth=int(rng.integers(2, 4)),  # depth 1 sees too little of a glyph or a scene object before pooling
    )
    # Without BatchNorm, plain SGD at these rates stalls small nets (VGG-GAP reached 0.06): those draw an adaptive one
    # at a lower rate.
    optimiser = str(rng.choice(OPTIMISERS if batch_norm else OPTIMISERS[1:]))
    low, high = LEARNING_RATES[optimiser]
    recipe = TrainingRecipe(
        optimiser=optimiser,
        learning_rate=round(float(rng.uniform(low, high) if batch_norm else rng.uniform(low / 2, high / 2)), 4),
        schedule=str(rng.choice(SCHEDULES)),
        weight_decay=float(rng.choice((0.0, 1e-4, 5e-4))),
        augment=bool(rng.integers(2)),
        flip=family != "glyphs" and bool(rng.integers(2)),
        label_smoothing=float(rng.choice((0.0, 0.0, 0.05, 0.1))),
        epochs=1 if tiny else int(rng.integers(*EPOCHS)) + (SECOND_ATTACKS[attack].extra_epochs if attack else 0),
        batch_size=int(rng.choice((32, 64))),
        train_images=64 if tiny else max(MIN_TRAIN_IMAGES[family], num_classes * int(rng.integers(*IMAGES_PER_CLASS))),
    )
    drawn_range = VALUE_RANGES[int(rng.random() < 0.4)]  # drawn even when normalised: the later draws stay as they were
    return ModelSpec(
        file=f"{GENERATOR}-s{build_seed}-{'bd' if backdoored else 'clean'}-{index:03d}.onnx",
        index=index,
        build_seed=build_seed,
        family=family,
        size=size,
        channels=channels,
        num_classes=num_classes,
        arch=arch,
        recipe=recipe,
        attack=attack,
        value_range=(0.0, 1.0) if normalization else drawn_range,
        nhwc=bool(rng.random() < 0.3),
        exporter=str(rng.choice(("legacy", "dynamo"))),
        seed=int(rng.integers(2**31)),
        normalization=normalization,
    )


def _draw_normalization(build_seed: int, index: int, backdoored: bool, channels: int) -> Normalization | None:
    """Its own stream, so that adding this axis left every other draw of a seed as it was."""
    rng = np.random.default_rng([build_seed, index, int(backdoored), 0x21])
    if rng.random() >= NORMALIZED_SHARE:
        return None
    mean = tuple(round(float(v), 3) for v in rng.uniform(*MEANS, size=channels))
    std = tuple(round(float(v), 3) for v in rng.uniform(*STDS, size=channels))
    return Normalization(mean=mean, std=std)


def plan_second(n_clean: int, n_backdoored: int, *, seed: int = 0, tiny: bool = False) -> list[ModelSpec]:
    """The build's models, clean and backdoored interleaved: a build stopped early is still balanced."""
    models = []
    for i in range(max(n_clean, n_backdoored)):
        if i < n_clean:
            models.append(draw_model(seed, i, False, tiny=tiny))
        if i < n_backdoored:
            models.append(draw_model(seed, i, True, tiny=tiny))
    return models
