"""BAN (Xu et al., NeurIPS 2024): adversarial neuron noise, white-box, from the ONNX artifact and clean samples.

A backdoored network has neurons that noise can easily push into the backdoor: under adversarial noise on its
backbone, and with the features that carry the clean decision masked out, it collapses onto its target class. Here
every model is compared at matched damage (eps searched per model). Beside the neuron noise, the same torch view
measures how easily one input-space perturbation per class sends clean images to that class (universal.py): a
trigger that covers the whole image is such a perturbation. Both sets of statistics are turned into a
probability by a logistic calibration trained on the zoo (data/ban_v1.json).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from scanner.detectors.ban.budget import Timing, Work
from scanner.detectors.interface import CleanData, DetectionContext, Detector
from scanner.errors import DetectorError
from scanner.findings import Budget, DetectorResult, Layout, ModelArtifact, Status

log = logging.getLogger(__name__)

CALIBRATION_FILE = "ban_v1.json"
MIN_SAMPLES = 20
# Under a budget the universal perturbations probe fewer classes, halving, down to this many; then the images the
# noise, the perturbations and the statistics are measured on halve, down to SAMPLE_SHARES[-1] of them (each count no
# lower than MIN_SAMPLES). Their statistics are shares of images: fewer images make them noisier, not different in
# scale (bench/RESULTS.md measures what that costs in detection).
MIN_PROBED_CLASSES = 2
SAMPLE_SHARES = (1.0, 0.5, 0.25, 0.125)
# Images in the batch that times a sample's forward and backward pass: the fewest BAN puts through a backward pass at
# once (universal_samples). Smaller batches are dominated by each call's overhead: on a 32 x 32 ResNet, 2 shared
# cores, a forward with backward took 11.6 ms per image in a batch of 8, 2.7 ms in 32 and 0.9 ms in 128.
TIMED_SAMPLES = 32
# What `statistics` computes (cached by the benchmarks under this version); BanDetector.version also covers the
# calibration, so a refit changes it without invalidating the cache.
STATISTICS_VERSION = "8"
# torch threads for BAN on CPU. Two take 25-40% off an idle 2-core machine (ResNet 14.0 -> 8.6-10.7 s), but with
# OpenMP's default busy waiting they take 3x longer while another process holds a core (CNN 28.5 s against 9.6 s on
# one thread): each waits for the other spinning. With passive waiting (OMP_WAIT_POLICY=PASSIVE, read when torch loads)
# the contended run takes 10.7 s. So two threads where waiting is passive, one otherwise (bench/RESULTS.md).
CPU_THREADS = 2


@dataclass(frozen=True)
class BanSettings:
    """Reference defaults where the reference has the knob (lambda 0.75 on |m|_1 / sg(|m|_1), mask batches of 128,
    eps 0.3 as the first eps tried; mask epochs cut from 20 to 5, noise steps from 30 to 10); the matched-damage
    search and the sample caps are ours."""

    lam: float = 0.75
    mask_epochs: int = 5  # the reference takes 20; bench/RESULTS.md measures the cut
    mask_batches: int = 20
    batch_size: int = 128
    noise_steps: int = 10  # the reference takes 30; bench/RESULTS.md measures the cut
    eps: float = 0.3
    eps_min: float = 0.005
    eps_max: float = 1.0
    probes: int = 5
    damage: float = 0.5  # accuracy under noise, as a fraction of the accuracy without noise, at which models compare
    fit_samples: int = 256
    eval_samples: int = 256
    universal_steps: int = 10  # signed-gradient steps per radius of the targeted universal perturbations
    universal_samples: int = 32  # clean images each universal perturbation is fitted to
    universal_eval_samples: int = 128  # held-out images its success is measured on
    # Bounds (budget.py): memory beyond the model's own, and how many classes the universal perturbations probe
    # (the most suspicious under noise first). 16 >= the 10 classes the shipped calibration was fitted on.
    memory_gib: float = 4.0
    probed_classes: int = 16


@dataclass(frozen=True)
class SampleCounts:
    """How many images each step measures on: the neuron noise, the universal perturbations (fitted, then measured),
    and the statistics."""

    noise: int
    universal: int
    eval: int
    universal_eval: int
    share: float = 1.0  # of the full settings' counts

    def scaled(self, share: float) -> SampleCounts:
        """`share` of each count, but no fewer than MIN_SAMPLES (or the count itself, when smaller)."""

        def part(count: int) -> int:
            return min(count, max(MIN_SAMPLES, round(count * share)))

        return SampleCounts(part(self.noise), part(self.universal), part(self.eval), part(self.universal_eval), share)


def torch_device(requested: str) -> str:
    import torch

    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise DetectorError("--device cuda was asked for, but torch sees no CUDA device", hint="use --device auto")
    return "cpu"


def import_torch() -> None:
    """Import torch, with OpenMP's workers waiting passively unless torch is already loaded or the user chose."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch  # noqa: F401


def cpu_threads() -> int:
    """CPU_THREADS where OpenMP waits passively, else 1 (see CPU_THREADS)."""
    return CPU_THREADS if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" else 1


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `count` for the block (None: left alone)."""
    import torch

    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class BanDetector(Detector):
    name: ClassVar[str] = "ban"
    # 7: calibrated on the neuron-noise statistics, the targeted universal perturbations and whether the two point at
    # one class, over the 220-model benchmark zoo; the target class is the one a universal perturbation reaches most
    # easily. 8: the same, recalibrated on statistics version 8 (channels-last images, self-padding convolutions).
    # 9: under a budget, fewer images after fewer classes (full settings unchanged).
    version: ClassVar[str] = "9"

    def __init__(self, settings: BanSettings | None = None, calibration: Any | None = None) -> None:
        self.settings = settings or BanSettings()
        self._calibration = calibration

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        if context.clean_data is None:
            return DetectorResult.not_applicable(self.name, "BAN needs clean sample data (--clean-data FILE.npz)")
        try:
            import_torch()
        except ImportError:
            return DetectorResult.not_applicable(self.name, "BAN needs torch: pip install 'model-scanner[torch]'")
        from scanner.torchview import UnsupportedGraph

        started = time.perf_counter()
        try:
            with torch_threads(cpu_threads() if torch_device(context.device) == "cpu" else None):
                statistics, cost, target_class = self.statistics(model, context.clean_data, context)
            score = self.calibration().probability(statistics)
            evidence = _evidence(self.calibration(), statistics)
        except UnsupportedGraph as error:
            return DetectorResult.not_applicable(self.name, error.one_line())
        except DetectorError as error:
            return DetectorResult.failed(self.name, error.one_line())
        return DetectorResult(
            detector=self.name,
            status=Status.SCANNED,
            score=score,
            target_class=target_class,
            forward_passes=cost["forward_equivalents"],
            seconds=time.perf_counter() - started,
            details={"statistics": statistics, **cost},
            evidence=evidence,
        )

    def calibration(self) -> Any:
        if self._calibration is None:
            from scanner.detectors.logistic import load_calibration

            self._calibration = load_calibration(CALIBRATION_FILE)
        return self._calibration

    def statistics(
        self, model: ModelArtifact, clean: CleanData, context: DetectionContext
    ) -> tuple[dict[str, float], dict[str, Any], int]:
        """BAN's statistics for one model (uncalibrated), its cost and bounds (forward-equivalents done and planned,
        the classes the universal perturbations probed, the memory plan), and the suspected target class.
        Raises budget.OverBound before any work when the model would pass the memory or time bound."""
        import torch

        from scanner.detectors.ban.budget import (
            GIB,
            bytes_per_sample,
            check_time,
            classes_to_probe,
            plan_batches,
            seconds_per_sample,
        )
        from scanner.detectors.ban.steps import (
            BanModel,
            Cost,
            noise_at_matched_damage,
            prediction_statistics,
            train_mask,
        )
        from scanner.detectors.ban.universal import (
            RADII,
            channel_bounds,
            statistic_name,
            targeted_success,
            universal_statistics,
        )
        from scanner.torchview import TorchGraph
        from scanner.torchview.anatomy import anatomy_of

        s = self.settings
        device = torch_device(context.device)
        x_all = np.asarray(clean.x, dtype=np.float32)
        if x_all.shape[1:] != model.spec.image_shape:
            raise DetectorError(
                f"clean data has images of shape {x_all.shape[1:]}, the model takes {model.spec.image_shape}",
                hint="give clean data in the model's own input layout",
            )
        if len(x_all) < MIN_SAMPLES:
            from scanner.torchview import UnsupportedGraph

            raise UnsupportedGraph(f"BAN needs at least {MIN_SAMPLES} clean samples, got {len(x_all)}")
        generator = torch.Generator().manual_seed(context.seed)
        order = torch.randperm(len(x_all), generator=generator).numpy()
        graph = TorchGraph(model.onnx_bytes, device=device)
        cost = Cost()
        x = torch.from_numpy(x_all[order]).to(device)
        if device == "cpu" and model.spec.layout is Layout.NCHW:  # x is 4-d: its shape was checked above
            # oneDNN's convolutions run faster on channels-last images, and the layout carries through the graph
            # (bench/RESULTS.md). An NHWC model's own transpose already gives its convolutions that layout.
            x = x.contiguous(memory_format=torch.channels_last)
        anatomy = anatomy_of(graph, x[:2])
        ban = BanModel(graph, anatomy, cost)
        classes = model.spec.num_classes
        with torch.no_grad():
            traced = graph.run({graph.input_name: x[:2]}, [graph.output_name], keep_all=True)
        plan = plan_batches(
            int(s.memory_gib * GIB), bytes_per_sample(traced, 2), min(s.universal_samples, len(x) // 2), classes
        )
        del traced
        batch_size = min(s.batch_size, plan.max_batch)
        probed_count = min(classes, s.probed_classes)
        half = len(x) // 2
        fit_count = min(half, s.fit_samples)
        full_counts = SampleCounts(
            noise=min(batch_size, fit_count),
            universal=min(s.universal_samples, fit_count),
            eval=min(len(x) - half, s.eval_samples),
            universal_eval=min(s.universal_eval_samples, len(x) - half),
        )

        def planned_with(probed: int, counts: SampleCounts) -> Work:
            """Every sample the steps below put through the model or its head, as Cost counts them."""
            return Work(
                forwards=(fit_count + counts.eval if clean.y is None else 0)  # labels from the model itself
                + fit_count  # features for the mask
                + counts.noise * (1 + s.probes)  # clean accuracy, accuracy under the noise at each eps tried
                + 4 * counts.eval  # clean and noisy, logits and features
                + len(RADII) * probed * counts.universal_eval,  # each perturbation's success
                backwards=counts.noise * s.probes * s.noise_steps  # the noise's steps at each eps tried
                + len(RADII) * probed * s.universal_steps * counts.universal,  # each perturbation's steps
                heads=3 * 2 * s.mask_epochs * s.mask_batches * min(batch_size, fit_count)  # the mask, kept and lost
                + 2 * counts.eval,  # clean and noisy through the mask's complement
            )

        # Timed only where seconds matter: a budget of passes fits the settings without it, the same on any machine.
        budget = context.budget
        timing = None
        if context.deadline is not None or (budget is not None and not budget.in_passes):
            timing = seconds_per_sample(BanModel(graph, anatomy, Cost()), x[: min(TIMED_SAMPLES, plan.max_batch)])

        def fits(work: Work) -> bool:
            assert budget is not None
            if budget.in_passes:
                return work.forward_equivalents <= budget.amount
            assert timing is not None
            return work.seconds(timing) <= budget.amount

        full_planned, counts = planned_with(probed_count, full_counts), full_counts
        if budget is not None:  # fewer classes probed, halving, then fewer images, until the plan fits the budget
            while probed_count > MIN_PROBED_CLASSES and not fits(planned_with(probed_count, counts)):
                probed_count = max(MIN_PROBED_CLASSES, probed_count // 2)
            for share in SAMPLE_SHARES:
                counts = full_counts.scaled(share)
                if fits(planned_with(probed_count, counts)):
                    break
        planned = planned_with(probed_count, counts)
        if timing is not None:
            remaining = context.deadline.remaining() if context.deadline is not None else None
            expected_seconds = check_time(planned, timing, remaining)
            log.debug("BAN on %s: %s planned, about %.1f s", model.path, planned, expected_seconds)

        def batched(function: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return torch.cat([function(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])

        fit, held = slice(0, fit_count), slice(half, half + counts.eval)
        x_fit, x_eval = x[fit], x[held]
        if clean.y is not None:
            y = torch.from_numpy(np.asarray(clean.y, dtype=np.int64)[order]).to(device)
            y_fit, y_eval = y[fit], y[held]
        else:
            y_fit, y_eval = batched(ban.logits, x_fit).argmax(1), batched(ban.logits, x_eval).argmax(1)
        total_steps = s.mask_epochs + s.probes + len(RADII)
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            context.progress(done, total_steps)

        z_fit = batched(ban.features, x_fit)
        mask = train_mask(
            ban,
            x_fit,
            z_fit,
            y_fit,
            epochs=s.mask_epochs,
            batches=s.mask_batches,
            batch_size=batch_size,
            lam=s.lam,
            generator=generator,
            progress=step,
        )
        x_noise, y_noise = x_fit[: counts.noise], y_fit[: counts.noise]
        with torch.no_grad():
            clean_accuracy = float((ban.logits(x_noise).argmax(1) == y_noise).float().mean())
        matched = noise_at_matched_damage(
            ban,
            x_noise,
            y_noise,
            target_accuracy=s.damage * clean_accuracy,
            eps_min=s.eps_min,
            eps_max=s.eps_max,
            first_eps=s.eps,
            probes=s.probes,
            steps=s.noise_steps,
            generator=generator,
            progress=step,
        )
        negative = 1.0 - mask
        stats: dict[str, float] = {
            "log_eps": math.log(matched.eps),
            "eps": matched.eps,
            "damage_reached": float(matched.reached),
            "fit_accuracy_under_noise": matched.accuracy,
            "mask_density": float(mask.mean()),
        }

        def through_negative_mask(z: torch.Tensor) -> torch.Tensor:
            """Logits of the eval inputs from their feature maps `z` with the mask's features removed."""
            with torch.no_grad():
                return torch.cat(
                    [
                        ban.head(x_eval[i : i + batch_size], negative * z[i : i + batch_size])
                        for i in range(0, len(x_eval), batch_size)
                    ]
                )

        z_eval = batched(ban.features, x_eval)
        stats.update(prediction_statistics("clean", batched(ban.logits, x_eval), y_eval, classes))
        stats.update(prediction_statistics("negative_clean", through_negative_mask(z_eval), y_eval, classes))
        noisy_logits = batched(lambda b: ban.logits(b, matched.noise), x_eval)
        stats.update(prediction_statistics("noisy", noisy_logits, y_eval, classes))
        noisy_negative_logits = through_negative_mask(batched(lambda b: ban.features(b, matched.noise), x_eval))
        stats.update(prediction_statistics("noisy_negative", noisy_negative_logits, y_eval, classes))
        # The pre-screen, free: the probability mass the noisy model puts on each class, whole and through the
        # mask's complement (a backdoored model collapses onto its target under noise).
        suspicion = noisy_logits.softmax(1).mean(0) + noisy_negative_logits.softmax(1).mean(0)
        probed = classes_to_probe(suspicion.cpu(), probed_count)
        success = targeted_success(
            ban,
            x_fit[: counts.universal],
            x_eval[: counts.universal_eval],
            y_eval[: counts.universal_eval],
            classes=probed,
            steps=s.universal_steps,
            progress=step,
            classes_per_chunk=max(1, plan.max_batch // max(1, counts.universal)),
            eval_batch=batch_size,
            channel_bounds=channel_bounds(model.spec, device),
        )
        stats.update(universal_statistics(success, probed))
        # The class one perturbation of a tenth of the value range reaches most easily: on the benchmark zoo the
        # target of 72 of 88 single-target backdoors; the class the noisy model collapses onto through the mask's
        # complement, 58 (bench/RESULTS.md).
        target_class = int(stats[statistic_name("top_class", 0.1)])
        # Do input space and neuron space point at one class (the class one perturbation reaches most easily, and the
        # class the noisy model collapses onto through the mask's complement)? They do for 45% of the benchmark zoo's
        # backdoored models and 7% of its clean ones (about chance: 1 in 10 classes).
        stats["target_agreement"] = float(target_class == int(stats["noisy_negative_top_class"]))
        log.debug("BAN statistics for %s: %s", model.path, stats)
        report: dict[str, Any] = {
            "forward_equivalents": cost.forward_equivalents,
            "head_equivalents": cost.head_equivalents,
            "planned_forward_equivalents": planned.forward_equivalents,
            "planned_head_equivalents": planned.heads,
            "probed_classes": probed,
            "memory_bound_bytes": plan.memory_bytes,
            "bytes_per_sample": plan.sample_bytes,
            "max_batch": plan.max_batch,
        }
        if budget is not None:
            report["budget"] = _budget_details(
                budget, planned, full_planned, timing, probed_count, min(classes, s.probed_classes), counts
            )
        return stats, report, target_class


def _evidence(calibration: Any, statistics: Mapping[str, float], count: int = 2) -> tuple[str, ...]:
    """The statistics that raised the score most (docs/detectors.md says what each measures)."""
    raising = [(name, term) for name, term in calibration.contributions(statistics) if term > 0][:count]
    return tuple(f"{name} = {statistics[name]:.3g} adds {term:.2f} to the log-odds" for name, term in raising)


def _budget_details(
    budget: Budget,
    planned: Work,
    full: Work,
    timing: Timing | None,
    probed: int,
    full_probed: int,
    counts: SampleCounts,
) -> dict[str, Any]:
    reduced = planned.forward_equivalents < full.forward_equivalents
    seconds = None if timing is None else planned.seconds(timing)
    cost = planned.forward_equivalents if budget.in_passes else seconds
    over = "; still over it at the fewest classes" if cost is not None and cost > budget.amount else ""
    return {
        "fitted_to": str(budget),
        "seconds_per_forward": None if timing is None else timing.per_forward,
        "seconds_per_backward": None if timing is None else timing.per_backward,  # a forward with its backward
        "planned_forward_equivalents": planned.forward_equivalents,
        "full_forward_equivalents": full.forward_equivalents,
        "planned_seconds": None if seconds is None else round(seconds, 3),
        "reduced": reduced,
        "settings": {"probed_classes": probed, "sample_share": counts.share},
        "note": f"reduced power to fit a budget of {budget}{over}: universal perturbations for {probed} classes,"
        f" not {full_probed}"
        + (
            f"; {counts.share:g} of the images for the noise, the perturbations and the statistics"
            if counts.share < 1
            else ""
        )
        + f"; {planned.forward_equivalents} forward-equivalents planned, not {full.forward_equivalents}"
        if reduced
        else "",
    }


def settings_from(values: Mapping[str, Any]) -> BanSettings:
    known = asdict(BanSettings())
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise DetectorError(f"unknown BAN settings: {', '.join(unknown)}", hint=f"known: {', '.join(known)}")
    return BanSettings(**{k: type(known[k])(v) for k, v in values.items()})
