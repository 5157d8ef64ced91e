"""The gate calibration: the shipped threshold sits just above the conformal quantile of out-of-fold clean scores."""

from __future__ import annotations

import numpy as np
import pytest

from scanner.calibration.gate import clean_quantile, gate_offset
from scanner.calibration.one_pixel import chosen_columns, fit_gate_head
from scanner.detectors.one_pixel.classifier import COMBINED, gate_shifted
from scanner.errors import UsageError


def test_the_quantile_is_the_conformal_rank_of_the_clean_scores_only() -> None:
    clean = np.linspace(0.0, 0.99, 100)  # 100 clean scores: the 99th smallest is the conformal 98% quantile
    scores = np.concatenate([clean, [1.0, 1.0, np.nan]])
    labels = np.concatenate([np.zeros(100), [1, 1, 0]])
    assert clean_quantile(scores, labels, alpha=0.02) == pytest.approx(clean[98])
    # Too few clean models for alpha: the largest one.
    assert clean_quantile(np.asarray([0.1, 0.3, 0.9]), np.asarray([0, 0, 1]), alpha=0.02) == 0.3
    with pytest.raises(UsageError, match="clean models"):
        clean_quantile(np.asarray([0.9]), np.asarray([1]))


def test_the_offset_puts_the_threshold_just_above_the_quantile() -> None:
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0.5, 0.95, 60), rng.uniform(0.9, 1.0, 20)])  # clean models score high
    labels = np.concatenate([np.zeros(60), np.ones(20)])
    offset = gate_offset(scores, labels)
    quantile = clean_quantile(scores, labels)
    shifted = np.asarray([gate_shifted(s, offset) for s in scores])
    assert gate_shifted(quantile, offset) < 0.5 <= gate_shifted(min(quantile + 0.001, 0.9999), offset)
    assert (shifted[labels == 0] >= 0.5).mean() <= 0.02  # the share the gate promises on the calibration models
    assert np.all(np.diff(shifted[np.argsort(scores)]) >= 0)  # the ranking is untouched


def test_a_head_s_trees_never_test_the_features_it_does_not_choose() -> None:
    names = [f"clean:f{i}" for i in range(3)] + ["composite:s1.composite.to_class.f0.01.gap", "composite:s1.x.top"]
    chosen = chosen_columns(COMBINED, names)
    assert chosen.tolist() == [False, False, False, True, False]
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 40)
    features = rng.normal(size=(80, 5))
    features[:, 0] += 3 * labels  # the most telling feature is one the head must not use
    features[:, 3] += 1 * labels
    head, offset, scores = fit_gate_head(COMBINED, features, labels, names)
    tested = np.concatenate([tree["feature"][tree["feature"] >= 0] for tree in head.trees])
    assert set(tested.tolist()) == {3}
    assert len(scores) == 80 and np.isfinite(offset)


def test_the_threshold_holds_for_the_fitted_zoos_and_for_the_gate_zoos() -> None:
    oof = np.linspace(0.0, 0.5, 100)  # 100 out-of-fold clean scores
    labels = np.zeros(100)
    higher = np.linspace(0.3, 0.9, 50)  # a gate zoo whose clean models score higher
    assert clean_quantile(oof, labels, clean_elsewhere=higher) == clean_quantile(higher, np.zeros(50))
    assert gate_offset(oof, labels, clean_elsewhere=higher) > gate_offset(oof, labels)
    lower = np.full(1000, 0.1)  # many easy clean models elsewhere do not pull the threshold down
    assert clean_quantile(oof, labels, clean_elsewhere=lower) == clean_quantile(oof, labels)
    assert gate_offset(oof, labels, clean_elsewhere=[]) == gate_offset(oof, labels)
