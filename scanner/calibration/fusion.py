"""Training the fusion on a zoo: out-of-fold one-pixel and BAN probabilities, then a logistic on their logits.

Out-of-fold scores, because each detector's own calibration was fitted on the same zoo: in-fold scores would be
overconfident and teach the fusion to trust them too much.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from scanner import __version__
from scanner.calibration.ban import fit_gate_calibration, zoos_statistics
from scanner.calibration.gate import GATE_ALPHA, gate_offset
from scanner.calibration.metrics import random_folds, roc_auc, tpr_at_fpr
from scanner.calibration.one_pixel import (
    combined_features,
    fit_gate_head,
    head_feature_names,
    head_features,
    zoo_features,
)
from scanner.detectors.ban.detector import BanSettings
from scanner.detectors.fusion import FEATURE_OF, logit
from scanner.detectors.logistic import LogisticCalibration, fit_logistic
from scanner.detectors.one_pixel.classifier import COMBINED, gate_shifted
from scanner.detectors.one_pixel.signature import SignatureSettings
from scanner.findings import Progress, no_progress

FEATURES = (FEATURE_OF["one_pixel"], FEATURE_OF["ban"])


def out_of_fold_scores(
    zoo_dirs: Sequence[Path],
    *,
    ban_settings: BanSettings,
    ban_cache: Path | None,
    signature_settings: SignatureSettings,
    signature_cache: Path | None,
    seed: int = 0,
    progress: Progress = no_progress,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, one-pixel probabilities, BAN probabilities) for every zoo model, each scored out of fold and shifted
    by its detector's gate offset, as the shipped detectors fitted on the same zoos with the same seed report them."""
    zoos, records, labels = zoos_statistics(zoo_dirs, ban_settings, cache_dir=ban_cache, seed=seed, progress=progress)
    _, ban = fit_gate_calibration(records, labels, seed=seed)
    # BAN runs only with clean data, so the fusion sees the one-pixel score of a clean-data scan: the COMBINED head.
    table = combined_features([zoo_features(zoo, signature_settings, cache_dir=signature_cache) for zoo in zoos])
    features = head_features(table.features)[COMBINED]
    names = head_feature_names(signature_settings)[COMBINED]
    _, _, one_pixel = fit_gate_head(COMBINED, features, labels, names, seed=seed)
    return labels, _gate_shifted(one_pixel, labels), _gate_shifted(ban, labels)


def _gate_shifted(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    offset = gate_offset(scores, labels)
    return np.asarray([gate_shifted(score, offset) for score in scores])


def _row(one_pixel: float, ban: float) -> dict[str, float]:
    """The fusion's inputs for one model: both detectors' probabilities on the logit scale."""
    return {FEATURES[0]: logit(float(one_pixel)), FEATURES[1]: logit(float(ban))}


def fit_fusion(labels: np.ndarray, one_pixel: np.ndarray, ban: np.ndarray, **provenance: object) -> LogisticCalibration:
    rows = [_row(o, b) for o, b in zip(one_pixel, ban, strict=True)]
    return fit_logistic("fusion", FEATURES, rows, labels.tolist(), regularization=1.0, provenance=provenance)


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
) -> LogisticCalibration:
    labels, one_pixel, ban = out_of_fold_scores(
        zoo_dirs, ban_settings=ban_settings, ban_cache=ban_cache, signature_settings=signature_settings,
        signature_cache=signature_cache, seed=seed, progress=progress,
    )  # fmt: skip
    return fit_gate_fusion(
        labels,
        one_pixel,
        ban,
        seed=seed,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        scanner_version=__version__,
        zoo=[str(directory) for directory in zoo_dirs],
        zoo_command=zoo_command,
        models=len(labels),
        backdoored=int(labels.sum()),
    )


def fit_gate_fusion(
    labels: np.ndarray, one_pixel: np.ndarray, ban: np.ndarray, *, seed: int = 0, **provenance: object
) -> LogisticCalibration:
    """The fusion of out-of-fold, gate-shifted detector scores, its intercept lowered by the gate offset of its own
    out-of-fold scores (a second-level cross-validation, also the provenance's honest metric)."""
    fused = np.full(len(labels), np.nan)
    for test in random_folds(len(labels), seed=seed + 1):
        train = np.setdiff1d(np.arange(len(labels)), test)
        fusion = fit_fusion(labels[train], one_pixel[train], ban[train])
        fused[test] = [fusion.probability(_row(one_pixel[i], ban[i])) for i in test]
    offset = gate_offset(fused, labels)
    fusion = fit_fusion(
        labels,
        one_pixel,
        ban,
        **provenance,
        seed=seed,
        gate_alpha=GATE_ALPHA,
        gate_clean_quantile=round(1.0 / (1.0 + math.exp(-offset)), 4),
        cv5_auc_one_pixel=round(roc_auc(labels, one_pixel), 4),
        cv5_auc_ban=round(roc_auc(labels, ban), 4),
        cv5_auc_fused=round(roc_auc(labels, fused), 4),
        cv5_tpr_at_5pct_fpr_fused=round(tpr_at_fpr(labels, fused), 4),
    )
    return replace(fusion, intercept=fusion.intercept - offset)
