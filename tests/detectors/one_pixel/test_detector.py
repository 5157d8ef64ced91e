"""OnePixelDetector end to end on real ONNX models: results, heatmaps, failures as values, registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanner.detectors import DETECTORS
from scanner.detectors.interface import CleanData, DetectionContext
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.detectors.one_pixel.classifier import COMBINED, LogisticHead, SignatureClassifier
from scanner.detectors.one_pixel.composite import BLENDS, FRACTIONS, composite_feature_names
from scanner.detectors.one_pixel.features import feature_names
from scanner.detectors.one_pixel.patches import GRID, RANDOM_PATTERNS
from scanner.detectors.one_pixel.signature import SignatureSettings
from scanner.findings import InputSpec, Layout, ModelArtifact, Status
from tests.detectors.one_pixel.pixel_readers import pixel_reader


def neutral_classifier(mode: str = "full") -> SignatureClassifier:
    """Scores 0.5 for every model: for tests of everything but the score."""
    n = len(feature_names((1, 2)))
    head = LogisticHead(np.zeros(n), np.ones(n), np.zeros(n), 0.0)
    return SignatureClassifier({"clean": head, "synthetic": head}, {"scales": [1, 2], "mode": mode}, {})


def test_registered_under_its_cli_name() -> None:
    detector = DETECTORS["one-pixel"]()
    assert isinstance(detector, OnePixelDetector)
    assert detector.name == "one_pixel"


def test_detect_reports_passes_seconds_peak_and_writes_a_heatmap(tmp_path: Path) -> None:
    artifact, pixels = pixel_reader(3, 20, 20, 4, layout=Layout.NHWC, seed=11)
    calls: list[tuple[int, int]] = []
    detector = OnePixelDetector(SignatureSettings(values=4), classifier=neutral_classifier(), threads=1)
    context = DetectionContext(artifacts_dir=tmp_path, progress=lambda done, total: calls.append((done, total)))
    result = detector.detect(artifact, context)

    assert result.status is Status.SCANNED
    assert result.score == pytest.approx(0.5)
    # 4 synthetic bases, then every pixel x 4 values, then every 2x2 block x 4 values
    assert result.forward_passes == 4 + 4 * 20 * 20 * 4 + 4 + 4 * 10 * 10 * 4
    assert result.seconds is not None and result.seconds > 0
    target = result.target_class
    assert target is not None
    _, row, col = pixels[target]
    assert (result.details["peak"]["row"], result.details["peak"]["col"]) == (row, col)
    assert result.details["bases"] == "synthetic"
    assert calls[-1][0] == calls[-1][1]

    heatmap = Path(result.details["heatmap"])
    assert heatmap.parent == tmp_path and heatmap.suffix == ".png"
    with Image.open(heatmap) as picture:
        assert picture.width >= 240 and picture.height > picture.width  # upscaled map, scale bar, caption
        pixels_rgb = np.asarray(picture.convert("RGB"))
    assert len(np.unique(pixels_rgb.reshape(-1, 3), axis=0)) > 20  # a colour map, not a blank


def test_clean_data_becomes_the_bases_when_it_fits() -> None:
    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=12)
    rng = np.random.default_rng(0)
    clean = CleanData(x=rng.random((10, 1, 8, 8), dtype=np.float32), y=np.arange(10) % 3)
    detector = OnePixelDetector(SignatureSettings(values=2, clean_bases=3), classifier=neutral_classifier())
    result = detector.detect(artifact, DetectionContext(clean_data=clean))
    assert result.details["bases"] == "clean" and result.details["base_count"] == 3
    misfit = CleanData(x=rng.random((10, 1, 9, 9), dtype=np.float32))
    result = detector.detect(artifact, DetectionContext(clean_data=misfit))
    assert result.details["bases"] == "synthetic"


def test_with_clean_data_a_classifier_with_a_combined_head_gets_both_signatures_and_the_composites() -> None:
    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=12)
    clean = CleanData(x=np.random.default_rng(0).random((10, 1, 8, 8), dtype=np.float32))
    n, m = len(feature_names((1, 2))), len(composite_feature_names((1, 2)))
    # A head that reads only the synthetic signature's features: its score shows which features it got.
    coef = np.concatenate([np.zeros(n), np.ones(n), np.zeros(m)])
    both = LogisticHead(np.zeros(2 * n + m), np.ones(2 * n + m), coef, 0.0)
    neutral = neutral_classifier()
    classifier = SignatureClassifier({**neutral.heads, COMBINED: both}, neutral.settings, {})
    settings = SignatureSettings(values=2, clean_bases=3)
    steps: list[tuple[int, int]] = []
    context = DetectionContext(clean_data=clean, progress=lambda done, total: steps.append((done, total)))
    combined = OnePixelDetector(settings, classifier=classifier).detect(artifact, context)
    clean_only = OnePixelDetector(settings, classifier=neutral).detect(artifact, DetectionContext(clean_data=clean))
    synthetic = OnePixelDetector(settings, classifier=neutral).detect(artifact, DetectionContext())
    assert combined.details["classifier_head"] == COMBINED and combined.details["bases"] == "clean"
    # The composites: per scale, every class at every fraction on the 7 clean images that are not bases, plus
    # one pass of those images as they are.
    composite_passes = 2 * ((len(FRACTIONS) + len(BLENDS)) * 3 + 1) * 7
    # The patch probes: every pattern (2 solid grey levels, the random ones) at every place, on the same 7 images.
    patch_passes = ((2 + RANDOM_PATTERNS) * GRID * GRID + 1) * 7
    probe_passes = composite_passes + patch_passes
    assert combined.forward_passes == clean_only.forward_passes + synthetic.forward_passes + probe_passes  # type: ignore[operator]
    assert combined.details["composite"].keys() == {"class", "pixels", "share_of_images_sent", "images"}
    assert combined.details["composite"]["images"] == 7
    assert combined.details["patch"].keys() == {"side", "share_of_images_changed", "images"}
    assert combined.details["patch"]["images"] == 7
    assert combined.score is not None and combined.score != 0.5
    done = [step for step, _ in steps]
    assert done == sorted(done) and steps[-1][0] == steps[-1][1]  # the bar never goes back, and ends full
    assert synthetic.details["classifier_head"] == "synthetic"


@pytest.mark.parametrize("mode", ["full", "coarse-to-fine"])
def test_the_probes_run_on_the_mode_s_scales_and_number_of_held_out_images(mode: str) -> None:
    """Full mode applies the composites of both scales' signatures to 128 held-out clean images and the patch probes
    to the first 32 of them; coarse-to-fine only the finest scale's, to 72 images, and the patch probes to 8: the
    whole detector's passes then fall about 5x, not only the signatures' (bench/RESULTS-one-pixel.md)."""
    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=12)
    clean = CleanData(x=np.random.default_rng(1).random((200, 1, 8, 8), dtype=np.float32))
    n, m = len(feature_names((1, 2))), len(composite_feature_names((1, 2), mode))
    head = LogisticHead(np.zeros(2 * n + m), np.ones(2 * n + m), np.zeros(2 * n + m), 0.0)
    neutral = neutral_classifier()
    trained = {**neutral.settings, "mode": mode}
    classifier = SignatureClassifier({**neutral.heads, COMBINED: head}, trained, {})
    settings = SignatureSettings(values=4, clean_bases=3, mode=mode)
    result = OnePixelDetector(settings, classifier=classifier).detect(artifact, DetectionContext(clean_data=clean))
    clean_only = OnePixelDetector(settings, classifier=neutral_classifier(mode)).detect(
        artifact, DetectionContext(clean_data=clean)
    )
    synthetic = OnePixelDetector(settings, classifier=neutral_classifier(mode)).detect(artifact, DetectionContext())
    assert result.details["classifier_head"] == COMBINED
    images, patch_images, scales = {"full": (128, 32, 2), "coarse-to-fine": (72, 8, 1)}[mode]
    assert result.details["composite"]["images"] == images
    assert result.details["patch"]["images"] == patch_images
    composite_passes = scales * ((len(FRACTIONS) + len(BLENDS)) * 3 + 1) * images
    patch_passes = ((2 + RANDOM_PATTERNS) * GRID * GRID + 1) * patch_images
    probes = result.forward_passes - clean_only.forward_passes - synthetic.forward_passes  # type: ignore[operator]
    assert probes == composite_passes + patch_passes


def test_a_classifier_trained_in_another_mode_is_refused_not_fed_other_features() -> None:
    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=12)
    settings = SignatureSettings(values=2, mode="coarse-to-fine")
    result = OnePixelDetector(settings, classifier=neutral_classifier("full")).detect(artifact, DetectionContext())
    assert result.status is Status.ERROR
    assert result.reason and "trained on scales (1, 2) in full mode, not (1, 2) in coarse-to-fine mode" in result.reason


def test_a_model_that_cannot_run_is_a_failed_result_not_an_exception() -> None:
    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW)
    wrong = InputSpec("no_such_input", "logits", Layout.NCHW, 1, 8, 8, 3)
    broken = ModelArtifact(artifact.path, artifact.sha256, artifact.onnx_bytes, wrong)
    result = OnePixelDetector(classifier=neutral_classifier()).detect(broken, DetectionContext())
    assert result.status is Status.ERROR
    assert result.reason and "could not run" in result.reason


def test_the_heatmap_is_named_after_the_model_and_shows_a_sample_input(tmp_path: Path) -> None:
    artifact, _ = pixel_reader(3, 20, 20, 4, layout=Layout.NHWC, seed=11)
    detector = OnePixelDetector(SignatureSettings(values=4), classifier=neutral_classifier(), threads=1)
    named = detector.detect(
        artifact, DetectionContext(artifacts_dir=tmp_path / "named", model_name="fraud/cnn v2\x1b[2J")
    )
    picture_path = Path(named.details["heatmap"])
    assert picture_path.name.startswith("fraud_cnn_v2_2J-") and picture_path.name.endswith("-one-pixel.png")
    assert picture_path.parent == tmp_path / "named"
    with Image.open(picture_path) as picture:
        # map, scale bar, caption, then the sample input at the map's size: twice as tall as wide, at least
        assert picture.height >= 2 * picture.width
        lower = np.asarray(picture.convert("RGB"))[-picture.width // 2 :]
    assert (lower != 255).any(axis=-1).sum() > 10_000  # the sample (here a flat synthetic base), not a blank margin
