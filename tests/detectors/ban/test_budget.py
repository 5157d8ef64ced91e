"""BAN within its bounds: any class count, a memory bound that chunks batches without changing results, and error
results (never a killed process) for a model over its memory or time bound."""

from __future__ import annotations

import dataclasses
import hashlib
import time

import numpy as np
import torch

from scanner.detectors.ban.budget import GIB, bytes_per_sample, classes_to_probe
from scanner.detectors.ban.detector import BanDetector, BanSettings
from scanner.detectors.interface import CleanData, DetectionContext
from scanner.findings import Deadline, InputSpec, Layout, ModelArtifact, Status
from scanner.torchview import TorchGraph
from tests.torchview.real_architectures import cached_export

QUICK = BanSettings(mask_epochs=1, mask_batches=2, noise_steps=2, probes=2, fit_samples=32, eval_samples=32,
                    universal_steps=2, universal_samples=8, universal_eval_samples=16)  # fmt: skip


def _artifact(model: bytes, classes: int, size: int) -> ModelArtifact:
    spec = InputSpec("x", "logits", Layout.NCHW, 3, size, size, classes)
    return ModelArtifact("model.onnx", hashlib.sha256(model).hexdigest(), model, spec)


def _clean(count: int, size: int) -> CleanData:
    return CleanData(np.random.default_rng(5).uniform(0, 1, (count, 3, size, size)).astype(np.float32))


def test_a_1000_class_model_is_scanned_within_its_bounds_on_the_classes_a_pre_screen_picked() -> None:
    model = cached_export("resnet", 1000, 32, "legacy")
    deadline = Deadline.after(300)
    started = time.monotonic()
    result = BanDetector(QUICK).detect(
        _artifact(model, 1000, 32), DetectionContext(clean_data=_clean(64, 32), deadline=deadline)
    )
    assert result.status is Status.SCANNED, result.reason
    assert time.monotonic() - started < 300
    details = result.details
    probed = details["probed_classes"]
    assert len(probed) == QUICK.probed_classes == 16 and probed == sorted(set(probed))
    assert all(0 <= c < 1000 for c in probed)
    assert result.target_class in probed
    # The universal step on 16 classes, not 1000: the cost is what was planned, not classes x images.
    assert result.forward_passes == details["forward_equivalents"]
    assert details["forward_equivalents"] == details["planned_forward_equivalents"]  # the plan is the bill
    assert details["planned_forward_equivalents"] < 3 * QUICK.universal_steps * 8 * 1000
    assert details["memory_bound_bytes"] == 4 * GIB


def test_the_pre_screen_keeps_every_class_up_to_its_cap() -> None:
    suspicion = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.2])
    assert classes_to_probe(suspicion, 5) == [0, 1, 2, 3, 4]  # the 10-class zoo: the cap of 16 never bites
    assert classes_to_probe(suspicion, 2) == [1, 3]


def test_a_memory_bound_chunks_the_universal_step_without_changing_the_statistics() -> None:
    model = cached_export("mobilenet_v2", 10, 32, "legacy")
    graph = TorchGraph(model)
    with torch.no_grad():
        traced = graph.run({"x": torch.rand(2, 3, 32, 32)}, [graph.output_name], keep_all=True)
    sample_bytes = bytes_per_sample(traced, 2)
    # Room for 40 images at once: the noise batch (32) fits, the universal step's 10 classes x 8 images do not.
    bounded = dataclasses.replace(QUICK, memory_gib=40.5 * sample_bytes / GIB)
    artifact, context = _artifact(model, 10, 32), DetectionContext(clean_data=_clean(64, 32), seed=1)
    free_statistics, free_report, free_target = BanDetector(QUICK).statistics(artifact, _clean(64, 32), context)
    statistics, report, target = BanDetector(bounded).statistics(artifact, _clean(64, 32), context)
    assert report["max_batch"] == 40 and free_report["max_batch"] > 80
    assert target == free_target
    assert statistics.keys() == free_statistics.keys()
    for name, value in free_statistics.items():
        assert abs(statistics[name] - value) <= 1e-6, name
    assert report["forward_equivalents"] == free_report["forward_equivalents"]


def test_a_model_over_its_memory_bound_gives_an_error_result_naming_the_bound() -> None:
    tiny_bound = dataclasses.replace(QUICK, memory_gib=1e-5)
    result = BanDetector(tiny_bound).detect(
        _artifact(cached_export("resnet", 10, 32, "legacy"), 10, 32), DetectionContext(clean_data=_clean(64, 32))
    )
    assert result.status is Status.ERROR
    assert result.reason is not None and "memory bound" in result.reason and "GiB" in result.reason


def test_a_model_over_the_time_left_gives_an_error_result_before_it_starts() -> None:
    started = time.monotonic()
    result = BanDetector(QUICK).detect(
        _artifact(cached_export("vit", 10, 32, "legacy"), 10, 32),
        DetectionContext(clean_data=_clean(64, 32), deadline=Deadline.after(0.05)),
    )
    assert result.status is Status.ERROR
    assert result.reason is not None and "time limit" in result.reason and "forward-equivalents" in result.reason
    assert time.monotonic() - started < 10
