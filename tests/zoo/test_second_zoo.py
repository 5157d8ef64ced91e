"""The second zoo generator: deterministic for a seed, and each of its data families, architectures and attacks
really trains and exports (a tiny build: 64 images, one epoch) to an ONNX model that ONNX Runtime runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanner.zoo.second.attacks import SECOND_ATTACKS
from scanner.zoo.second.datasets import DATA_FAMILIES, make_images
from scanner.zoo.second.models import ARCHITECTURES
from scanner.zoo.second.plan import draw_model, plan_second


def test_the_same_seed_draws_the_same_models_and_another_seed_others() -> None:
    assert plan_second(4, 4, seed=3) == plan_second(4, 4, seed=3)
    assert [m.summary() for m in plan_second(4, 4, seed=3)] != [m.summary() for m in plan_second(4, 4, seed=4)]


def test_clean_and_backdoored_models_of_one_index_share_family_and_architecture() -> None:
    for i in range(12):
        clean, backdoored = draw_model(0, i, False), draw_model(0, i, True)
        assert (clean.family, clean.arch.name) == (backdoored.family, backdoored.arch.name)
        assert clean.attack is None and backdoored.attack is not None


@pytest.mark.parametrize("family", sorted(DATA_FAMILIES))
def test_each_family_is_deterministic_and_in_range(family: str) -> None:
    first = make_images(family, 20, size=24, channels=3, num_classes=10, split="train")
    again = make_images(family, 20, size=24, channels=3, num_classes=10, split="train")
    test = make_images(family, 20, size=24, channels=3, num_classes=10, split="test")
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], test[0])
    assert first[0].shape == (20, 3, 24, 24) and first[0].min() >= 0 and first[0].max() <= 1


@pytest.fixture(scope="module")
def tiny_second_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scanner.zoo.second.build import build_second_zoo

    out = tmp_path_factory.mktemp("second-zoo")
    build_second_zoo(6, 6, out, seed=0, tiny=True)
    return out


def test_a_tiny_build_covers_every_family_architecture_and_attack(tiny_second_zoo: Path) -> None:
    from scanner.zoo.manifest import read_manifest

    entries = read_manifest(tiny_second_zoo)
    assert len(entries) == 12
    assert {e.family for e in entries} == set(DATA_FAMILIES)
    assert {e.arch for e in entries} == set(ARCHITECTURES)
    assert {e.attack for e in entries if e.backdoored} == set(SECOND_ATTACKS)
    assert all(e.recipe and e.recipe["generator"] == "second" for e in entries)
    assert {e.exporter for e in entries} == {"legacy", "dynamo"}


def test_every_exported_model_runs_on_its_clean_data_in_its_layout_and_range(tiny_second_zoo: Path) -> None:
    import onnxruntime

    from scanner.zoo.manifest import read_manifest

    entries = read_manifest(tiny_second_zoo)
    assert {entry.layout for entry in entries} == {"NCHW", "NHWC"}
    for entry in entries:
        with np.load(entry.clean_data_path(tiny_second_zoo)) as data:
            x = data["x"][:5]
        low, high = np.asarray(entry.value_range, dtype=np.float32)[:, None]
        if entry.normalization is not None:  # per channel, in the model's normalised input space
            mean, std = np.asarray(entry.normalization["mean"]), np.asarray(entry.normalization["std"])
            low, high = (low - mean) / std, (high - mean) / std
        channel_axis = 3 if entry.layout == "NHWC" else 1  # written as the model takes it: a scan takes it as is
        channels = np.moveaxis(x, channel_axis, 0).reshape(x.shape[channel_axis], -1)
        assert (channels.min(axis=1) >= low - 1e-5).all() and (channels.max(axis=1) <= high + 1e-5).all()
        session = onnxruntime.InferenceSession(str(entry.path(tiny_second_zoo)), providers=["CPUExecutionProvider"])
        logits = session.run(None, {session.get_inputs()[0].name: x})[0]
        assert logits.shape == (5, entry.num_classes)


def test_normalised_models_take_mean_std_inputs_and_scan_with_them(tiny_second_zoo: Path) -> None:
    """A share of the models take (x - mean) / std of [0, 1] images: the manifest says so, the clean data are in that
    space, and a scan told the normalisation (as `scan --mean --std`) accepts the clean data and scans the model."""
    from scanner.calibration.zoos import in_layout, read_zoo
    from scanner.detectors import load_detectors
    from scanner.detectors.interface import Detector
    from scanner.findings import Status
    from scanner.policy import load_builtin_policy
    from scanner.scan import Scanner, ScanOptions, ScanTarget

    zoo = read_zoo(tiny_second_zoo)
    normalised = [m for m in zoo.models if m.normalization is not None]
    assert normalised and len(normalised) < len(zoo.models)
    assert all(m.value_range == (0.0, 1.0) for m in normalised)
    model = normalised[0]
    artifact = model.artifact()
    assert artifact.spec.normalization == model.normalization
    clean = zoo.clean_data_of(model)
    assert clean is not None and clean.x.min() < 0  # (0 - mean) / std: below zero, as [0, 1] images never are
    detectors = [d for d in load_detectors(["one-pixel"]).values() if isinstance(d, Detector)]
    options = ScanOptions(
        clean_data=in_layout(clean, artifact.spec), normalization=model.normalization, time_limit_s=None
    )
    result = Scanner(detectors, load_builtin_policy(), options=options).scan_target(ScanTarget.for_file(model.path))
    assert result.status is Status.SCANNED and result.normalization == model.normalization


def test_model_input_is_the_value_range_then_the_normalisation() -> None:
    specs = plan_second(6, 6, seed=0, tiny=True)
    normalised = next(m for m in specs if m.normalization is not None)
    ranged = next(m for m in specs if m.value_range == (-1.0, 1.0))
    rng = np.random.default_rng(0)
    x = rng.random((4, *normalised.image_shape)).astype(np.float32)
    assert normalised.normalization is not None
    mean, std = (np.asarray(v, dtype=np.float32)[:, None, None] for v in (normalised.normalization.mean,
                                                                          normalised.normalization.std))  # fmt: skip
    np.testing.assert_allclose(normalised.to_model_input(x), (x - mean) / std, rtol=1e-5, atol=1e-5)
    x = rng.random((4, *ranged.image_shape)).astype(np.float32)
    np.testing.assert_allclose(ranged.to_model_input(x), x * 2 - 1, atol=1e-6)


def test_a_build_resumes_without_retraining(tiny_second_zoo: Path) -> None:
    from scanner.zoo.second.build import build_second_zoo

    before = {p.name: p.stat().st_mtime_ns for p in tiny_second_zoo.glob("*.onnx")}
    build_second_zoo(6, 6, tiny_second_zoo, seed=0, tiny=True)
    assert {p.name: p.stat().st_mtime_ns for p in tiny_second_zoo.glob("*.onnx")} == before


def test_two_builds_of_different_seeds_share_one_directory(tmp_path: Path) -> None:
    """Two build processes side by side merge into one manifest without clobbering each other's files or entries, and
    leave no temporary files behind (torch's dynamo exporter is not thread-safe: processes, as a real build runs)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from scanner.zoo.manifest import read_manifest
    from scanner.zoo.second.build import build_second_zoo

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in [pool.submit(build_second_zoo, 2, 2, tmp_path, seed=seed, tiny=True) for seed in (1, 2)]:
            future.result()
    entries = read_manifest(tmp_path)
    assert len(entries) == 8 and {e.file.split("-")[1] for e in entries} == {"s1", "s2"}
    assert all(e.path(tmp_path).exists() and e.clean_data_path(tmp_path).exists() for e in entries)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".manifest.lock"]


def test_poisoned_images_are_marked_for_triggering_after_augmentation() -> None:
    from scanner.zoo.second.attacks import poison_training_set

    x, y = make_images("textures", 200, size=24, channels=1, num_classes=10, split="train")
    trigger = SECOND_ATTACKS["blend"].draw(np.random.default_rng(0), (1, 24, 24), 10)
    poisoned_x, poisoned_y, marked = poison_training_set(x, y, trigger, 10, np.random.default_rng(1))
    assert marked.sum() == round(trigger.poison_rate * 200)
    np.testing.assert_array_equal(poisoned_x, x)  # the loop triggers them, after any crop or jitter
    assert (poisoned_y[marked] == trigger.target).all() and (poisoned_y[~marked] == y[~marked]).all()


def test_patches_scale_with_the_image_and_all_to_all_patches_sit_in_a_corner() -> None:
    rng = np.random.default_rng(0)
    for size in (24, 64):
        sizes = {SECOND_ATTACKS["square_patch"].draw(rng, (3, size, size), 10).params["size"] for _ in range(40)}
        assert min(sizes) == max(2, round(size / 12)) and max(sizes) == round(size / 6)
        for _ in range(10):
            params = SECOND_ATTACKS["all_to_all_patch"].draw(rng, (3, size, size), 10).params
            assert params["placement"] == "fixed"
            assert {params["row"], params["col"]} <= {0, size - params["size"]}


def test_thinned_glyphs_keep_their_strokes_at_24_px() -> None:
    """Strokes are thinned at 64 px, before the resize: thinning at 24 px kept about a tenth of a glyph."""
    from scanner.zoo.second.datasets import _stroked_bitmaps
    from scanner.zoo.warp import resize

    drawn, _, thinned = (resize(v.reshape(-1, 1, 64, 64), 24, 24).sum(axis=(1, 2, 3)) for v in _stroked_bitmaps(20, 64))
    assert (thinned > 0.15 * drawn).all() and (thinned / drawn).mean() > 0.4


def test_training_images_grow_with_the_number_of_classes() -> None:
    from scanner.zoo.second.plan import IMAGES_PER_CLASS, MIN_TRAIN_IMAGES

    for spec in plan_second(24, 24, seed=5):
        assert spec.recipe.train_images >= max(MIN_TRAIN_IMAGES[spec.family], spec.num_classes * IMAGES_PER_CLASS[0])
