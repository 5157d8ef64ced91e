"""`detector train --gate-zoo`: the clean models of a zoo that no fit sees set the gate threshold beside the fitted
zoos' out-of-fold scores. Real tiny models of the second generator, real detectors' statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanner.calibration.zoos import read_zoo
from scanner.detectors.ban.detector import BanSettings
from scanner.detectors.one_pixel.signature import SignatureSettings

# Few steps, cells and images: these tests check where the gate zoo's scores go, not what BAN finds.
QUICK = BanSettings(mask_epochs=1, mask_batches=2, noise_steps=2, probes=2, fit_samples=32, eval_samples=32,
                    universal_steps=2, universal_samples=8, universal_eval_samples=16)  # fmt: skip
SIGNATURES = SignatureSettings(mode="coarse-to-fine", max_grid=8)


@pytest.fixture(scope="module")
def zoos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(a zoo to fit on, a gate zoo of two clean models, a cache directory)."""
    from scanner.zoo.second.build import build_second_zoo

    root = tmp_path_factory.mktemp("gate-zoos")
    build_second_zoo(3, 3, root / "fit", seed=0, tiny=True)
    build_second_zoo(2, 1, root / "gate", seed=3, tiny=True)  # its backdoored model must play no part
    return root / "fit", root / "gate", root / "cache"


def test_every_gate_zoo_clean_model_passes_the_ban_gate(zoos: tuple[Path, Path, Path]) -> None:
    """With fewer than 49 clean models the 98% conformal quantile is their largest score, so each of the gate zoo's
    clean models scores under 0.5 with the calibration it helped set."""
    from scanner.calibration.ban import model_statistics, train_ban_calibration

    fit, gate, cache = zoos
    plain = train_ban_calibration([fit], QUICK, cache_dir=cache)
    gated = train_ban_calibration([fit], QUICK, cache_dir=cache, gate_zoo_dirs=[gate])
    assert gated.provenance["gate_zoo"] == [str(gate)] and gated.provenance["gate_zoo_clean_models"] == 2
    assert plain.provenance["gate_zoo_clean_models"] == 0
    assert gated.coef == plain.coef and gated.intercept <= plain.intercept  # same fit, threshold at least as high
    zoo = read_zoo(gate)
    for model in (m for m in zoo.models if not m.backdoored):
        statistics = model_statistics(model, zoo, QUICK, cache_dir=cache)["statistics"]
        assert gated.probability(statistics) < 0.5


def test_every_gate_zoo_clean_model_passes_each_one_pixel_head(zoos: tuple[Path, Path, Path]) -> None:
    from scanner.calibration.one_pixel import head_features, train_signature_classifier, zoo_features
    from scanner.calibration.zoos import clean_models_of

    fit, gate, cache = zoos
    plain = train_signature_classifier([fit], SIGNATURES, cache_dir=cache)
    gated = train_signature_classifier([fit], SIGNATURES, cache_dir=cache, gate_zoo_dirs=[gate])
    assert gated.provenance["gate_zoos"] == [str(gate)] and gated.provenance["gate_zoo_clean_models"] == 2
    features = head_features(zoo_features(clean_models_of(read_zoo(gate)), SIGNATURES, cache_dir=cache).features)
    for kind, rows in features.items():
        assert gated.offsets[kind] >= plain.offsets[kind], kind
        assert all(gated.probability(row, kind) < 0.5 for row in rows), kind


def test_the_fusion_s_threshold_holds_for_the_gate_zoo_s_larger_scores(zoos: tuple[Path, Path, Path]) -> None:
    from scanner.calibration.fusion import out_of_fold_scores, train_fusion

    fit, gate, cache = zoos
    settings = {"ban_settings": QUICK, "ban_cache": cache, "signature_settings": SIGNATURES,
                "signature_cache": cache}  # fmt: skip
    *_, elsewhere = out_of_fold_scores([fit], **settings, gate_zoo_dirs=[gate])
    assert len(elsewhere) == 2 and all(0.0 <= score < 0.5 for score in elsewhere)  # each detector's gate holds them
    plain = train_fusion([fit], **settings)
    gated = train_fusion([fit], **settings, gate_zoo_dirs=[gate])
    assert gated.provenance["gate_zoo_clean_models"] == 2 and gated.offset >= plain.offset
    assert all(gated.probability({"one_pixel": s, "ban": s}) < 0.5 for s in np.asarray(elsewhere))


def test_a_gate_zoo_without_clean_models_is_refused(zoos: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from scanner.calibration.ban import train_ban_calibration
    from scanner.errors import UsageError
    from scanner.zoo.second.build import build_second_zoo

    fit, _, cache = zoos
    build_second_zoo(0, 1, tmp_path / "backdoored-only", seed=4, tiny=True)
    with pytest.raises(UsageError, match="no clean models"):
        train_ban_calibration([fit], QUICK, cache_dir=cache, gate_zoo_dirs=[tmp_path / "backdoored-only"])
