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
from scanner.calibration.ban import fit_gate_calibration, gate_zoo_statistics, zoos_statistics
from scanner.calibration.gate import GATE_ALPHA, folds_description, gate_offset, quantile_of
from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.one_pixel import (
    combined_features,
    fit_gate_head,
    gate_zoo_features,
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
    gate_zoo_dirs: Sequence[Path] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[float]]:
    """(labels, one-pixel scores, BAN scores, data families) of every zoo model, each score out of fold and shifted
    by its detector's gate offset, as the shipped files fitted on the same zoos with the same seed (and gate zoos)
    report them; and the larger of the two final fits' scores on each clean model of the gate zoos."""
    zoos, records, labels = zoos_statistics(zoo_dirs, ban_settings, cache_dir=ban_cache, seed=seed, progress=progress)
    gate_records = gate_zoo_statistics(gate_zoo_dirs, ban_settings, cache_dir=ban_cache, seed=seed, progress=progress)
    families = [m.family for zoo in zoos for m in zoo.models]
    ban_fit, ban_offset, ban = fit_gate_calibration(
        records, labels, groups=families, seed=seed, gate_records=gate_records
    )
    # BAN runs only with clean data, so the fusion sees the one-pixel score of a clean-data scan: the COMBINED head.
    table = combined_features([zoo_features(zoo, signature_settings, cache_dir=signature_cache) for zoo in zoos])
    features = head_features(table.features)[COMBINED]
    names = head_feature_names(signature_settings)[COMBINED]
    gate_features = gate_zoo_features(gate_zoo_dirs, signature_settings, cache_dir=signature_cache).get(COMBINED)
    head, one_pixel_offset, one_pixel = fit_gate_head(
        COMBINED, features, labels, names, groups=families, seed=seed, gate_features=gate_features
    )
    elsewhere = [
        max(gate_shifted(head.probability(row), one_pixel_offset), ban_fit.probability(record["statistics"]))
        for row, record in zip(gate_features if gate_features is not None else [], gate_records, strict=True)
    ]
    return labels, shifted(one_pixel, one_pixel_offset), shifted(ban, ban_offset), families, elsewhere


def shifted(scores: np.ndarray, offset: float) -> np.ndarray:
    """Scores as their detector reports them: shifted by its gate offset."""
    return np.asarray([gate_shifted(score, offset) for score in scores])


def fit_gate_fusion(
    labels: np.ndarray,
    one_pixel: np.ndarray,
    ban: np.ndarray,
    *,
    clean_elsewhere: Sequence[float] = (),
    **provenance: object,
) -> MaxFusion:
    """The max fusion of two detectors' out-of-fold, gate-shifted scores, with the gate offset of their larger one
    (and above the quantile of the larger scores of gate zoos' clean models, `clean_elsewhere`)."""
    larger = np.maximum(one_pixel, ban)
    offset = gate_offset(larger, labels, clean_elsewhere=clean_elsewhere)
    metrics = {
        "out_of_fold_auc_one_pixel": round(roc_auc(labels, one_pixel), 4),
        "out_of_fold_auc_ban": round(roc_auc(labels, ban), 4),
        "out_of_fold_auc_fused": round(roc_auc(labels, larger), 4),
        "out_of_fold_tpr_at_5pct_fpr_fused": round(tpr_at_fpr(labels, larger), 4),
        "gate_alpha": GATE_ALPHA,
        "gate_clean_quantile": quantile_of(offset),
        "gate_zoo_clean_models": len(clean_elsewhere),
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
    gate_zoo_dirs: Sequence[Path] = (),
) -> MaxFusion:
    labels, one_pixel, ban, families, elsewhere = out_of_fold_scores(
        zoo_dirs, ban_settings=ban_settings, ban_cache=ban_cache, signature_settings=signature_settings,
        signature_cache=signature_cache, seed=seed, progress=progress, gate_zoo_dirs=gate_zoo_dirs,
    )  # fmt: skip
    return fit_gate_fusion(
        labels,
        one_pixel,
        ban,
        clean_elsewhere=elsewhere,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        scanner_version=__version__,
        zoo=[str(directory) for directory in zoo_dirs],
        zoo_command=zoo_command,
        gate_zoo=[str(directory) for directory in gate_zoo_dirs],
        models=len(labels),
        backdoored=int(labels.sum()),
        families=sorted(set(families)),
        folds=folds_description(families),
        seed=seed,
    )
