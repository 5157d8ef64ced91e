"""Reading a built zoo for fitting: its models as the manifest describes them, each through the real intake, and the
family's clean sample data in a model's own layout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from scanner.detectors.interface import CleanData
from scanner.errors import UsageError
from scanner.findings import InputSpec, Layout, ModelArtifact, Normalization


@dataclass(frozen=True)
class ZooModel:
    """One model of a zoo, as its manifest describes it."""

    path: Path
    family: str
    backdoored: bool
    attack: str  # "clean" for clean models
    architecture: str
    target: int | None = None
    trigger: dict[str, Any] | None = None  # the attack's parameters, as the zoo recorded them
    clean_data: str | None = None  # the family's clean sample .npz, relative to the zoo directory
    value_range: tuple[float, float] = (0.0, 1.0)  # the model's inputs (the second zoo draws [0, 1] or [-1, 1])
    recipe: dict[str, Any] | None = None  # how it was trained, where the zoo recorded it (the second zoo does)
    normalization: Normalization | None = None  # per-channel mean/std after value_range, where the model expects it

    def artifact(self) -> ModelArtifact:
        """This model through the real intake, told its value range and normalisation as a scan would be."""
        return artifact_for(self.path, self.value_range, self.normalization)


@dataclass(frozen=True)
class Zoo:
    directory: Path
    models: tuple[ZooModel, ...]
    manifest: dict[str, Any]

    def clean_data(self, family: str) -> CleanData | None:
        named = next((m.clean_data for m in self.models if m.family == family and m.clean_data), None)
        path = self.directory / (named or f"clean_{family}.npz")
        if not path.exists():
            return None
        return _load_clean(path)

    def clean_data_of(self, model: ZooModel) -> CleanData | None:
        """The clean data the manifest names for `model` (the second zoo's differ per model: size, classes, range),
        else its family's."""
        if model.clean_data and (self.directory / model.clean_data).exists():
            return _load_clean(self.directory / model.clean_data)
        return self.clean_data(model.family)


def read_gate_zoos(directories: Sequence[Path]) -> list[Zoo]:
    """Gate zoos with their clean models only: a gate zoo's part in a calibration (its backdoored models play none)."""
    return [clean_models_of(read_zoo(Path(directory))) for directory in directories]


def clean_models_of(zoo: Zoo) -> Zoo:
    """The zoo with its clean models only."""
    clean = tuple(model for model in zoo.models if not model.backdoored)
    if not clean:
        raise UsageError(f"the gate zoo {zoo.directory} has no clean models", hint="build one with --clean N")
    return replace(zoo, models=clean)


def _load_clean(path: Path) -> CleanData:
    with np.load(path) as data:
        return CleanData(x=np.asarray(data["x"], dtype=np.float32), y=data.get("y", None))


def read_zoo(directory: Path) -> Zoo:
    """The models listed in `directory`/manifest.json."""
    manifest_path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except OSError as error:
        raise UsageError(
            f"cannot read the zoo manifest {manifest_path}: {error.strerror}",
            hint="build a zoo with: model-scanner zoo build --out DIR",
        ) from error
    entries = manifest["models"] if isinstance(manifest, dict) else manifest
    models = tuple(_zoo_model(Path(directory), entry) for entry in entries)
    return Zoo(Path(directory), models, manifest if isinstance(manifest, dict) else {"models": entries})


def _zoo_model(directory: Path, entry: dict[str, Any]) -> ZooModel:
    """One manifest entry (scanner.zoo.manifest.ZooEntry's JSON; an older "backdoor" key is read too)."""
    trigger = entry.get("trigger") or entry.get("backdoor")
    attack = entry.get("attack") or (trigger or {}).get("attack") or "clean"
    backdoored = bool(entry.get("backdoored", trigger is not None))
    target = entry["target"] if "target" in entry else (trigger or {}).get("target")
    low, high = entry.get("value_range") or (0.0, 1.0)
    normalization = entry.get("normalization")
    return ZooModel(
        path=directory / (entry.get("file") or entry["path"]),
        family=str(entry["family"]),
        backdoored=backdoored,
        attack=str(attack) if backdoored else "clean",
        architecture=str(entry.get("arch") or entry.get("architecture") or "unknown"),
        target=target,
        trigger=dict(trigger.get("params", {})) if isinstance(trigger, dict) else None,
        clean_data=entry.get("clean_data") or None,
        value_range=(float(low), float(high)),
        recipe=entry.get("recipe") or None,
        normalization=None
        if not normalization
        else Normalization(mean=tuple(normalization["mean"]), std=tuple(normalization["std"])),
    )


def artifact_for(
    path: Path, value_range: tuple[float, float] = (0.0, 1.0), normalization: Normalization | None = None
) -> ModelArtifact:
    """A zoo model through the real intake (safety checks, input spec read from the graph)."""
    from scanner.intake import load_model

    return load_model(Path(path), value_range=value_range, normalization=normalization)


def in_layout(clean: CleanData, spec: InputSpec) -> CleanData:
    """The zoo's clean data in the model's layout (the first zoo and second-zoo builds before 2026-12-07 store NCHW
    for every model; later second-zoo builds store each model's own layout)."""
    if tuple(clean.x.shape[1:]) != spec.image_shape and spec.layout is Layout.NHWC:
        return CleanData(np.ascontiguousarray(clean.x.transpose(0, 2, 3, 1)), clean.y)
    return clean
