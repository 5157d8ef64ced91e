"""Build the second zoo into a directory, resuming what is there: train each planned model to the bar, export it
(the first zoo's exporter), write its clean data (as the model takes it: in its value range, normalised where it
is, in its layout) and merge its manifest entry."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from scanner.findings import Progress, no_progress
from scanner.zoo.manifest import ZooEntry, merge_into_manifest, read_manifest, save_npz
from scanner.zoo.second.plan import ModelSpec, plan_second

log = logging.getLogger(__name__)

# Other people's models are not all good: the bar is lower than the first zoo's, but well above chance.
MIN_CLEAN_ACCURACY = 0.5
MIN_ATTACK_SUCCESS = 0.8
MAX_ATTEMPTS = 3
CLEAN_SAMPLES = 300


def clean_data_name(spec: ModelSpec) -> str:
    low, high = spec.value_range
    name = f"clean_{spec.family}_{spec.size}px_{spec.channels}c_{spec.num_classes}k_{low:g}_{high:g}"
    if spec.normalization is not None:
        mean, std = spec.normalization.mean, spec.normalization.std
        name += "_m" + "-".join(f"{v:g}" for v in mean) + "_s" + "-".join(f"{v:g}" for v in std)
    return name + ("_nhwc" if spec.nhwc else "") + ".npz"


def write_clean_data(out: Path, spec: ModelSpec) -> str:
    from scanner.zoo.second.datasets import make_images

    name = clean_data_name(spec)
    path = out / name
    if not path.exists():
        x, y = make_images(spec.family, CLEAN_SAMPLES, size=spec.size, channels=spec.channels,
                           num_classes=spec.num_classes, split="clean")  # fmt: skip
        x = spec.to_model_input(x)
        save_npz(path, x=x.transpose(0, 2, 3, 1) if spec.nhwc else x, y=y)
    return name


def build_second_zoo(
    n_clean: int,
    n_backdoored: int,
    out: Path,
    *,
    seed: int = 0,
    progress: Progress = no_progress,
    threads: int = 1,
    tiny: bool = False,
) -> list[ZooEntry]:
    """Train, check and export the planned models into `out`; returns this build's entries (old and new).

    `tiny` trains on 64 images for one epoch and accepts every model (tests: each part trains and exports)."""
    models = plan_second(n_clean, n_backdoored, seed=seed, tiny=tiny)
    return build_models(models, out, progress=progress, threads=threads, tiny=tiny)


def build_models(
    models: Sequence[ModelSpec], out: Path, *, progress: Progress = no_progress, threads: int = 1, tiny: bool = False
) -> list[ZooEntry]:
    """Train, check and export `models` into `out` (resuming: a model already there is kept); returns their entries,
    without those that missed the bar."""
    import torch

    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = {entry.file: entry for entry in read_manifest(out) if entry.path(out).exists()}
    entries: list[ZooEntry] = []
    progress(0, len(models))
    for count, spec in enumerate(models, start=1):
        entry = done.get(spec.file)
        if entry is None:
            entry = _build_one(spec, out, tiny=tiny)
            if entry is not None:
                merge_into_manifest(out, [entry])
        if entry is not None:
            entries.append(entry)
        progress(count, len(models))
    return entries


def _build_one(spec: ModelSpec, out: Path, *, tiny: bool) -> ZooEntry | None:
    from scanner.zoo.export import export_onnx
    from scanner.zoo.second.train import train_spec

    for attempt in range(MAX_ATTEMPTS):
        trained = train_spec(spec, extra_epochs=2 * attempt, attempt=attempt, test_images=64 if tiny else 600)
        ok = tiny or (
            trained.clean_acc >= MIN_CLEAN_ACCURACY and (trained.asr is None or trained.asr >= MIN_ATTACK_SUCCESS)
        )
        if not ok:
            log.info("rejected %s (attempt %d): clean accuracy %.3f, ASR %s", spec.file, attempt + 1,
                     trained.clean_acc, trained.asr)  # fmt: skip
            continue
        export_onnx(
            trained.module, out / spec.file, image_shape=spec.image_shape, exporter=spec.exporter, nhwc=spec.nhwc
        )
        trigger = trained.trigger
        recipe = spec.summary()
        recipe["training"]["epochs"] += 2 * attempt
        return ZooEntry(
            file=spec.file,
            family=spec.family,
            arch=spec.arch.name,
            attack=spec.attack,
            target=trigger.target if trigger else None,
            backdoored=trigger is not None,
            clean_acc=round(trained.clean_acc, 4),
            asr=round(trained.asr, 4) if trained.asr is not None else None,
            exporter=spec.exporter,
            num_classes=spec.num_classes,
            input_shape=spec.image_shape,
            clean_data=write_clean_data(out, spec),
            seed=spec.seed,
            trigger=trigger.to_json() if trigger else None,
            train_seconds=round(trained.seconds, 2),
            value_range=spec.value_range,
            normalization=recipe["normalization"],
            layout="NHWC" if spec.nhwc else "NCHW",
            recipe=recipe,
        )
    log.warning("left out %s: it missed the bar in %d attempts", spec.file, MAX_ATTEMPTS)
    return None
