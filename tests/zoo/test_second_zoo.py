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

    for entry in read_manifest(tiny_second_zoo):
        with np.load(entry.clean_data_path(tiny_second_zoo)) as data:
            x = data["x"][:5]
        assert x.min() >= entry.value_range[0] - 1e-6 and x.max() <= entry.value_range[1] + 1e-6
        if entry.layout == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        session = onnxruntime.InferenceSession(str(entry.path(tiny_second_zoo)), providers=["CPUExecutionProvider"])
        logits = session.run(None, {session.get_inputs()[0].name: x})[0]
        assert logits.shape == (5, entry.num_classes)


def test_a_build_resumes_without_retraining(tiny_second_zoo: Path) -> None:
    from scanner.zoo.second.build import build_second_zoo

    before = {p.name: p.stat().st_mtime_ns for p in tiny_second_zoo.glob("*.onnx")}
    build_second_zoo(6, 6, tiny_second_zoo, seed=0, tiny=True)
    assert {p.name: p.stat().st_mtime_ns for p in tiny_second_zoo.glob("*.onnx")} == before
