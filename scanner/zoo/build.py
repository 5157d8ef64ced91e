"""Build a zoo of clean and backdoored models of one family into a directory, resuming what is already there.

The plan is a pure function of (family, counts, seed): model i of each kind always gets the same architecture,
exporter, attack and seeds, so a re-run skips finished models and a larger run extends a smaller one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanner.findings import Progress, no_progress
from scanner.zoo.attacks import ATTACKS
from scanner.zoo.datasets import FAMILIES, family_named, make_dataset
from scanner.zoo.errors import ZooError
from scanner.zoo.manifest import ZooEntry, merge_into_manifest, read_manifest, save_npz

log = logging.getLogger(__name__)

ARCH_ORDER = ("cnn", "cnn_bn", "resnet")
EXPORTER_ORDER = ("legacy", "dynamo")
ATTACK_ORDER = ("patch", "blend", "wanet", "sinusoidal", "all_to_all")
# Pairings that do not reach the bar with our short recipes: the plain ConvNets do not learn the all-to-all
# relabelling (shapes32 at 6 epochs: cnn ASR 0.35-0.40, cnn_bn 0.88-0.93, resnet 0.96-1.00; bench/RESULTS.md).
# The planner gives such a slot the next architecture in the cycle instead.
NEVER_PAIRED = frozenset({("cnn", "all_to_all"), ("cnn_bn", "all_to_all")})
# The bar every model must clear, else it is retrained with fresh seeds (and one more epoch each time).
MIN_CLEAN_ACCURACY = 0.85
MIN_ATTACK_SUCCESS = 0.90
MAX_ATTEMPTS = 4
CLEAN_SAMPLES = 500
CLEAN_DATA_SEED = 3


@dataclass(frozen=True)
class PlannedModel:
    file: str
    family: str
    arch: str
    exporter: str
    attack: str | None
    index: int
    seed: int
    num_classes: int


def plan(
    family: str,
    n_clean: int,
    n_backdoored: int,
    *,
    seed: int = 0,
    num_classes: int = 10,
    archs: Sequence[str] = ARCH_ORDER,
    attacks: Sequence[str] = ATTACK_ORDER,
) -> list[PlannedModel]:
    """Which models a build makes: architectures, exporters and attacks cycle through all pairings but NEVER_PAIRED."""
    family_named(family)
    for name in attacks:
        if name not in ATTACKS:
            raise ZooError(f"unknown attack {name!r}", hint=f"choose from: {', '.join(ATTACKS)}")
    prefix = family if num_classes == 10 else f"{family}c{num_classes}"
    # Start each family's attack cycle elsewhere, so that small zoos of both families cover more attacks.
    attack_offset = list(FAMILIES).index(family) * 3
    planned = []
    for kind, count in (("clean", n_clean), ("bd", n_backdoored)):
        for i in range(count):
            attack = None if kind == "clean" else attacks[(i + attack_offset) % len(attacks)]
            arch = _architecture(archs, i, attack)
            planned.append(
                PlannedModel(
                    file=f"{prefix}-s{seed}-{kind}-{i:03d}.onnx",
                    family=family,
                    arch=arch,
                    exporter=EXPORTER_ORDER[(i + (kind == "bd")) % len(EXPORTER_ORDER)],
                    attack=attack,
                    index=i,
                    seed=seed,
                    num_classes=num_classes,
                )
            )
    return planned


def _architecture(archs: Sequence[str], index: int, attack: str | None) -> str:
    """The architecture of slot `index`: the cycle's, or the next one after it that may carry `attack`."""
    for step in range(len(archs)):
        arch = archs[(index + step) % len(archs)]
        if (arch, attack) not in NEVER_PAIRED:
            return arch
    raise ZooError(
        f"no architecture among {', '.join(archs)} can carry the {attack} attack",
        hint=f"add resnet to the architectures, or leave {attack} out of the attacks",
    )


def clean_data_name(family: str, num_classes: int = 10) -> str:
    return f"clean_{family}.npz" if num_classes == 10 else f"clean_{family}_c{num_classes}.npz"


def write_clean_data(out: Path, family: str, num_classes: int = 10) -> Path:
    """Held-out clean images for `family` (never seen in training), in the models' layout and range."""
    path = out / clean_data_name(family, num_classes)
    if not path.exists():
        x, y = make_dataset(family, CLEAN_SAMPLES, CLEAN_DATA_SEED, split="test", num_classes=num_classes)
        save_npz(path, x=x, y=y)
    return path


def build_zoo(
    family: str,
    n_clean: int,
    n_backdoored: int,
    out: Path,
    *,
    seed: int = 0,
    progress: Progress = no_progress,
    num_classes: int = 10,
    archs: Sequence[str] = ARCH_ORDER,
    attacks: Sequence[str] = ATTACK_ORDER,
    threads: int = 2,
) -> list[ZooEntry]:
    """Train, check and export the planned models into `out`; returns this build's entries (old and new).

    Models already listed in `out/manifest.json` with their file present are skipped. A model that misses the bar
    after `MAX_ATTEMPTS` trainings is left out (logged); the returned list is then shorter than asked for.
    """
    import torch

    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = plan(family, n_clean, n_backdoored, seed=seed, num_classes=num_classes, archs=archs, attacks=attacks)
    clean_data = write_clean_data(out, family, num_classes).name
    done = {entry.file: entry for entry in read_manifest(out) if entry.path(out).exists()}
    entries: list[ZooEntry] = []
    progress(0, len(models))
    for count, model in enumerate(models, start=1):
        entry = done.get(model.file)
        if entry is None:
            entry = _build_one(model, out, clean_data)
            if entry is not None:
                merge_into_manifest(out, [entry])
        if entry is not None:
            entries.append(entry)
        progress(count, len(models))
    return entries


def _build_one(model: PlannedModel, out: Path, clean_data: str) -> ZooEntry | None:
    from scanner.zoo.export import export_onnx
    from scanner.zoo.train import train_model

    family_index = list(FAMILIES).index(model.family)
    for attempt in range(MAX_ATTEMPTS):
        model_seed = int(
            np.random.SeedSequence(
                [model.seed, family_index, model.num_classes, model.attack is not None, model.index, attempt]
            ).generate_state(1)[0]
        )
        trained = train_model(
            model.family,
            model.arch,
            attack=model.attack,
            num_classes=model.num_classes,
            seed=model_seed,
            extra_epochs=attempt,
        )
        ok = trained.clean_acc >= MIN_CLEAN_ACCURACY and (trained.asr is None or trained.asr >= MIN_ATTACK_SUCCESS)
        if not ok:
            log.info(
                "rejected %s (attempt %d): clean accuracy %.3f, ASR %s",
                model.file,
                attempt + 1,
                trained.clean_acc,
                trained.asr,
            )
            continue
        export_onnx(trained.module, out / model.file, image_shape=trained.image_shape, exporter=model.exporter)
        backdoor = trained.backdoor
        return ZooEntry(
            file=model.file,
            family=model.family,
            arch=model.arch,
            attack=model.attack,
            target=backdoor.target if backdoor else None,
            backdoored=backdoor is not None,
            clean_acc=round(trained.clean_acc, 4),
            asr=round(trained.asr, 4) if trained.asr is not None else None,
            exporter=model.exporter,
            num_classes=model.num_classes,
            input_shape=trained.image_shape,
            clean_data=clean_data,
            seed=model_seed,
            trigger=backdoor.to_json() if backdoor else None,
            train_seconds=round(trained.seconds, 2),
        )
    log.warning("left out %s: it missed the bar in %d attempts", model.file, MAX_ATTEMPTS)
    return None
