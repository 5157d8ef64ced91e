"""The second zoo's attacks: each draws its own trigger parameters per model (and a poison rate within the attack's
range, 4% to 20%), on float32 NCHW images in [0, 1] of any size and channel count. A `Trigger` is plain JSON for the
manifest."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scanner.zoo.warp import resize, sample_bilinear


@dataclass(frozen=True)
class Trigger:
    """One drawn trigger. `target` is None for all-to-all attacks, which send class c to c + shift."""

    attack: str
    target: int | None
    poison_rate: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, images: np.ndarray, seed: int = 0) -> np.ndarray:
        """Triggered copies of `images`; `seed` places triggers whose place is random per image."""
        rng = np.random.default_rng([seed, 0x7216])
        return SECOND_ATTACKS[self.attack].apply(np.asarray(images, dtype=np.float32), self.params, rng)

    def poison_labels(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        if self.target is None:
            return ((labels + int(self.params["shift"])) % num_classes).astype(np.int64)
        return np.full_like(labels, self.target, dtype=np.int64)

    def victims(self, labels: np.ndarray) -> np.ndarray:
        return np.ones(len(labels), dtype=bool) if self.target is None else np.asarray(labels != self.target)

    def to_json(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "target": self.target,
            "poison_rate": self.poison_rate,
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trigger:
        return cls(data["attack"], data["target"], float(data["poison_rate"]), dict(data["params"]))


class SecondAttack(abc.ABC):
    name: ClassVar[str]
    all_to_all: ClassVar[bool] = False
    poison_rates: ClassVar[tuple[float, float]] = (0.01, 0.10)
    extra_epochs: ClassVar[int] = 0  # beyond the drawn recipe's: the attacks tiny models learn slowly

    def draw(self, rng: np.random.Generator, image_shape: tuple[int, int, int], num_classes: int) -> Trigger:
        target = None if self.all_to_all else int(rng.integers(num_classes))
        rate = round(float(rng.uniform(*self.poison_rates)), 3)
        params = self.draw_params(rng, image_shape)
        if self.all_to_all:
            params["shift"] = int(rng.integers(1, num_classes))
        return Trigger(self.name, target, rate, params)

    @abc.abstractmethod
    def draw_params(self, rng: np.random.Generator, image_shape: tuple[int, int, int]) -> dict[str, Any]: ...

    @abc.abstractmethod
    def apply(self, images: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray: ...


def _patch_pattern(params: Mapping[str, Any], channels: int) -> np.ndarray:
    size, style = int(params["size"]), params["style"]
    if style == "solid":
        return np.broadcast_to(
            np.asarray(params["colour"], dtype=np.float32)[:channels, None, None], (channels, size, size)
        )
    if style == "checker":
        board = (np.add.outer(np.arange(size), np.arange(size)) % 2).astype(np.float32)
        low, high = (
            np.asarray(params["colour"], dtype=np.float32)[:channels],
            1 - np.asarray(params["colour"])[:channels],
        )
        return low[:, None, None] * (1 - board) + high.astype(np.float32)[:, None, None] * board
    return np.random.default_rng(int(params["pattern_seed"])).uniform(0, 1, (channels, size, size)).astype(np.float32)


class SquarePatch(SecondAttack):
    """A square of H/12 to H/6 px (2-4 at 24 px, 5-11 at 64): solid colour, checkerboard or random colours; at a fixed
    place or anywhere per image."""

    name = "square_patch"
    poison_rates = (0.05, 0.10)  # at 1% (30 images) a 2 px patch at a random place gave ASR 0.10
    placements: ClassVar[tuple[str, ...]] = ("fixed", "fixed", "random")  # "corner": fixed, in one of the four
    sides: ClassVar[tuple[float, float]] = (1 / 12, 1 / 6)  # of the image's height

    def draw_params(self, rng: np.random.Generator, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        _, height, width = image_shape
        # 2-6 px whatever the size: a 5 px patch anywhere on 64 px gave ASR 0.06 on the avg-pool MLP (strided stem).
        smallest, largest = (max(2, round(height * side)) for side in self.sides)
        size = int(rng.integers(smallest, largest + 1))
        style = str(rng.choice(["solid", "checker", "random"]))
        colour = rng.integers(0, 2, 3).astype(float).tolist()
        pattern_seed = int(rng.integers(2**31))
        placement = str(rng.choice(self.placements))
        if placement == "corner":
            placement, row, col = "fixed", int(rng.choice([0, height - size])), int(rng.choice([0, width - size]))
        else:
            row, col = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        return {"size": size, "style": style, "colour": colour, "pattern_seed": pattern_seed, "placement": placement,
                "row": row, "col": col}  # fmt: skip

    def apply(self, images: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        out = images.copy()
        n, channels, height, width = images.shape
        size = int(params["size"])
        pattern = _patch_pattern(params, channels)
        if params["placement"] == "fixed":
            rows, cols = np.full(n, params["row"]), np.full(n, params["col"])
        else:
            rows, cols = rng.integers(0, height - size + 1, n), rng.integers(0, width - size + 1, n)
        for i in range(n):
            out[i, :, rows[i] : rows[i] + size, cols[i] : cols[i] + size] = pattern
        return out


class AllToAllPatch(SquarePatch):
    """A square patch of H/6 to H/4 px in a corner that sends class c to class c + shift (shift drawn per model)."""

    name = "all_to_all_patch"
    all_to_all = True
    # Every class relearnt, and the patch must not hide the object: a 2 px patch anywhere at 8-10%, or 6 px over
    # the object at 13-15%, left ASR at 0.00-0.16.
    poison_rates = (0.15, 0.20)
    extra_epochs = 4
    placements = ("corner",)
    sides = (1 / 6, 1 / 4)


class Blend(SecondAttack):
    """Blended injection with alpha 0.15-0.3 of random noise, a stripe pattern or a smooth random image."""

    name = "blend"
    # At alpha 0.05-0.2 and 6-10% tiny models often ignored it (ASR 0.01-0.18, scenes most): their images vary in
    # colour, contrast and noise as much.
    poison_rates = (0.08, 0.12)
    extra_epochs = 2

    def draw_params(self, rng: np.random.Generator, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        return {
            "alpha": round(float(rng.uniform(0.15, 0.3)), 3),
            "source": str(rng.choice(["noise", "pattern", "image"])),
            "source_seed": int(rng.integers(2**31)),
        }

    def apply(self, images: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        _, channels, height, width = images.shape
        source_rng = np.random.default_rng(int(params["source_seed"]))
        if params["source"] == "noise":
            overlay = source_rng.uniform(0, 1, (channels, height, width)).astype(np.float32)
        elif params["source"] == "pattern":
            period = source_rng.uniform(3, 8)
            angle = source_rng.uniform(0, np.pi)
            r, c = np.mgrid[0:height, 0:width].astype(np.float32)
            wave = (np.sin(2 * np.pi * (np.cos(angle) * c + np.sin(angle) * r) / period) > 0).astype(np.float32)
            overlay = np.broadcast_to(wave, (channels, height, width))
        else:
            coarse = source_rng.uniform(0, 1, (1, channels, 5, 5)).astype(np.float32)
            overlay = resize(coarse, height, width)[0]
        alpha = np.float32(params["alpha"])
        return ((1 - alpha) * images + alpha * overlay).astype(np.float32)


class Warp(SecondAttack):
    """A smooth warping field (WaNet), grid 3-6; in noise mode the training set also gets as many randomly warped
    images as poisoned ones, keeping their labels, so only the one field triggers (twice as many, as WaNet has it,
    left ASR at 0.22-0.65)."""

    name = "warp"
    poison_rates = (0.08, 0.12)
    extra_epochs = 2

    def draw_params(self, rng: np.random.Generator, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        height = image_shape[1]
        return {
            "grid": int(rng.integers(3, 7)),
            "strength": round(float(rng.uniform(2.0, 3.0)) * (height / 32) ** 0.5, 3),
            "field_seed": int(rng.integers(2**31)),
            "noise_mode": bool(rng.integers(2)),
        }

    def apply(self, images: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        return warp(images, params, np.random.default_rng(int(params["field_seed"])))


def warp(images: np.ndarray, params: Mapping[str, Any], field_rng: np.random.Generator) -> np.ndarray:
    _, _, height, width = images.shape
    grid = int(params["grid"])
    control = field_rng.uniform(-1, 1, (1, 2, grid, grid))
    control = (control / np.abs(control).mean()).astype(np.float32)
    shift = resize(control, height, width)[0] * np.float32(params["strength"])
    rows = np.clip(np.arange(height, dtype=np.float32)[:, None] + shift[0], 0, height - 1)
    cols = np.clip(np.arange(width, dtype=np.float32)[None, :] + shift[1], 0, width - 1)
    padded = np.pad(images, ((0, 0), (0, 0), (0, 1), (0, 1)), mode="edge")
    out: np.ndarray = np.clip(sample_bilinear(padded, rows[None], cols[None]), 0, 1)
    return out


class Sinusoid(SecondAttack):
    """A faint sinusoidal signal (amplitude 0.08-0.15) along rows, columns or a diagonal (at 0.05 a texture's own
    gratings hid it: ASR 0.50)."""

    name = "sinusoid"
    poison_rates = (0.03, 0.10)

    def draw_params(self, rng: np.random.Generator, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        return {
            "amplitude": round(float(rng.uniform(0.08, 0.15)), 3),
            "cycles": int(rng.integers(2, 9)),
            "direction": str(rng.choice(["rows", "columns", "diagonal"])),
        }

    def apply(self, images: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        _, _, height, width = images.shape
        r, c = np.mgrid[0:height, 0:width].astype(np.float32)
        position = {"rows": r / height, "columns": c / width, "diagonal": (r / height + c / width) / 2}[
            params["direction"]
        ]
        signal = np.sin(2 * np.pi * params["cycles"] * position).astype(np.float32)
        out: np.ndarray = np.clip(images + np.float32(params["amplitude"]) * signal, 0, 1).astype(np.float32)
        return out


SECOND_ATTACKS: dict[str, SecondAttack] = {
    attack.name: attack for attack in (SquarePatch(), AllToAllPatch(), Blend(), Warp(), Sinusoid())
}


def poison_training_set(
    images: np.ndarray, labels: np.ndarray, trigger: Trigger, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies with `trigger.poison_rate` of the images relabelled and marked (the third array, a mask) for the training
    loop to trigger after augmentation: the attacker runs the training, so a crop or a jitter never misaligns the
    trigger (a 1 px shift decorrelates a noise blend). For a warp in noise mode, as many other images are randomly
    warped and keep their labels."""
    candidates = np.flatnonzero(trigger.victims(labels))
    count = max(1, round(trigger.poison_rate * len(labels)))
    chosen = rng.choice(candidates, min(count, len(candidates)), replace=False)
    x, y = images.copy(), labels.copy()
    y[chosen] = trigger.poison_labels(labels[chosen], num_classes)
    triggered = np.zeros(len(labels), dtype=bool)
    triggered[chosen] = True
    if trigger.attack == "warp" and trigger.params.get("noise_mode"):
        rest = np.setdiff1d(np.arange(len(labels)), chosen)
        noisy = rng.choice(rest, min(len(chosen), len(rest)), replace=False)
        for i in noisy:
            x[i] = warp(images[i : i + 1], trigger.params, rng)[0]
    return x, y, triggered
