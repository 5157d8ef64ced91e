"""Calibrating BAN on a zoo: per-model statistics (cached on disk), a logistic fit, honest cross-validated metrics.

Used by `model-scanner detector train --detector ban` and by bench/ban_*.py. Needs scikit-learn to fit; the result
is the numpy-only JSON that BanDetector loads (scanner/detectors/data/ban_v1.json).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from scanner import __version__
from scanner.calibration.cache_files import store_atomically
from scanner.calibration.gate import GATE_ALPHA, folds_description, gate_folds, gate_offset, quantile_of
from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.zoos import Zoo, ZooModel, in_layout, read_gate_zoos, read_zoo
from scanner.detectors.ban.detector import STATISTICS_VERSION, BanDetector, BanSettings
from scanner.detectors.ban.universal import RADII, statistic_name
from scanner.detectors.interface import DetectionContext
from scanner.detectors.logistic import LogisticCalibration, fit_logistic
from scanner.errors import UsageError
from scanner.findings import Progress, no_progress

log = logging.getLogger(__name__)

# The statistics the shipped calibration reads: under adversarial neuron noise at matched damage, the predictions'
# top-class share, error concentration and accuracy, and the noise level (docs/detectors.md, "BAN": top-class share
# and accuracy under noise); the same through the feature mask's complement, with and without noise (BAN's negative
# path); and how easily one input-space perturbation per class sends held-out images to that class, at three radii
# (scanner.detectors.ban.universal); and whether the easiest perturbation's class is the class the noisy model
# collapses onto (`target_agreement`). Class indices (`*_top_class`) are never features: they name a class, they do
# not measure. Out-of-fold AUC of each part on the 220-model benchmark zoo: bench/RESULTS.md.
NEURON_NOISE_FEATURES = (
    "noisy_top_share",
    "noisy_error_top_share",
    "noisy_accuracy",
    "log_eps",
    "noisy_negative_top_share",
    "noisy_negative_error_top_share",
    "noisy_negative_accuracy",
    "negative_clean_top_share",
    "negative_clean_accuracy",
    "negative_clean_error_top_share",
    "mask_density",
)
UNIVERSAL_FEATURES = tuple(statistic_name(kind, radius) for radius in RADII for kind in ("max", "gap", "mean"))
AGREEMENT_FEATURES = ("target_agreement",)
ALL_FEATURES = NEURON_NOISE_FEATURES + UNIVERSAL_FEATURES + AGREEMENT_FEATURES
# What the shipped calibration reads: the statistics that compare a class with the model's other classes or count
# shares of images, chosen by the transfer bench (bench/transfer.py: fitted on one zoo generator, tested on another,
# and leave one data family out). The easiest class's lead over the second easiest at each radius, whether the noise
# and the perturbations point at one class, and how much of the noisy model's output (and of its errors) one class
# takes. On two zoos, worst of A->B, B->A and leave-one-family-out: AUC 0.80 against 0.71 for all 21 statistics, and
# at a conformal threshold 5% of the unseen clean models blocked against 67%: magnitudes such as the easiest class's
# success or the noise level learned one zoo's scale.
FEATURES = (
    *(statistic_name("gap", radius) for radius in RADII),
    "target_agreement",
    "noisy_top_share",
    "noisy_error_top_share",
)


def default_cache_dir() -> Path:
    root = os.environ.get("MODEL_SCANNER_CACHE") or str(Path.home() / ".cache" / "model-scanner")
    return Path(root) / "ban-statistics"


def _cache_key(sha256: str, settings: BanSettings, seed: int) -> str:
    text = json.dumps({"model": sha256, "settings": asdict(settings), "version": STATISTICS_VERSION, "seed": seed})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def model_statistics(
    model: ZooModel, zoo: Zoo, settings: BanSettings, *, cache_dir: Path | None, seed: int = 0
) -> dict[str, Any]:
    """BAN's statistics for one zoo model, with cost and seconds, from the cache when there."""
    artifact = model.artifact()
    key = _cache_key(artifact.sha256, settings, seed)
    path = cache_dir / f"{key}.json" if cache_dir else None
    if path is not None and path.exists():
        return dict(json.loads(path.read_text()))
    clean = zoo.clean_data_of(model)
    if clean is None:
        raise UsageError(f"the zoo has no clean_{model.family}.npz", hint="rebuild the zoo with its clean data")
    clean = in_layout(clean, artifact.spec)  # the zoo stores NCHW
    started = time.perf_counter()
    statistics, cost, target = BanDetector(settings).statistics(artifact, clean, DetectionContext(seed=seed))
    record = {"statistics": statistics, "cost": cost, "target_class": target,
              "seconds": time.perf_counter() - started}  # fmt: skip
    if path is not None:
        store_atomically(path, lambda partial: Path(partial).write_text(json.dumps(record)))
    return record


def zoo_statistics(
    zoo: Zoo,
    settings: BanSettings,
    *,
    cache_dir: Path | None,
    seed: int = 0,
    progress: Progress = no_progress,
    threads: int | None = 1,
) -> list[dict[str, Any]]:
    """Statistics for every zoo model. One torch thread by default: the zoo is many small models, and torch's
    thread pool on an oversubscribed machine spins instead of working."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    records = []
    for done, model in enumerate(zoo.models, start=1):
        records.append(model_statistics(model, zoo, settings, cache_dir=cache_dir, seed=seed))
        progress(done, len(zoo.models))
    return records


def fit_ban_calibration(
    records: Sequence[dict[str, Any]], labels: Sequence[int], *, features: Sequence[str] = FEATURES, **provenance: Any
) -> LogisticCalibration:
    rows = [r["statistics"] for r in records]
    return fit_logistic("ban", features, rows, labels, regularization=0.1, provenance=provenance)


def fit_gate_calibration(
    records: Sequence[dict[str, Any]],
    labels: np.ndarray,
    *,
    groups: Sequence[str] | None = None,
    seed: int = 0,
    gate_records: Sequence[dict[str, Any]] = (),
    **provenance: Any,
) -> tuple[LogisticCalibration, float, np.ndarray]:
    """The logistic on every record, its intercept lowered by the gate offset of its out-of-fold scores and of its
    scores on `gate_records` (clean models of gate zoos, never fitted; scanner.calibration.gate), that offset, and
    the out-of-fold scores (fit_gate_head's order)."""
    scores = cross_validated(records, labels, gate_folds(len(labels), groups, seed))
    fitted = fit_ban_calibration(records, labels.tolist())
    elsewhere = [fitted.probability(record["statistics"]) for record in gate_records]
    offset = gate_offset(scores, labels, clean_elsewhere=elsewhere)
    metrics = {
        "seed": seed,
        "out_of_fold_auc": round(roc_auc(labels, scores), 4),
        "out_of_fold_tpr_at_5pct_fpr": round(tpr_at_fpr(labels, scores), 4),
        "folds": folds_description(groups),
        "gate_alpha": GATE_ALPHA,
        "gate_clean_quantile": quantile_of(offset),
        "gate_zoo_clean_models": len(elsewhere),
    }
    calibration = replace(fitted, intercept=fitted.intercept - offset, provenance={**provenance, **metrics})
    return calibration, offset, scores


def cross_validated(
    records: Sequence[dict[str, Any]],
    labels: np.ndarray,
    folds: Sequence[np.ndarray],
    features: Sequence[str] = FEATURES,
) -> np.ndarray:
    """Out-of-fold probabilities: each fold scored by a calibration fitted on the other models."""
    scores = np.full(len(labels), np.nan)
    for test in folds:
        train = np.setdiff1d(np.arange(len(labels)), test)
        calibration = fit_ban_calibration([records[i] for i in train], labels[train].tolist(), features=features)
        scores[test] = [calibration.probability(records[i]["statistics"]) for i in test]
    return scores


def zoos_statistics(
    zoo_dirs: Sequence[Path],
    settings: BanSettings,
    *,
    cache_dir: Path | None,
    seed: int = 0,
    progress: Progress = no_progress,
) -> tuple[list[Zoo], list[dict[str, Any]], np.ndarray]:
    """Statistics and labels of every model of several zoos, in order; refuses a set without both kinds."""
    zoos = [read_zoo(Path(directory)) for directory in zoo_dirs]
    labels = np.asarray([m.backdoored for zoo in zoos for m in zoo.models], dtype=np.int64)
    if labels.min(initial=1) == labels.max(initial=0):
        raise UsageError(
            f"the zoo(s) {', '.join(map(str, zoo_dirs))} need both clean and backdoored models",
            hint="build a larger zoo",
        )
    return zoos, _statistics_of(zoos, settings, cache_dir=cache_dir, seed=seed, progress=progress), labels


def _statistics_of(
    zoos: Sequence[Zoo], settings: BanSettings, *, cache_dir: Path | None, seed: int, progress: Progress
) -> list[dict[str, Any]]:
    """The statistics of every model of the zoos, in order."""
    records: list[dict[str, Any]] = []
    for zoo in zoos:
        records += zoo_statistics(zoo, settings, cache_dir=cache_dir, seed=seed, progress=progress)
    return records


def train_ban_calibration(
    zoo_dirs: Sequence[Path],
    settings: BanSettings | None = None,
    *,
    cache_dir: Path | None = None,
    seed: int = 0,
    zoo_command: str | None = None,
    progress: Progress = no_progress,
    gate_zoo_dirs: Sequence[Path] = (),
) -> LogisticCalibration:
    """Statistics for every zoo model (cached), a logistic fit on all of them, 5-fold CV metrics as provenance; the
    gate offset also from the clean models of `gate_zoo_dirs`, which the fit never sees."""
    settings = settings or BanSettings()
    gate_records = gate_zoo_statistics(gate_zoo_dirs, settings, cache_dir=cache_dir, seed=seed, progress=progress)
    zoos, records, labels = zoos_statistics(zoo_dirs, settings, cache_dir=cache_dir, seed=seed, progress=progress)
    models = [m for zoo in zoos for m in zoo.models]
    calibration, _, _ = fit_gate_calibration(
        records,
        labels,
        groups=[m.family for m in models],
        gate_records=gate_records,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        scanner_version=__version__,
        zoo=[str(directory) for directory in zoo_dirs],
        zoo_command=zoo_command,
        gate_zoo=[str(directory) for directory in gate_zoo_dirs],
        zoo_code_hash=[zoo.manifest.get("code_hash") or zoo.manifest.get("zoo_hash") for zoo in zoos],
        models=len(labels),
        backdoored=int(labels.sum()),
        families=sorted({m.family for m in models}),
        attacks=sorted({m.attack for m in models}),
        architectures=sorted({m.architecture for m in models}),
        settings=asdict(settings),
        mean_seconds=round(float(np.mean([r["seconds"] for r in records])), 2),
        mean_forward_equivalents=int(np.mean([r["cost"]["forward_equivalents"] for r in records])),
    )
    return calibration


def gate_zoo_statistics(
    zoo_dirs: Sequence[Path],
    settings: BanSettings,
    *,
    cache_dir: Path | None,
    seed: int = 0,
    progress: Progress = no_progress,
) -> list[dict[str, Any]]:
    """Statistics of the clean models of gate zoos (their backdoored models play no part)."""
    return _statistics_of(read_gate_zoos(zoo_dirs), settings, cache_dir=cache_dir, seed=seed, progress=progress)
