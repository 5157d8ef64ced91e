"""The cached test zoo (the `zoo` fixture) is what everyone else's tests stand on: check what it promises."""

import json

import numpy as np
import onnxruntime
import pytest

from scanner.zoo.attacks import ATTACKS, Backdoor
from scanner.zoo.build import MIN_ATTACK_SUCCESS, MIN_CLEAN_ACCURACY
from scanner.zoo.cache import TEST_ZOO
from scanner.zoo.manifest import read_manifest
from scanner.zoo.models import ARCHITECTURES


def _session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _predict(session, x):
    return session.run(None, {session.get_inputs()[0].name: x})[0].argmax(axis=1)


def test_manifest_lists_every_model_with_every_field(zoo):
    raw = json.loads((zoo / "manifest.json").read_text())
    assert raw["schema"] == "model-scanner/zoo-manifest/v1"
    entries = read_manifest(zoo)
    for family, clean, backdoored in TEST_ZOO:
        mine = [e for e in entries if e.family == family]
        assert sum(not e.backdoored for e in mine) == clean
        assert sum(e.backdoored for e in mine) == backdoored
    for entry, data in zip(entries, raw["models"], strict=True):
        for key in ("file", "family", "arch", "attack", "target", "backdoored", "clean_acc", "asr", "exporter"):
            assert key in data
        assert entry.path(zoo).is_file()
        assert entry.clean_data_path(zoo).is_file()
        assert entry.exporter in ("legacy", "dynamo")
        assert entry.arch in ARCHITECTURES
        assert entry.clean_acc >= MIN_CLEAN_ACCURACY
        if entry.backdoored:
            assert entry.attack in ATTACKS and entry.asr is not None and entry.asr >= MIN_ATTACK_SUCCESS
            assert (entry.target is None) == (entry.attack == "all_to_all")
        else:
            assert entry.attack is None and entry.target is None and entry.asr is None
    # Coverage others rely on: both families, all architectures, both exporters, several attacks.
    assert {e.family for e in entries} == {"shapes32", "digits16"}
    assert {e.arch for e in entries} == set(ARCHITECTURES)
    assert {e.exporter for e in entries} == {"legacy", "dynamo"}
    assert {e.arch for e in entries if e.backdoored} == set(ARCHITECTURES)
    assert len({e.attack for e in entries if e.backdoored}) >= 4


@pytest.mark.parametrize("family", ["digits16", "shapes32"])
def test_clean_data_is_held_out_images_in_the_model_layout(zoo, family):
    data = np.load(zoo / f"clean_{family}.npz")
    x, y = data["x"], data["y"]
    entry = next(e for e in read_manifest(zoo) if e.family == family)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape[1:] == entry.input_shape and 200 <= len(x) == len(y)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_exported_models_keep_their_accuracy_and_backdoor_in_onnx_runtime(zoo):
    """Re-measure every model through ONNX Runtime on the clean data, with the trigger from the manifest."""
    for entry in read_manifest(zoo):
        data = np.load(entry.clean_data_path(zoo))
        x, y = data["x"], data["y"]
        session = _session(entry.path(zoo))
        accuracy = float((_predict(session, x) == y).mean())
        assert accuracy >= MIN_CLEAN_ACCURACY - 0.05, entry.file
        if entry.backdoored:
            backdoor = Backdoor.from_json(entry.trigger)
            victims = backdoor.victims(y)
            hits = _predict(session, backdoor.apply(x[victims])) == backdoor.poison_labels(y[victims], 10)
            assert hits.mean() >= MIN_ATTACK_SUCCESS - 0.05, entry.file
