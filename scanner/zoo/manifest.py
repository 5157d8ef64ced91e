"""The zoo's manifest: one `manifest.json` per zoo directory, listing every model and how it was made.

Format (versioned): ``{"schema": "model-scanner/zoo-manifest/v1", "models": [entry, ...]}``, one entry per ONNX
file, with the keys of `ZooEntry`. Several builds (both families, several seeds) merge into one manifest.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from scanner.zoo.errors import ZooError

MANIFEST_NAME = "manifest.json"
SCHEMA = "model-scanner/zoo-manifest/v1"


@dataclass(frozen=True)
class ZooEntry:
    file: str  # ONNX file name, relative to the zoo directory
    family: str  # shapes32 | digits16 (first zoo); glyphs | textures | scenes (second zoo)
    arch: str  # cnn | cnn_bn | resnet (first zoo); vgg_gap | depthwise | avgpool_mlp | convmixer (second zoo)
    attack: str | None  # None for a clean model
    target: int | None  # the backdoor's target class; None for clean models and all-to-all attacks
    backdoored: bool
    clean_acc: float  # accuracy on held-out clean test images
    asr: float | None  # attack success rate on held-out triggered images; None for clean models
    exporter: str  # legacy | dynamo
    num_classes: int = 10
    input_shape: tuple[int, int, int] = (3, 32, 32)  # one image, NCHW
    clean_data: str = ""  # .npz of held-out clean images for this family, relative to the zoo directory
    seed: int = 0
    trigger: Mapping[str, Any] | None = field(default=None, compare=False)  # Backdoor.to_json(), to re-create it
    train_seconds: float = field(default=0.0, compare=False)
    # Added for the second zoo; entries without them (the first zoo's) read as [0, 1], NCHW, no recipe recorded,
    # not normalised.
    value_range: tuple[float, float] = (0.0, 1.0)  # the inputs the model was trained on
    layout: str = "NCHW"  # the ONNX input's layout; input_shape and the clean data stay NCHW
    recipe: Mapping[str, Any] | None = field(default=None, compare=False)  # the drawn choices (scanner.zoo.second)
    # {"mean": [...], "std": [...]} per channel, applied after value_range (as `model-scanner scan --mean --std`)
    normalization: Mapping[str, list[float]] | None = None

    def path(self, zoo_dir: Path | str) -> Path:
        return Path(zoo_dir) / self.file

    def clean_data_path(self, zoo_dir: Path | str) -> Path:
        return Path(zoo_dir) / self.clean_data

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["trigger"] = dict(self.trigger) if self.trigger is not None else None
        data["value_range"] = list(self.value_range)
        data["recipe"] = dict(self.recipe) if self.recipe is not None else None
        data["normalization"] = dict(self.normalization) if self.normalization is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ZooEntry:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["input_shape"] = tuple(values.get("input_shape", (3, 32, 32)))
        values["value_range"] = tuple(values.get("value_range", (0.0, 1.0)))
        return cls(**values)


def read_manifest(zoo_dir: Path | str) -> list[ZooEntry]:
    """The models listed in `zoo_dir/manifest.json` (empty when there is none yet)."""
    path = Path(zoo_dir) / MANIFEST_NAME
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ZooError(f"cannot read {path}: {error}", hint="delete the manifest and rebuild the zoo") from error
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ZooError(f"{path} is not a {SCHEMA} manifest", hint="rebuild the zoo with this version of model-scanner")
    return [ZooEntry.from_json(entry) for entry in data["models"]]


def write_manifest(zoo_dir: Path | str, entries: Iterable[ZooEntry]) -> None:
    """Write the manifest atomically: readers see the old one or the new one, never half of it."""
    zoo_dir = Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(entries, key=lambda entry: entry.file)
    text = json.dumps({"schema": SCHEMA, "models": [entry.to_json() for entry in ordered]}, indent=1)
    handle, temporary = tempfile.mkstemp(dir=zoo_dir, prefix=".manifest-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        stream.write(text + "\n")
    os.replace(temporary, zoo_dir / MANIFEST_NAME)


def save_npz(path: Path | str, **arrays: Any) -> None:
    """`np.savez_compressed` through a temporary file of this process's own, then renamed: two builds writing the same
    clean data into one directory (several seeds side by side) never rename each other's half-written file."""
    import numpy as np

    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def merge_into_manifest(zoo_dir: Path | str, new_entries: Iterable[ZooEntry]) -> list[ZooEntry]:
    """Add or replace entries (keyed by file name) in the manifest; returns the whole manifest.

    Safe while other processes merge into the same directory (one build per family, side by side).
    """
    zoo_dir = Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    with open(zoo_dir / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        by_file = {entry.file: entry for entry in read_manifest(zoo_dir)}
        by_file.update({entry.file: entry for entry in new_entries})
        write_manifest(zoo_dir, by_file.values())
    return sorted(by_file.values(), key=lambda entry: entry.file)
