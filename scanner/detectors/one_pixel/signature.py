"""The one-pixel signature of an image classifier: black-box, forward passes only.

For each base image and each probe location (a pixel, or a patch of a grid for large inputs), set that location
(all channels at once, or one channel at a time) to each of K candidate values over the input range and record,
for every class, the largest increase of the predicted probability and the value that caused it.

Maps are kept per base, in a layout-free frame (classes, rows, cols), so the features and the heatmap never
care whether the model reads NCHW or NHWC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from scanner.detectors.interface import CleanData
from scanner.findings import InputSpec, Layout, Progress, no_progress
from scanner.runtime import MAX_BATCH_BYTES, batches

# Inputs per forward call; scanner.runtime.MAX_BATCH_BYTES bounds a batch's bytes for large images.
DEFAULT_BATCH = 1024


class ImageModel(Protocol):
    """What the signature needs from a model: raw outputs of a batch (scanner.runtime.OnnxClassifier does this)."""

    spec: InputSpec

    def logits(self, images: np.ndarray) -> np.ndarray: ...


# Log-probabilities are floored here: a class the model rules out entirely still moves by a finite amount.
LOG_FLOOR = -30.0


def log_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Log class probabilities from raw outputs: log-softmax, or the log of rows that already are probabilities."""
    outputs = np.asarray(outputs, dtype=np.float64)
    rows_are_probabilities = (
        outputs.min(initial=0.0) >= 0.0
        and outputs.max(initial=0.0) <= 1.0
        and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)
    )
    if rows_are_probabilities:
        logs = np.log(np.clip(outputs, 1e-300, None))
    else:
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        logs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    floored: np.ndarray = np.maximum(logs, LOG_FLOOR)
    return floored


def log_probabilities_of(model: ImageModel, images: np.ndarray) -> np.ndarray:
    """Log class probabilities of any number of `images`, run in chunks of at most MAX_BATCH_BYTES of input."""
    if not len(images):
        return log_probabilities(model.logits(images))
    chunks = batches(len(images), len(images), images[0].nbytes)
    return log_probabilities(np.concatenate([model.logits(images[start:stop]) for start, stop in chunks]))


@dataclass(frozen=True)
class SignatureSettings:
    """How to probe a model. The defaults are the ones the shipped classifier was trained with.

    mode:
      "full"            every location x every candidate value (x every channel when per_channel)
      "coarse-to-fine"  the two extreme values on all channels at once everywhere, then the full K (and
                        per_channel) only at the locations where the change was largest, per class; with clean
                        data the composite and blend probes run on the finest scale's signature only, on 72
                        held-out images, not both scales' on 128, and the patch probes on 8 images, not 32. At K=16
                        on the bench zoo: 5.7x fewer signature passes, 5.0x fewer for the whole detector with clean
                        data, at an AUC at most 0.018 below full mode (5 tree seeds, 3 image draws;
                        bench/RESULTS-one-pixel.md)
    Inputs larger than max_grid on a side are probed on a grid of at most max_grid x max_grid patches instead of
    pixels, in either mode: the cost stays bounded (at most max_grid^2 cells), at the price of resolution (a trigger
    smaller than a cell is only found if filling its whole cell with one value still fires it).
    """

    values: int = 3  # K candidate values, evenly spaced over the input range (ends included): low, middle, high
    per_channel: bool = False
    mode: str = "full"  # full | coarse-to-fine
    refine_fraction: float = 0.06  # coarse-to-fine: share of locations refined, split among the classes
    max_grid: int = 32  # inputs larger than this on a side are probed on a grid of patches (bounded cost)
    scales: tuple[int, ...] = (1, 2)  # probe cells of 1x1 and 2x2 base cells: part of a trigger fires more at 2x2
    clean_bases: int = 4  # clean images used as bases when clean data is given
    batch_size: int = DEFAULT_BATCH

    def cache_key(self) -> str:
        return (
            f"k{self.values}-pc{int(self.per_channel)}-{self.mode}-rf{self.refine_fraction}-g{self.max_grid}"
            f"-b{self.clean_bases}"  # not the scales: each scale's signature is cached on its own
        )


@dataclass(frozen=True)
class Signature:
    """Per base b, class c and probe cell (row, col): the largest probability increase and the value causing it.

    The same probe maximises the probability and its log, so `log_increase` (the rise in log-probability) comes
    with it: it still moves where the probability is saturated near 0 or 1, as on confident clean images.
    """

    increase: np.ndarray  # (bases, classes, rows, cols) float32, >= 0
    log_increase: np.ndarray  # (bases, classes, rows, cols) float32, >= 0
    best_value: np.ndarray  # (bases, classes, rows, cols) float32, in the input range
    base_probabilities: np.ndarray  # (bases, classes)
    value_range: tuple[float, float]
    cell: tuple[int, int]  # input pixels per probe cell (1, 1) unless probed on a patch grid
    base_kind: str  # "clean" or "synthetic"
    forward_passes: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.increase.shape[1])

    def mean_increase(self) -> np.ndarray:
        """(classes, rows, cols): the increase averaged over bases."""
        return np.asarray(self.increase.mean(axis=0))

    def save(self, path: str) -> None:
        np.savez_compressed(
            path,
            increase=self.increase,
            log_increase=self.log_increase,
            best_value=self.best_value,
            base_probabilities=self.base_probabilities,
            value_range=np.asarray(self.value_range, dtype=np.float64),
            cell=np.asarray(self.cell, dtype=np.int64),
            base_kind=np.asarray(self.base_kind),
            forward_passes=np.asarray(self.forward_passes, dtype=np.int64),
        )

    @classmethod
    def load(cls, path: str) -> Signature:
        with np.load(path) as data:
            low, high = (float(v) for v in data["value_range"])
            rows, cols = (int(v) for v in data["cell"])
            return cls(
                increase=data["increase"],
                log_increase=data["log_increase"],
                best_value=data["best_value"],
                base_probabilities=data["base_probabilities"],
                value_range=(low, high),
                cell=(rows, cols),
                base_kind=str(data["base_kind"]),
                forward_passes=int(data["forward_passes"]),
            )


def synthetic_bases(spec: InputSpec) -> np.ndarray:
    """Bases without clean data: low, mid-grey, high and a fixed smooth random image, in the model's layout."""
    ranges = np.asarray(spec.channel_ranges, dtype=np.float64)  # each channel's own range (normalised models)
    low, high = ranges[:, 0, None, None], ranges[:, 1, None, None]
    shape = (spec.channels, spec.height, spec.width)
    rng = np.random.default_rng(20200823)  # fixed: the same bases for every model, so signatures are comparable
    coarse = rng.random((spec.channels, 4, 4))
    rows = np.minimum(np.arange(spec.height) * 4 // spec.height, 3)
    cols = np.minimum(np.arange(spec.width) * 4 // spec.width, 3)
    smooth = coarse[:, rows][:, :, cols]
    unit = np.stack([np.zeros(shape), np.full(shape, 0.5), np.ones(shape), smooth])
    return _to_layout(low + unit * (high - low), spec.layout)


def clean_bases(clean: CleanData, count: int, seed: int = 0) -> np.ndarray:
    """`count` clean images (one per label first, when labels are given), in the model's layout."""
    total = len(clean.x)
    if clean.y is not None and len(clean.y) == total:
        labels = np.asarray(clean.y)
        firsts = [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)]
        rest = [i for i in range(total) if i not in set(firsts)]
        order = firsts + rest
    else:
        order = list(np.random.default_rng(seed).permutation(total))
    return np.asarray(clean.x[order[: max(1, count)]], dtype=np.float32)


def _to_layout(images_chw: np.ndarray, layout: Layout) -> np.ndarray:
    images = np.asarray(images_chw, dtype=np.float32)
    return images if layout is Layout.NCHW else np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def chw_view(batch: np.ndarray, layout: Layout) -> np.ndarray:
    """A (N, C, H, W) view on a batch in the model's layout: writes through it land in the batch."""
    return batch if layout is Layout.NCHW else batch.transpose(0, 3, 1, 2)


@dataclass(frozen=True)
class _Grid:
    """Probe cells: pixels, or patches of cell_h x cell_w pixels for large inputs."""

    rows: int
    cols: int
    cell_h: int
    cell_w: int

    @classmethod
    def for_spec(cls, spec: InputSpec, max_grid: int, scale: int = 1) -> _Grid:
        cell_h = min(spec.height, max(1, math.ceil(spec.height / max_grid)) * scale)
        cell_w = min(spec.width, max(1, math.ceil(spec.width / max_grid)) * scale)
        return cls(math.ceil(spec.height / cell_h), math.ceil(spec.width / cell_w), cell_h, cell_w)

    @property
    def size(self) -> int:
        return self.rows * self.cols

    @property
    def is_pixels(self) -> bool:
        return self.cell_h == 1 and self.cell_w == 1


def candidate_values(value_range: tuple[float, float], count: int) -> np.ndarray:
    low, high = value_range
    return np.linspace(low, high, max(2, count), dtype=np.float32)


def signature_for(
    model: ImageModel,
    bases: np.ndarray,
    settings: SignatureSettings | None = None,
    *,
    base_kind: str = "synthetic",
    scale: int = 1,
    progress: Progress = no_progress,
) -> Signature:
    """Probe `model` around each of `bases` (N, *image_shape in the model's layout) with cells of `scale` x `scale`
    base cells (pixels, or max_grid patches) and return its signature."""
    settings = settings or SignatureSettings()
    spec = model.spec
    grid = _Grid.for_spec(spec, settings.max_grid, scale)
    values = candidate_values(spec.value_range, settings.values)
    channel_sets = _channel_sets(spec.channels, settings.per_channel)
    bases = np.asarray(bases, dtype=np.float32)
    base_logs = log_probabilities_of(model, bases)
    passes = len(bases)
    all_cells = np.arange(grid.size)

    if settings.mode == "coarse-to-fine":
        extremes = candidate_values(spec.value_range, 2)
        coarse_passes = len(bases) * grid.size * len(extremes)
        refine_per_class = max(1, math.ceil(settings.refine_fraction * grid.size / spec.num_classes))
        most_refined = min(grid.size, refine_per_class * spec.num_classes)
        tracker = _ProgressSplit(progress, coarse_passes + len(bases) * most_refined * len(values) * len(channel_sets))
        maps = _probe(model, bases, base_logs, grid, all_cells, extremes, [None], settings, tracker.progress)
        passes += coarse_passes
        cells = _cells_to_refine(maps.log_increase, refine_per_class)
        tracker.advance(coarse_passes)
        fine = _probe(model, bases, base_logs, grid, cells, values, channel_sets, settings, tracker.progress)
        passes += len(bases) * len(cells) * len(values) * len(channel_sets)
        maps.merge(fine, cells)
    elif settings.mode == "full":
        maps = _probe(model, bases, base_logs, grid, all_cells, values, channel_sets, settings, progress)
        passes += len(bases) * grid.size * len(values) * len(channel_sets)
    else:
        raise ValueError(f"unknown signature mode {settings.mode!r}")
    shape = (len(bases), spec.num_classes, grid.rows, grid.cols)
    return Signature(
        increase=maps.increase.reshape(shape),
        log_increase=maps.log_increase.reshape(shape),
        best_value=maps.best_value.reshape(shape),
        base_probabilities=np.exp(base_logs).astype(np.float32),
        value_range=spec.value_range,
        cell=(grid.cell_h, grid.cell_w),
        base_kind=base_kind,
        forward_passes=passes,
    )


def signatures_for(
    model: ImageModel,
    bases: np.ndarray,
    settings: SignatureSettings | None = None,
    *,
    base_kind: str = "synthetic",
    progress: Progress = no_progress,
) -> tuple[Signature, ...]:
    """One signature per scale in `settings.scales`, finest first."""
    settings = settings or SignatureSettings()
    weights = [1.0 / (scale * scale) for scale in settings.scales]  # the rough share of passes each scale takes
    signatures = []
    for i, scale in enumerate(settings.scales):
        before, share = sum(weights[:i]) / sum(weights), weights[i] / sum(weights)

        def scaled(done: int, total: int, before: float = before, share: float = share) -> None:
            progress(int(1000 * (before + share * done / max(total, 1))), 1000)

        signatures.append(signature_for(model, bases, settings, base_kind=base_kind, scale=scale, progress=scaled))
    return tuple(signatures)


@dataclass
class _Maps:
    """Per (base, class, probed cell): the best probe's probability and log-probability rise, and its value."""

    increase: np.ndarray
    log_increase: np.ndarray
    best_value: np.ndarray

    @classmethod
    def empty(cls, bases: int, classes: int, cells: int) -> _Maps:
        return cls(*(np.zeros((bases, classes, cells), dtype=np.float32) for _ in range(3)))

    def merge(self, finer: _Maps, cells: np.ndarray) -> None:
        """Take `finer`'s results at `cells` wherever they beat these (the coarse probes are a subset of the fine)."""
        better = finer.log_increase > self.log_increase[:, :, cells]
        for mine, theirs in ((self.increase, finer.increase), (self.log_increase, finer.log_increase)):
            mine[:, :, cells] = np.where(better, theirs, mine[:, :, cells])
        self.best_value[:, :, cells] = np.where(better, finer.best_value, self.best_value[:, :, cells])


class _ProgressSplit:
    """Reports two successive stages as one progress total."""

    def __init__(self, progress: Progress, total: int) -> None:
        self._progress, self._total, self._offset = progress, total, 0

    def advance(self, done: int) -> None:
        self._offset += done

    def progress(self, done: int, total: int) -> None:
        del total
        self._progress(min(self._total, self._offset + done), self._total)


def _channel_sets(channels: int, per_channel: bool) -> list[int | None]:
    """None means all channels at once."""
    return list(range(channels)) if per_channel and channels > 1 else [None]


def _cells_to_refine(log_increase: np.ndarray, per_class: int) -> np.ndarray:
    """Union over classes of each class's `per_class` cells with the largest increase (max over bases)."""
    strongest = log_increase.max(axis=0).reshape(log_increase.shape[1], -1)  # (classes, cells)
    per_class = min(per_class, strongest.shape[1])
    top = np.argpartition(-strongest, per_class - 1, axis=1)[:, :per_class]
    return np.unique(top)


def _probe(
    model: ImageModel,
    bases: np.ndarray,
    base_logs: np.ndarray,
    grid: _Grid,
    cells: np.ndarray,
    values: np.ndarray,
    channel_sets: list[int | None],
    settings: SignatureSettings,
    progress: Progress,
) -> _Maps:
    """Best probe per (base, class, cell) over the variants (channel set x value).

    Batches hold whole cells: each cell's variants are contiguous, so one reshape + argmax reduces a batch.
    """
    spec = model.spec
    variants = len(channel_sets) * len(values)
    image_bytes = int(np.prod(spec.image_shape)) * 4
    batch_cells = max(1, min(settings.batch_size, MAX_BATCH_BYTES // image_bytes) // variants)
    maps = _Maps.empty(len(bases), spec.num_classes, len(cells))
    variant_values = np.tile(values, len(channel_sets))
    total = len(bases) * len(cells) * variants
    done = 0
    buffer = np.empty((batch_cells * variants, *spec.image_shape), dtype=np.float32)
    for b, base in enumerate(bases):
        base_probability = np.exp(base_logs[b])
        for start in range(0, len(cells), batch_cells):
            chunk = cells[start : start + batch_cells]
            batch = buffer[: len(chunk) * variants]
            batch[...] = base
            _write_probes(chw_view(batch, spec.layout), grid, chunk, values, channel_sets)
            logs = log_probabilities(model.logits(batch)).reshape(len(chunk), variants, spec.num_classes)
            strongest = logs.argmax(axis=1)  # (cells, classes): the same probe maximises p and log p
            best_logs = np.take_along_axis(logs, strongest[:, None, :], axis=1)[:, 0, :]
            window = slice(start, start + len(chunk))
            maps.log_increase[b, :, window] = np.maximum(best_logs - base_logs[b], 0.0).T
            maps.increase[b, :, window] = np.maximum(np.exp(best_logs) - base_probability, 0.0).T
            maps.best_value[b, :, window] = variant_values[strongest].T
            done += len(batch)
            progress(done, total)
    return maps


def _write_probes(
    chw: np.ndarray, grid: _Grid, cells: np.ndarray, values: np.ndarray, channel_sets: list[int | None]
) -> None:
    """Row i of the batch gets cell cells[i // variants] set to its variant's value (on its channel or all)."""
    variants = len(channel_sets) * len(values)
    cell_of_row = np.repeat(cells, variants)
    value_of_row = np.tile(values, len(channel_sets) * len(cells))
    channel_of_row = np.tile(
        np.repeat(np.asarray([-1 if c is None else c for c in channel_sets]), len(values)), len(cells)
    )
    rows = np.arange(len(cell_of_row))
    if grid.is_pixels:
        pixel_rows, pixel_cols = np.divmod(cell_of_row, grid.cols)
        all_channels = channel_of_row < 0
        if all_channels.any():
            picked = all_channels
            chw[rows[picked], :, pixel_rows[picked], pixel_cols[picked]] = value_of_row[picked, None]
        one = ~all_channels
        if one.any():
            chw[rows[one], channel_of_row[one], pixel_rows[one], pixel_cols[one]] = value_of_row[one]
        return
    for row, cell, value, channel in zip(rows, cell_of_row, value_of_row, channel_of_row, strict=True):
        r, c = divmod(int(cell), grid.cols)
        rs = slice(r * grid.cell_h, (r + 1) * grid.cell_h)
        cs = slice(c * grid.cell_w, (c + 1) * grid.cell_w)
        target = slice(None) if channel < 0 else slice(int(channel), int(channel) + 1)
        chw[row, target, rs, cs] = value


def signature_passes(spec: InputSpec, settings: SignatureSettings, bases: int, scale: int) -> int:
    """The forward passes `signature_for` makes at `scale` (at most, in coarse-to-fine mode), before running it."""
    grid = _Grid.for_spec(spec, settings.max_grid, scale)
    sets = len(_channel_sets(spec.channels, settings.per_channel))
    if settings.mode == "coarse-to-fine":
        refine_per_class = max(1, math.ceil(settings.refine_fraction * grid.size / spec.num_classes))
        refined = min(grid.size, refine_per_class * spec.num_classes)
        return bases * (1 + grid.size * 2 + refined * max(2, settings.values) * sets)
    return bases * (1 + grid.size * max(2, settings.values) * sets)
