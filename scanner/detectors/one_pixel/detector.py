"""The one-pixel signature detector (Huang et al., ECCV 2020): black-box, ONNX Runtime forward passes only.

Probe the model around a few bases (clean images when clean data is given, fixed synthetic images otherwise), turn
the signature into size- and class-count-free features, and let the shipped classifier say how likely a backdoor is.
With clean data, the classifier also reads the fixed synthetic bases' signature and probes on held-out clean images:
each class's strongest signature cells set together, the whole image blended toward the class's best values
(scanner.detectors.one_pixel.composite), and small saturated squares stamped on a grid of places
(scanner.detectors.one_pixel.patches).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from scanner.detectors.interface import DetectionContext, Detector
from scanner.detectors.one_pixel.budget import ProbePlan, fit_to_budget
from scanner.detectors.one_pixel.classifier import COMBINED, SignatureClassifier
from scanner.detectors.one_pixel.composite import (
    CompositeRates,
    composite_rates,
    probe_features,
    probe_images,
    probed_scales,
    strongest_composite,
)
from scanner.detectors.one_pixel.features import model_features, suspected_target
from scanner.detectors.one_pixel.input_space import probed_model, unit_clean_data
from scanner.detectors.one_pixel.patches import (
    PatchAnswers,
    patch_answers,
    strongest_patch,
)
from scanner.detectors.one_pixel.signature import (
    ImageModel,
    Signature,
    SignatureSettings,
    clean_bases,
    signatures_for,
    synthetic_bases,
)
from scanner.errors import ScannerError
from scanner.findings import DetectorResult, InputSpec, Layout, ModelArtifact, Progress, Status

log = logging.getLogger(__name__)

NAME = "one_pixel"


class OnePixelDetector(Detector):
    name: ClassVar[str] = NAME
    # 4: with clean data, the patch probes join the signatures on clean and synthetic bases and the composite probes
    # (3: without the patch probes; 2: the signatures alone; 1: a logistic head). 5: under a budget, down to a
    # sixteenth of the probe images (full settings unchanged). 6: a model with a value range other than [0, 1] is
    # probed in [0, 1] mapped onto its range, as a normalised one was (the patch probes stamped 0 and 1 on [-1, 1]).
    version: ClassVar[str] = "6"

    def __init__(
        self,
        settings: SignatureSettings | None = None,
        *,
        classifier: SignatureClassifier | None = None,
        classifier_path: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self._classifier = classifier
        self._classifier_path = classifier_path
        self._settings = settings
        self.threads = threads

    @property
    def classifier(self) -> SignatureClassifier:
        if self._classifier is None:
            self._classifier = SignatureClassifier.load(self._classifier_path)
        return self._classifier

    @property
    def settings(self) -> SignatureSettings:
        """Explicit settings, else the ones the classifier was trained with, so its features match."""
        if self._settings is None:
            known = set(SignatureSettings.__dataclass_fields__)
            trained = {k: v for k, v in self.classifier.settings.items() if k in known}
            if "scales" in trained:
                trained["scales"] = tuple(trained["scales"])
            self._settings = SignatureSettings(**trained)
        return self._settings

    def _probe(
        self, model: ModelArtifact, context: DetectionContext, *, with_composites: bool
    ) -> tuple[
        tuple[Signature, ...], tuple[Signature, ...], tuple[CompositeRates, ...], PatchAnswers | None, ProbePlan | None
    ]:
        """(signatures on the context's bases; when those were clean and `with_composites`, the signatures on
        synthetic bases, the clean signatures' composite rates on held-out clean images and the patch probes' answers
        on the first of those, else none; the plan that fitted the settings to the context's budget, if any),
        signatures and rates one per scale, finest first.

        Raises on runtime trouble; `detect` turns that into a failed result."""
        from scanner.runtime import OnnxClassifier

        runner: ImageModel = OnnxClassifier(
            model, device=context.device, threads=self.threads, deadline=context.deadline
        )
        runner = probed_model(runner)
        context = dataclasses.replace(context, clean_data=unit_clean_data(context.clean_data, model.spec))
        bases, kind = choose_bases(runner.spec, context, self.settings)
        more = kind == "clean" and with_composites
        images = patch_images = np.empty((0, *runner.spec.image_shape), dtype=np.float32)
        if more:
            assert context.clean_data is not None  # clean bases came from it
            images, patch_images = probe_images(context.clean_data, bases, self.settings.mode, seed=context.seed)
        settings, plan = self.settings, None
        if context.budget is not None:
            plan = fit_to_budget(
                runner,
                bases,
                self.settings,
                context.budget,
                probe_images=len(images) if more else 0,
                patch_images=len(patch_images) if more else 0,
            )
            settings, images, patch_images = (
                plan.settings,
                images[: plan.probe_images],
                patch_images[: plan.patch_images],
            )
        # Progress in thousandths: the second signature costs about as much as the first, and at the default settings
        # the composite, blend and patch probes about as much as both.
        stages = (0.25, 0.25, 0.5) if more else (1.0, 0.0, 0.0)

        def stage(index: int) -> Progress:
            before, share = sum(stages[:index]), stages[index]
            return lambda done, total: context.progress(int(1000 * (before + share * done / max(total, 1))), 1000)

        first = signatures_for(runner, bases, settings, base_kind=kind, progress=stage(0))
        if not more:
            return first, (), (), None, plan
        synthetic = signatures_for(
            runner, synthetic_bases(runner.spec), settings, base_kind="synthetic", progress=stage(1)
        )
        probed = probed_scales(first, settings.mode)
        rates, probe_progress = [], stage(2)
        for done, signature in enumerate(probed):
            rates.append(composite_rates(runner, signature, images))
            probe_progress(done + 1, len(probed) + 1)
        patches = patch_answers(runner, patch_images)
        probe_progress(len(probed) + 1, len(probed) + 1)
        return first, synthetic, tuple(rates), patches, plan

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        started = time.perf_counter()
        try:
            classifier = self.classifier
            signatures, synthetic, rates, patches, plan = self._probe(
                model, context, with_composites=COMBINED in classifier.heads
            )
        except ScannerError as error:
            return DetectorResult.failed(NAME, error.one_line())
        except Exception as error:  # ONNX Runtime raises its own types for graphs it cannot run
            log.debug("one-pixel signature failed for %s", model.path, exc_info=True)
            return DetectorResult.failed(NAME, f"could not run the model: {type(error).__name__}: {error}")
        signature = signatures[0]  # the finest: peak and heatmap come from it
        if (tuple(self.settings.scales), self.settings.mode) != (classifier.scales, classifier.mode):
            return DetectorResult.failed(
                NAME,
                f"the classifier was trained on scales {classifier.scales} in {classifier.mode} mode,"
                f" not {tuple(self.settings.scales)} in {self.settings.mode} mode",
            )
        if patches is not None:
            features = np.concatenate(
                [model_features(signatures), model_features(synthetic), probe_features(rates, patches)]
            )
            head = COMBINED
        else:
            features, head = model_features(signatures), signature.base_kind
        score = classifier.probability(features, head)
        target = suspected_target(signatures)
        details = _details(signature, target, model.spec)
        details["classifier_head"] = head
        if patches is not None:
            details["composite"] = strongest_composite(rates[0], signature)
            details["patch"] = strongest_patch(patches)
        details["settings"] = asdict(self.settings if plan is None else plan.settings)
        if plan is not None:
            details["budget"] = plan.details()
        if context.artifacts_dir is not None:
            details["heatmap"] = str(
                write_signature_heatmap(
                    signature,
                    target,
                    model,
                    context.artifacts_dir,
                    score,
                    name=context.model_name,
                    sample=sample_image(model.spec, context),
                )
            )
        return DetectorResult(
            detector=NAME,
            status=Status.SCANNED,
            score=score,
            target_class=target,
            forward_passes=sum(s.forward_passes for s in (*signatures, *synthetic))
            + sum(r.forward_passes for r in rates)
            + (patches.forward_passes if patches is not None else 0),
            seconds=time.perf_counter() - started,
            details=details,
            evidence=evidence(details, target),
        )


def evidence(details: Mapping[str, Any], target: int) -> tuple[str, ...]:
    """What the probes saw, in words: the clean-data probes first (they weigh most in the clean-data head), then the
    signature's peak."""
    said = []
    if composite := details.get("composite"):
        said.append(
            f"the {composite['pixels']} pixels its signature ranks highest, set together to their best values, send "
            f"{composite['share_of_images_sent']:.0%} of {composite['images']} held-out clean images to class "
            f"{composite['class']}"
        )
    if patch := details.get("patch"):
        said.append(
            f"one saturated {patch['side']}x{patch['side']} square changes the answer for up to "
            f"{patch['share_of_images_changed']:.0%} of {patch['images']} clean images"
        )
    peak = details["peak"]
    said.append(
        f"the signature of class {target} peaks at row {peak['row']}, column {peak['col']}: one pixel there raises "
        f"its probability by {details['peak_probability_rise']:.3f} on average over {details['base_count']} "
        f"{details['bases']} bases"
    )
    return tuple(said)


def choose_bases(spec: InputSpec, context: DetectionContext, settings: SignatureSettings) -> tuple[np.ndarray, str]:
    """Clean images as bases when the clean data fits the model, else the fixed synthetic bases."""
    clean = context.clean_data
    if clean is not None and len(clean.x) and tuple(clean.x.shape[1:]) == spec.image_shape:
        return clean_bases(clean, settings.clean_bases, seed=context.seed), "clean"
    if clean is not None:
        log.warning(
            "clean data of shape %s does not fit the model's input %s: one-pixel uses synthetic bases",
            tuple(clean.x.shape[1:]),
            spec.image_shape,
        )
    return synthetic_bases(spec), "synthetic"


def peak_of(signature: Signature, target: int) -> tuple[int, int]:
    """(row, col) in probe cells of the target class's largest mean log-probability rise."""
    target_map = signature.log_increase[:, target].mean(axis=0)
    row, col = np.unravel_index(int(target_map.argmax()), target_map.shape)
    return int(row), int(col)


def _details(signature: Signature, target: int, spec: InputSpec) -> dict[str, Any]:
    row, col = peak_of(signature, target)
    cell_h, cell_w = signature.cell
    return {
        # top-left input pixel of the peak cell, and the cell's size (1 x 1 unless probed on a patch grid)
        "peak": {"row": row * cell_h, "col": col * cell_w, "height": cell_h, "width": cell_w},
        "peak_probability_rise": float(signature.increase[:, target, row, col].mean()),
        "peak_log_probability_rise": float(signature.log_increase[:, target, row, col].mean()),
        "peak_value": float(np.median(signature.best_value[:, target, row, col])),
        "bases": signature.base_kind,
        "base_count": int(signature.increase.shape[0]),
        "input": {"height": spec.height, "width": spec.width, "channels": spec.channels, "layout": spec.layout.value},
    }


def sample_image(spec: InputSpec, context: DetectionContext) -> np.ndarray:
    """One input for people to look at under the heatmap, (H, W) or (H, W, 3) in [0, 1]: the first clean image when
    the clean data fits the model, else the synthetic base with the most texture (the others are flat: black, grey,
    white)."""
    clean = context.clean_data
    fits = clean is not None and len(clean.x) and tuple(clean.x.shape[1:]) == spec.image_shape
    if fits and clean is not None:
        image = np.asarray(clean.x[0], dtype=np.float64)
    else:
        image = np.asarray(max(synthetic_bases(spec), key=lambda base: float(np.std(base))), dtype=np.float64)
    if spec.layout is Layout.NCHW:
        image = image.transpose(1, 2, 0)
    ranges = np.asarray(spec.channel_ranges, dtype=np.float64)  # each channel's range: normalised models differ
    image = (image - ranges[:, 0]) / (ranges[:, 1] - ranges[:, 0])
    return image if image.shape[2] == 3 else image.mean(axis=2)


def write_signature_heatmap(
    signature: Signature,
    target: int,
    model: ModelArtifact,
    directory: Path,
    score: float,
    *,
    name: str = "",
    sample: np.ndarray | None = None,
) -> Path:
    """The target class's map as a PNG named after the model (`name`, else the file's stem) and its digest."""
    from scanner.detectors.heatmap import file_stem, write_heatmap

    row, col = peak_of(signature, target)
    name = name or Path(model.path).stem
    path = Path(directory) / f"{file_stem(name)}-{model.sha256[:8]}-one-pixel.png"
    caption = (
        # ASCII only: the default font draws nothing else, and a name's control characters must not reach it.
        "model " + "".join(c if " " <= c <= "~" else "?" for c in name)[:60],
        f"one-pixel signature, suspected class {target}",
        f"log-prob rise, mean of {signature.increase.shape[0]} {signature.base_kind} bases",
        f"peak at row {row * signature.cell[0]}, col {col * signature.cell[1]}; one-pixel score {score:.2f}",
    )
    target_map = signature.log_increase[:, target].mean(axis=0)
    return write_heatmap(target_map, path, caption=caption, marker=(row, col), sample=sample)
