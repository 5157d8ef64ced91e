"""Fitting the fusion on zoos: out-of-fold one-pixel and BAN scores, shifted as the shipped detectors shift them, and
the gate offset of their larger one (scanner.detectors.fusion).

Out of fold (one fold per data family, scanner.calibration.gate.gate_folds), because each detector's own files were
fitted on the same zoos: in-fold scores of clean models sit lower than any new model's, and the offset would be too
small.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scanner import __version__
from scanner.calibration.ban import fit_gate_calibration, zoos_statistics
from scanner.calibration.gate import GATE_ALPHA, folds_description, gate_offset, quantile_of
from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.one_pixel import (
    combined_features,
    fit_gate_head,
    head_feature_names,
    head_features,
    zoo_features,
)
from scanner.detectors.ban.detector import BanSettings
from scanner.detectors.fusion import MaxFusion
from scanner.detectors.logistic import gate_shifted
from scanner.detectors.one_pixel.classifier import COMBINED
from scanner.detectors.one_pixel.signature import SignatureSettings
from scanner.findings import Progress, no_progress


def out_of_fold_scores(
    zoo_dirs: Sequence[Path],
    *,
    ban_settings: BanSettings,
    ban_cache: Path | None,
    signature_settings: SignatureSettings,
    signature_cache: Path | None,
    seed: int = 0,
    progress: Progress = no_progress,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(labels, one-pixel scores, BAN scores, data families) of every zoo model, each score out of fold and shifted
    by its detector's gate offset, as the shipped files fitted on the same zoos with the same seed report them."""
    zoos, records, labels = zoos_statistics(zoo_dirs, ban_settings, cache_dir=ban_cache, seed=seed, progress=progress)
    families = [m.family for zoo in zoos for m in zoo.models]
    _, ban = fit_gate_calibration(records, labels, groups=families, seed=seed)
    # BAN runs only with clean data, so the fusion sees the one-pixel score of a clean-data scan: the COMBINED head.
    table = combined_features([zoo_features(zoo, signature_settings, cache_dir=signature_cache) for zoo in zoos])
    features = head_features(table.features)[COMBINED]
    names = head_feature_names(signature_settings)[COMBINED]
    _, _, one_pixel = fit_gate_head(COMBINED, features, labels, names, groups=families, seed=seed)
    return labels, shifted_by_own_offset(one_pixel, labels), shifted_by_own_offset(ban, labels), families


def shifted_by_own_offset(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Out-of-fold scores as their detector reports them: shifted by the gate offset read from those same scores."""
    offset = gate_offset(scores, labels)
    return np.asarray([gate_shifted(score, offset) for score in scores])


def fit_gate_fusion(labels: np.ndarray, one_pixel: np.ndarray, ban: np.ndarray, **provenance: object) -> MaxFusion:
    """The max fusion of two detectors' out-of-fold, gate-shifted scores, with the gate offset of their larger one."""
    larger = np.maximum(one_pixel, ban)
    offset = gate_offset(larger, labels)
    metrics = {
        "out_of_fold_auc_one_pixel": round(roc_auc(labels, one_pixel), 4),
        "out_of_fold_auc_ban": round(roc_auc(labels, ban), 4),
        "out_of_fold_auc_fused": round(roc_auc(labels, larger), 4),
        "out_of_fold_tpr_at_5pct_fpr_fused": round(tpr_at_fpr(labels, larger), 4),
        "gate_alpha": GATE_ALPHA,
        "gate_clean_quantile": quantile_of(offset),
    }
    return MaxFusion(offset=offset, provenance={**provenance, **metrics})


def train_fusion(
    zoo_dirs: Sequence[Path],
    *,
    ban_settings: BanSettings,
    ban_cache: Path | None,
    signature_settings: SignatureSettings,
    signature_cache: Path | None,
    seed: int = 0,
    zoo_command: str | None = None,
    progress: Progress = no_progress,
) -> MaxFusion:
    labels, one_pixel, ban, families = out_of_fold_scores(
        zoo_dirs, ban_settings=ban_settings, ban_cache=ban_cache, signature_settings=signature_settings,
        signature_cache=signature_cache, seed=seed, progress=progress,
    )  # fmt: skip
    return fit_gate_fusion(
        labels,
        one_pixel,
        ban,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        scanner_version=__version__,
        zoo=[str(directory) for directory in zoo_dirs],
        zoo_command=zoo_command,
        models=len(labels),
        backdoored=int(labels.sum()),
        families=sorted(set(families)),
        folds=folds_description(families),
        seed=seed,
    )
