"""Features and the numpy-only classifier file: size- and class-count-free, exact round trip, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scanner.detectors.one_pixel.classifier import (
    COMBINED,
    SPLIT_FEATURES,
    ClassifierFileError,
    LogisticHead,
    SignatureClassifier,
    TreeEnsembleHead,
    fit_logistic,
    fit_trees,
    head_from_json,
)
from scanner.detectors.one_pixel.composite import composite_feature_names
from scanner.detectors.one_pixel.features import FEATURE_NAMES, feature_names, features_from, suspected_target
from scanner.detectors.one_pixel.signature import Signature


def random_signature(rng: np.random.Generator, bases: int, classes: int, rows: int, cols: int) -> Signature:
    log_increase = rng.gamma(1.0, 0.2, (bases, classes, rows, cols)).astype(np.float32)
    base_probabilities = rng.dirichlet(np.ones(classes), bases).astype(np.float32)
    return Signature(
        increase=(log_increase / 10).astype(np.float32),
        log_increase=log_increase,
        best_value=rng.choice([0.0, 0.5, 1.0], (bases, classes, rows, cols)).astype(np.float32),
        base_probabilities=base_probabilities,
        value_range=(0.0, 1.0),
        cell=(1, 1),
        base_kind="synthetic",
        forward_passes=1,
    )


@pytest.mark.parametrize(("bases", "classes", "rows", "cols"), [(4, 10, 32, 32), (2, 2, 16, 16), (3, 100, 7, 11)])
def test_features_have_one_length_whatever_the_size_and_classes(bases: int, classes: int, rows: int, cols: int) -> None:
    features = features_from(random_signature(np.random.default_rng(0), bases, classes, rows, cols))
    assert features.shape == (len(FEATURE_NAMES),)
    assert np.isfinite(features).all()


def test_a_planted_trigger_raises_the_ranked_features_and_names_its_class() -> None:
    rng = np.random.default_rng(1)
    clean = random_signature(rng, 4, 10, 16, 16)
    log_increase, increase = clean.log_increase.copy(), clean.increase.copy()
    log_increase[:, 7, 3:5, 10:12] += 5.0  # class 7 rises strongly at one 2x2 spot on every base
    increase[:, 7, 3:5, 10:12] += 0.5
    planted = Signature(**{**clean.__dict__, "log_increase": log_increase, "increase": increase})
    assert suspected_target([planted]) == 7
    before, after = features_from(clean), features_from(planted)
    for name in ("logprob.peak.gap", "logprob.consistent_peak.top", "logprob.top_mass.top"):
        index = FEATURE_NAMES.index(name)
        assert after[index] > before[index] + 0.1, name


def test_the_numpy_head_reproduces_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, len(FEATURE_NAMES)))
    y = (x[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(np.int64)
    head = fit_logistic(x, y)
    reference = LogisticRegression(C=0.3, max_iter=5000, class_weight="balanced").fit((x - head.mean) / head.scale, y)
    expected = reference.predict_proba((x - head.mean) / head.scale)[:, 1]
    np.testing.assert_allclose([head.probability(row) for row in x], expected, atol=1e-9)


def test_the_numpy_tree_ensemble_reproduces_scikit_learn_and_survives_json() -> None:
    from sklearn.ensemble import ExtraTreesClassifier

    rng = np.random.default_rng(4)
    x = rng.normal(size=(150, 60))  # more features than SPLIT_FEATURES: each split draws among some of them
    y = (x[:, 0] + 0.5 * x[:, 3] ** 2 > 0.6).astype(np.int64)  # not linear: what the trees are for
    head = fit_trees(x, y, seed=1)
    reference = ExtraTreesClassifier(
        n_estimators=128, min_samples_leaf=4, max_features=SPLIT_FEATURES, class_weight="balanced", random_state=1
    ).fit(x, y)
    test = rng.normal(size=(60, 60))
    ours = [head.probability(row) for row in test]
    np.testing.assert_allclose(ours, reference.predict_proba(test)[:, 1], atol=1e-12)
    loaded = head_from_json(json.loads(json.dumps(head.to_json())))
    assert isinstance(loaded, TreeEnsembleHead)
    np.testing.assert_allclose([loaded.probability(row) for row in test], ours, atol=1e-4)  # leaf values: 4 decimals


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"left": [0, -1, -1]}, "point forward"),  # a cycle: the root is its own child
        ({"right": [5, -1, -1]}, "point forward"),  # a child that does not exist
        ({"value": [0.5, 0.1]}, "differ in length"),
    ],
)
def test_malformed_trees_are_refused(change: dict[str, list[float]], message: str) -> None:
    tree = {"feature": [0, -1, -1], "threshold": [0.0, 0.0, 0.0], "left": [1, -1, -1], "right": [2, -1, -1]}
    tree["value"] = [0.5, 0.1, 0.9]
    assert head_from_json({"kind": "trees", "trees": [tree]}).probability(np.asarray([1.0])) == 0.9
    with pytest.raises(ClassifierFileError, match=message):
        head_from_json({"kind": "trees", "trees": [{**tree, **change}]})
    with pytest.raises(ClassifierFileError, match="unknown classifier head kind"):
        head_from_json({"kind": "forest"})


def test_classifier_files_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = len(feature_names((1, 2)))
    head = LogisticHead(rng.normal(size=n), rng.uniform(0.5, 2, n), rng.normal(size=n), 0.25)
    classifier = SignatureClassifier({"clean": head, "synthetic": head}, {"values": 8, "scales": [1, 2]}, {"seed": 0})
    path = tmp_path / "classifier.json"
    classifier.save(path)
    loaded = SignatureClassifier.load(path)
    features = rng.normal(size=n)
    assert loaded.probability(features, "clean") == classifier.probability(features, "clean")
    assert loaded.settings == {"values": 8, "scales": [1, 2]}


def test_a_coarse_to_fine_classifier_names_only_the_finest_scale_s_composites(tmp_path: Path) -> None:
    n = len(feature_names((1, 2)))
    head = LogisticHead(np.zeros(n), np.ones(n), np.zeros(n), 0.0)
    settings = {"scales": [1, 2], "mode": "coarse-to-fine"}
    SignatureClassifier({"clean": head, COMBINED: head}, settings, {}).save(tmp_path / "c2f.json")
    names = json.loads((tmp_path / "c2f.json").read_text())["composite_feature_names"]
    assert names == list(composite_feature_names((1,))) and not any(name.startswith("s2.") for name in names)
    assert SignatureClassifier.load(tmp_path / "c2f.json").mode == "coarse-to-fine"
    unknown = {**json.loads((tmp_path / "c2f.json").read_text()), "settings": {**settings, "mode": "fastest"}}
    (tmp_path / "unknown.json").write_text(json.dumps(unknown))
    with pytest.raises(ClassifierFileError, match="unknown signature mode 'fastest'"):
        SignatureClassifier.load(tmp_path / "unknown.json")


def test_foreign_or_stale_classifier_files_are_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(ClassifierFileError, match="not a model-scanner/one-pixel-classifier/v1") as error:
        SignatureClassifier.load(path)
    assert "detector train" in error.value.hint
    for names in ("feature_names", "composite_feature_names"):  # a file from before a feature changed
        stale = SignatureClassifier.load().to_json()
        stale[names] = stale[names][:-1]
        path.write_text(json.dumps(stale))
        with pytest.raises(ClassifierFileError, match="other features"):
            SignatureClassifier.load(path)
    with pytest.raises(ClassifierFileError, match="cannot read"):
        SignatureClassifier.load(tmp_path / "missing.json")


def test_the_shipped_classifier_is_small_versioned_and_has_provenance() -> None:
    from importlib import resources

    shipped = resources.files("scanner.detectors").joinpath("data", "one_pixel_classifier.json")
    assert len(shipped.read_bytes()) <= 1_000_000
    classifier = SignatureClassifier.load()
    assert set(classifier.heads) == {"clean", "synthetic", "clean+synthetic+composite"}
    provenance = classifier.provenance
    assert provenance["zoo_command"] and provenance["models"] >= 100
    # Fitted on both zoo generators (docs/detectors.md, "Gate calibration"), with a gate offset per head.
    assert set(provenance["families"]) == {"digits16", "shapes32", "glyphs", "scenes", "textures"}
    assert {"patch", "square_patch", "blend", "wanet", "warp", "sinusoid", "all_to_all"} <= set(provenance["attacks"])
    assert provenance["folds"] == "one per data family" and set(classifier.offsets) == set(classifier.heads)
    # Scored by heads that never saw the model's data family; measured at the refit: 0.79.
    assert provenance["metrics"][COMBINED]["out_of_fold_auc"] > 0.7


def test_gate_offsets_shift_a_head_s_score_and_survive_a_round_trip(tmp_path: Path) -> None:
    n = len(feature_names((1, 2)))
    head = LogisticHead(np.zeros(n), np.ones(n), np.zeros(n), 1.0)  # probability sigmoid(1) for any features
    offsets = {"synthetic": 1.0}
    classifier = SignatureClassifier({"clean": head, "synthetic": head}, {"scales": [1, 2]}, {}, offsets)
    features = np.zeros(n)
    assert classifier.probability(features, "synthetic") == pytest.approx(0.5)
    assert classifier.probability(features, "clean") == pytest.approx(1 / (1 + np.exp(-1.0)))
    classifier.save(tmp_path / "gated.json")
    assert SignatureClassifier.load(tmp_path / "gated.json").offsets == offsets
    stored = json.loads((tmp_path / "gated.json").read_text())
    for bad in ({"synthetic": float("nan")}, {"synthetic": "1"}, {"synthetic": True}, {"composite": 1.0}, [1.0]):
        (tmp_path / "bad.json").write_text(json.dumps({**stored, "offsets": bad}))
        with pytest.raises(ClassifierFileError, match="offsets"):
            SignatureClassifier.load(tmp_path / "bad.json")
