"""Fitting the one-pixel probes to a budget, of seconds (from the model's measured cost of a forward pass) or of passes.

The signature's passes grow with the probe grid (max_grid^2 cells per scale); the composite, blend and patch probes
cost the same at any grid. Under a budget the grid is coarsened, 32 -> 16 -> 8 cells per side, until the planned
passes fit: their count under a budget of passes (no timing, so the same settings on any machine), or that count
times the measured seconds per pass under a budget of seconds. A coarser grid probes the model as if its input were
that small (the shipped heads were fitted on 16 x 16 and 32 x 32 grids; 8 x 8 is outside what they saw). Nothing else
changes: the heads read the same features. If even the coarsest grid does not fit, it runs anyway (`scan
--time-limit` is the hard bound) and says so.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from scanner.detectors.one_pixel.composite import BLENDS, FRACTIONS, MAX_CLASSES, probed_scales
from scanner.detectors.one_pixel.patches import GRID, RANDOM_PATTERNS
from scanner.detectors.one_pixel.signature import (
    ImageModel,
    SignatureSettings,
    log_probabilities_of,
    signature_passes,
)
from scanner.findings import Budget

# The steps down from the trained settings, in order: (largest probe grid, share of the held-out clean images the
# composite, blend and patch probes use). Their rates are shares of images, so fewer images make them noisier, not
# different in scale.
STEPS = ((16, 1.0), (16, 0.5), (8, 0.5), (8, 0.25), (8, 0.125), (8, 0.0625))
TIMED_PASSES = 32  # images in the batch that measures a pass, when the bases' own batch says it may not fit
# The whole detector's seconds over (passes x the timed seconds per pass): building and reading the probes costs on
# top of ONNX Runtime's batches (1.38 on a shapes32 model with clean data, 2 shared cores).
OVERHEAD = 1.4


@dataclass(frozen=True)
class ProbePlan:
    """The settings that run, and the figures they were chosen from."""

    settings: SignatureSettings
    probe_images: int  # held-out clean images for the composites and blends
    patch_images: int  # and for the patches
    budget: Budget
    seconds_per_pass: float | None  # None under a budget of passes: nothing is timed
    planned_passes: int  # with `settings` and these images
    full_passes: int  # with the settings the classifier was trained with, on all the images
    timing_passes: int  # spent measuring (not in the detector's forward_passes)
    trained_grid: int

    @property
    def reduced(self) -> bool:
        return self.planned_passes < self.full_passes

    @property
    def planned_seconds(self) -> float | None:
        return None if self.seconds_per_pass is None else self.planned_passes * self.seconds_per_pass * OVERHEAD

    @property
    def fits(self) -> bool:
        planned = self.planned_passes if self.budget.in_passes else self.planned_seconds
        return planned is not None and planned <= self.budget.amount

    def details(self) -> dict[str, Any]:
        seconds = self.planned_seconds
        return {
            "fitted_to": str(self.budget),
            "seconds_per_pass": self.seconds_per_pass,
            "planned_passes": self.planned_passes,
            "full_passes": self.full_passes,
            "planned_seconds": None if seconds is None else round(seconds, 3),
            "timing_passes": self.timing_passes,
            "reduced": self.reduced,
            "settings": {
                "max_grid": self.settings.max_grid,
                "probe_images": self.probe_images,
                "patch_images": self.patch_images,
            },
            "note": self.note(),
        }

    def note(self) -> str:
        if not self.reduced:
            return ""
        over = "" if self.fits else "; still over it at the lowest setting"
        images = f", probes on {self.probe_images} held-out images" if self.probe_images else ""
        return (
            f"reduced power to fit a budget of {self.budget}{over}: probe grid of at most"
            f" {self.settings.max_grid} cells per side (trained on {self.trained_grid}){images};"
            f" {self.planned_passes} forward passes, not {self.full_passes}"
        )


def planned_passes(
    model: ImageModel, settings: SignatureSettings, bases: int, probe_images: int, patch_images: int
) -> int:
    """Every forward pass the detector makes with `settings`: signatures on the bases (and, with clean-data probes,
    on the 4 synthetic bases), composites and blends on `probe_images`, patches on `patch_images`."""
    spec = model.spec
    passes = sum(signature_passes(spec, settings, bases, scale) for scale in settings.scales)
    if probe_images:
        passes += sum(signature_passes(spec, settings, 4, scale) for scale in settings.scales)
        probes = (len(FRACTIONS) + len(BLENDS)) * min(spec.num_classes, MAX_CLASSES)
        passes += len(probed_scales(settings.scales, settings.mode)) * probe_images * (1 + probes)
        passes += patch_images * (1 + (2**spec.channels + RANDOM_PATTERNS) * GRID * GRID)
    return passes


def _seconds_per_pass(model: ImageModel, images: np.ndarray) -> float:
    log_probabilities_of(model, images[:1])  # the session's first run sets itself up
    began = time.perf_counter()
    log_probabilities_of(model, images)
    return (time.perf_counter() - began) / len(images)


def fit_to_budget(
    model: ImageModel,
    bases: np.ndarray,
    settings: SignatureSettings,
    budget: Budget,
    *,
    probe_images: int = 0,
    patch_images: int = 0,
) -> ProbePlan:
    """The settings to run within `budget`: the trained ones when they fit, else the first of STEPS that does (else
    the last). Under a budget of seconds the bases' own batch gives a first, pessimistic cost per pass; only when that
    does not fit is a larger batch timed. A budget of passes is compared with the planned passes alone."""
    full = planned_passes(model, settings, len(bases), probe_images, patch_images)
    per_pass, timing = None, 0
    if not budget.in_passes:
        per_pass = _seconds_per_pass(model, bases)
        timing = 1 + len(bases)
        if full * per_pass * OVERHEAD > budget.amount:
            batch = np.concatenate([bases] * -(-TIMED_PASSES // len(bases)))[:TIMED_PASSES]
            per_pass = _seconds_per_pass(model, batch)
            timing += 1 + len(batch)
    plan = ProbePlan(settings, probe_images, patch_images, budget, per_pass, full, full, timing, settings.max_grid)
    for grid, share in STEPS:
        if plan.fits:
            break
        chosen = dataclasses.replace(settings, max_grid=min(grid, settings.max_grid))
        probes, patches = (max(1, round(count * share)) if count else 0 for count in (probe_images, patch_images))
        passes = planned_passes(model, chosen, len(bases), probes, patches)
        plan = dataclasses.replace(
            plan, settings=chosen, probe_images=probes, patch_images=patches, planned_passes=passes
        )
    return plan
