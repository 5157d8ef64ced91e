"""Training the signature classifier on a zoo: signatures (cached on disk), features, fit, honest metrics.

Used by `model-scanner detector train` and by bench/one_pixel_*.py. Needs scikit-learn (extra `torch`) to fit;
the result is the numpy-only JSON the detector loads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scanner import __version__
from scanner.calibration.cache_files import store_atomically
from scanner.calibration.gate import GATE_ALPHA, folds_description, gate_folds, gate_offset, quantile_of
from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.zoos import Zoo, ZooModel, in_layout, read_gate_zoos, read_zoo
from scanner.detectors.interface import CleanData
from scanner.detectors.one_pixel.classifier import COMBINED, Head, SignatureClassifier, fit_trees
from scanner.detectors.one_pixel.composite import (
    BLENDS,
    FRACTIONS,
    CompositeRates,
    composite_feature_names,
    composite_rates,
    probe_features,
    probe_images,
    probed_scales,
)
from scanner.detectors.one_pixel.features import feature_names, model_features
from scanner.detectors.one_pixel.input_space import probed_model, unit_clean_data, unit_spec
from scanner.detectors.one_pixel.patches import (
    GRID,
    RANDOM_PATTERNS,
    PatchAnswers,
    patch_answers,
)
from scanner.detectors.one_pixel.signature import (
    Signature,
    SignatureSettings,
    clean_bases,
    signature_for,
    synthetic_bases,
)
from scanner.errors import UsageError
from scanner.findings import InputSpec, ModelArtifact, Progress, no_progress

log = logging.getLogger(__name__)

BASE_KINDS = ("clean", "synthetic")
# Not a base kind: the probe features (the clean signatures' composites and blends, then the patch probes), computed
# whenever clean bases are.
COMPOSITE = "composite"
# Bumped whenever the signature or the composite computation changes, so its cached results are recomputed.
SIGNATURE_CACHE_VERSION = "1"
COMPOSITE_CACHE_VERSION = "4"
PATCH_CACHE_VERSION = "1"


def default_cache_dir() -> Path:
    root = os.environ.get("MODEL_SCANNER_CACHE") or str(Path.home() / ".cache" / "model-scanner")
    return Path(root) / "one-pixel-signatures"


def cached_signature(
    artifact: ModelArtifact,
    bases: np.ndarray,
    base_kind: str,
    settings: SignatureSettings,
    cache_dir: Path | None,
    *,
    scale: int = 1,
    threads: int | None = 1,
) -> Signature:
    """The signature of `artifact` around `bases`, from the cache when computed before with the same everything."""
    from scanner.runtime import OnnxClassifier

    key = _cache_key(artifact.sha256, bases.tobytes(), settings.cache_key(), f"scale{scale}", SIGNATURE_CACHE_VERSION)
    path = cache_dir / f"{key}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        return Signature.load(str(path))
    started = time.perf_counter()
    runner = probed_model(OnnxClassifier(artifact, threads=threads))
    signature = signature_for(runner, bases, settings, base_kind=base_kind, scale=scale)
    log.info("signature of %s (%s bases): %.2f s", artifact.path, base_kind, time.perf_counter() - started)
    if path is not None:
        store_atomically(path, signature.save)
    return signature


def cached_composite_rates(
    artifact: ModelArtifact,
    signature: Signature,
    images: np.ndarray,
    cache_dir: Path | None,
    *,
    threads: int | None = 1,
) -> CompositeRates:
    """The composite rates of `signature` on `images`, from the cache when computed before with the same everything."""
    from scanner.runtime import OnnxClassifier

    key = _cache_key(
        artifact.sha256,
        signature.best_value.tobytes(),
        signature.log_increase.tobytes(),
        images.tobytes(),
        str(FRACTIONS),
        str(BLENDS),
        COMPOSITE_CACHE_VERSION,
    )
    path = cache_dir / f"{key}-composite.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path) as data:
            return CompositeRates(
                **{name: data[name] for name in ("classes", "to_class", "changed", "blend_to_class", "blend_changed")},
                images=int(data["images"]),
                forward_passes=int(data["forward_passes"]),
            )
    rates = composite_rates(probed_model(OnnxClassifier(artifact, threads=threads)), signature, images)
    if path is not None:
        store_atomically(path, lambda partial: np.savez_compressed(partial, **asdict(rates)))
    return rates


def cached_patch_answers(
    artifact: ModelArtifact, images: np.ndarray, cache_dir: Path | None, *, threads: int | None = 1
) -> PatchAnswers:
    """The patch probes' answers on `images`, from the cache when computed before with the same everything."""
    from scanner.runtime import OnnxClassifier

    key = _cache_key(artifact.sha256, images.tobytes(), f"grid{GRID}", f"random{RANDOM_PATTERNS}", PATCH_CACHE_VERSION)
    path = cache_dir / f"{key}-patches.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path) as data:
            return PatchAnswers(data["base_class"], data["answers"], data["drops"], side=int(data["side"]))
    found = patch_answers(probed_model(OnnxClassifier(artifact, threads=threads)), images)
    if path is not None:
        store_atomically(path, lambda partial: np.savez_compressed(partial, **asdict(found)))
    return found


def _cache_key(*parts: str | bytes) -> str:
    encoded = [part if isinstance(part, bytes) else part.encode() for part in parts]
    return hashlib.sha256(b"|".join(encoded)).hexdigest()[:24]


@dataclass(frozen=True)
class ZooFeatures:
    """Features of every zoo model, for each base kind, aligned with `models`."""

    models: tuple[ZooModel, ...]
    features: dict[str, np.ndarray]  # base kind (and COMPOSITE with clean bases) -> (models, features)
    forward_passes: np.ndarray
    seconds: float

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([m.backdoored for m in self.models], dtype=np.int64)


def zoo_features(
    zoo: Zoo,
    settings: SignatureSettings,
    *,
    kinds: Sequence[str] = BASE_KINDS,
    cache_dir: Path | None = None,
    progress: Progress = no_progress,
    threads: int | None = 1,
    image_seed: int = 0,
) -> ZooFeatures:
    """Every zoo model's features, as the detector computes them; `image_seed` draws the held-out clean images the
    probes use (the detector's DetectionContext.seed, 0 by default; a benchmark draws others)."""
    started = time.perf_counter()
    rows: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    passes = []
    clean_by_file: dict[str, CleanData | None] = {}
    for done, model in enumerate(zoo.models):
        artifact = model.artifact()
        key = model.clean_data or model.family
        if key not in clean_by_file:
            clean_by_file[key] = zoo.clean_data_of(model)
        # In the probes' space, as the detector probes (scanner.detectors.one_pixel.input_space): [0, 1] per channel.
        spec = unit_spec(artifact.spec)
        clean = clean_by_file[key]
        clean = unit_clean_data(in_layout(clean, artifact.spec), artifact.spec) if clean is not None else None
        total = 0
        for kind in kinds:
            bases = bases_for(kind, spec, clean, settings)
            signatures = [
                cached_signature(artifact, bases, kind, settings, cache_dir, scale=scale, threads=threads)
                for scale in settings.scales
            ]
            rows[kind].append(model_features(signatures))
            total += sum(signature.forward_passes for signature in signatures)
            if kind == "clean" and clean is not None:
                images, patch_images = probe_images(clean, bases, settings.mode, seed=image_seed)
                probed = probed_scales(signatures, settings.mode)
                rates = [cached_composite_rates(artifact, s, images, cache_dir, threads=threads) for s in probed]
                patches = cached_patch_answers(artifact, patch_images, cache_dir, threads=threads)
                rows.setdefault(COMPOSITE, []).append(probe_features(rates, patches))
                total += sum(r.forward_passes for r in rates) + patches.forward_passes
        passes.append(total)
        progress(done + 1, len(zoo.models))
    return ZooFeatures(
        models=zoo.models,
        features={kind: np.asarray(table) for kind, table in rows.items()},
        forward_passes=np.asarray(passes),
        seconds=time.perf_counter() - started,
    )


def bases_for(kind: str, spec: InputSpec, clean: CleanData | None, settings: SignatureSettings) -> np.ndarray:
    if kind == "synthetic":
        return synthetic_bases(spec)
    if clean is None:
        raise UsageError("the zoo has no clean sample data for clean bases", hint="rebuild the zoo")
    return clean_bases(in_layout(clean, spec), settings.clean_bases)


def cross_validated_scores(
    features: np.ndarray,
    labels: np.ndarray,
    folds: Sequence[np.ndarray],
    fit: Callable[[np.ndarray, np.ndarray], Any] = fit_trees,
) -> np.ndarray:
    """Out-of-fold probabilities: each fold scored by a classifier fitted on the other models."""
    scores = np.full(len(labels), np.nan)
    for test in folds:
        train = np.setdiff1d(np.arange(len(labels)), test)
        head = fit(features[train], labels[train])
        scores[test] = [head.probability(row) for row in features[test]]
    return scores


# The features each head's trees may split on, as a regular expression over head_feature_names(). Chosen by the
# transfer bench (bench/transfer.py; fitted on one zoo generator, tested on another, and leave one data family out):
# with clean data, only statistics that compare a class with the model's other classes (the composite probes' gaps)
# and the patch probes' shares of images carried over between zoos; magnitudes (peaks, means, tops) learned one
# zoo's scale. Without clean data nothing carried over (docs/experiments.md): that head keeps every feature and
# relies on the gate offset alone.
ALL_FEATURES = ".*"
HEAD_FEATURES = {COMBINED: r"^composite:.*(\.gap|patch.*)$"}


def head_feature_names(settings: SignatureSettings) -> dict[str, list[str]]:
    """Per head, the name of each of its feature columns (head_features' order), prefixed by where it comes from."""
    per_kind = list(feature_names(settings.scales))
    composite = [f"composite:{name}" for name in composite_feature_names(settings.scales, settings.mode)]
    names = {kind: [f"{kind}:{name}" for name in per_kind] for kind in BASE_KINDS}
    names[COMBINED] = [*names["clean"], *names["synthetic"], *composite]
    return names


def chosen_columns(kind: str, names: Sequence[str]) -> np.ndarray:
    pattern = re.compile(HEAD_FEATURES.get(kind, ALL_FEATURES))
    return np.asarray([bool(pattern.search(name)) for name in names])


def fit_gate_head(
    kind: str,
    features: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    groups: Sequence[str] | None = None,
    seed: int = 0,
    gate_features: np.ndarray | None = None,
) -> tuple[Head, float, np.ndarray]:
    """A head's trees on its chosen features, its gate offset, and the out-of-fold scores the offset came from
    (with `gate_features`, rows of gate zoos' clean models, also above the head's scores on those: see
    scanner.calibration.gate).

    Columns outside the head's chosen set are held at 0 while fitting, so no tree ever tests them: the head keeps
    the detector's full feature vector as its input."""
    chosen = chosen_columns(kind, names)

    def masked(rows: np.ndarray) -> np.ndarray:
        return np.where(chosen, np.nan_to_num(np.asarray(rows, dtype=np.float64)), 0.0)

    rows = masked(features)
    scores = cross_validated_scores(rows, labels, gate_folds(len(labels), groups, seed))
    head = fit_trees(rows, labels, seed=seed)
    elsewhere = [] if gate_features is None else [head.probability(row) for row in masked(gate_features)]
    return head, gate_offset(scores, labels, clean_elsewhere=elsewhere), scores


def head_features(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per classifier head, its features: each base kind's, plus, when both kinds and the composites are there,
    the COMBINED head's (clean, synthetic, probes: what the detector computes when clean data is given)."""
    heads = {kind: features[kind] for kind in BASE_KINDS if kind in features}
    if all(name in features for name in (*BASE_KINDS, COMPOSITE)):
        heads[COMBINED] = np.concatenate([features["clean"], features["synthetic"], features[COMPOSITE]], axis=1)
    return heads


def combined_features(tables: Sequence[ZooFeatures]) -> ZooFeatures:
    """One table of several zoos' models (each zoo keeps its own clean data for its bases)."""
    kinds = tables[0].features.keys()
    return ZooFeatures(
        models=tuple(m for table in tables for m in table.models),
        features={kind: np.concatenate([table.features[kind] for table in tables]) for kind in kinds},
        forward_passes=np.concatenate([table.forward_passes for table in tables]),
        seconds=sum(table.seconds for table in tables),
    )


def gate_zoo_features(
    zoo_dirs: Sequence[Path],
    settings: SignatureSettings,
    *,
    cache_dir: Path | None = None,
    progress: Progress = no_progress,
    threads: int | None = 1,
) -> dict[str, np.ndarray]:
    """Per head, the features of the clean models of gate zoos (their backdoored models play no part); empty without
    gate zoos."""
    tables = [
        zoo_features(zoo, settings, cache_dir=cache_dir, progress=progress, threads=threads)
        for zoo in read_gate_zoos(zoo_dirs)
    ]
    return head_features(combined_features(tables).features) if tables else {}


def train_signature_classifier(
    zoo_dirs: Sequence[Path],
    settings: SignatureSettings | None = None,
    *,
    cache_dir: Path | None = None,
    seed: int = 0,
    zoo_command: str | None = None,
    progress: Progress = no_progress,
    threads: int | None = 1,
    gate_zoo_dirs: Sequence[Path] = (),
) -> SignatureClassifier:
    """Fit one head per base kind on every model of the zoos; record cross-validated AUC as provenance; the gate
    offsets also from the clean models of `gate_zoo_dirs`, which no head is fitted on."""
    settings = settings or SignatureSettings()
    gate = gate_zoo_features(gate_zoo_dirs, settings, cache_dir=cache_dir, progress=progress, threads=threads)
    zoos = [read_zoo(Path(directory)) for directory in zoo_dirs]
    table = combined_features(
        [zoo_features(zoo, settings, cache_dir=cache_dir, progress=progress, threads=threads) for zoo in zoos]
    )
    labels = table.labels
    if labels.min(initial=1) == labels.max(initial=0):
        raise UsageError("the zoo needs both clean and backdoored models", hint="build a larger zoo")
    heads: dict[str, Head] = {}
    offsets: dict[str, float] = {}
    metrics: dict[str, Any] = {}
    names = head_feature_names(settings)
    families = [m.family for m in table.models]
    for kind, features in head_features(table.features).items():
        heads[kind], offsets[kind], scores = fit_gate_head(
            kind, features, labels, names[kind], groups=families, seed=seed, gate_features=gate.get(kind)
        )
        metrics[kind] = {
            "out_of_fold_auc": round(roc_auc(labels, scores), 4),
            "out_of_fold_tpr_at_5pct_fpr": round(tpr_at_fpr(labels, scores), 4),
            "gate_clean_quantile": quantile_of(offsets[kind]),
        }
    models = table.models
    provenance = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scanner_version": __version__,
        "zoos": [str(zoo.directory) for zoo in zoos],
        "zoo_command": zoo_command,
        "gate_zoos": [str(directory) for directory in gate_zoo_dirs],
        "gate_zoo_clean_models": len(next(iter(gate.values()), ())),
        "models": len(labels),
        "backdoored": int(labels.sum()),
        "families": sorted({m.family for m in models}),
        "attacks": {a: sum(m.attack == a for m in models) for a in sorted({m.attack for m in models})},
        "architectures": sorted({m.architecture for m in models}),
        "seed": seed,
        "head": "trees",
        "head_features": {kind: HEAD_FEATURES.get(kind, ALL_FEATURES) for kind in heads},
        "gate_alpha": GATE_ALPHA,
        "folds": folds_description(families),
        "metrics": metrics,
    }
    return SignatureClassifier(heads=heads, settings=asdict(settings), provenance=provenance, offsets=offsets)
