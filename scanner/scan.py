"""The scan orchestrator: targets in, one judged `ScanResult` per model file out.

`Scanner(detectors, policy)` loads each model through the intake, runs every detector on it (a detector that fails or
does not apply becomes a result with a reason, never an exception that hides the others), fuses their scores, and
hands the result to the policy. It prints nothing and writes nothing but what detectors write to `artifacts_dir`.
Callers: the `scan` command, the registry's workers, the re-scan executors.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scanner.detectors.interface import CleanData, DetectionContext, Detector
from scanner.errors import ScannerError, TimeLimitExceeded, UsageError
from scanner.findings import (
    Budget,
    Deadline,
    DetectorResult,
    ErrorInfo,
    InputSpec,
    Layout,
    ModelArtifact,
    Normalization,
    Progress,
    ScanResult,
    Status,
    Verdict,
    no_progress,
)
from scanner.policy import Policy, PromotionTarget, evaluate

log = logging.getLogger(__name__)

# Clean sample data: an .npz (a zip archive) of at most this many unpacked bytes; a scan needs a few hundred images.
_NPZ_MAGIC = b"PK\x03\x04"
MAX_CLEAN_DATA_BYTES = 2**30
# How far clean images may stray past the model's value range (a share of its span: rounding, augmentation) before
# they are taken to be on another scale (0-255 for a model that takes 0-1) and refused.
VALUE_RANGE_SLACK = 0.05

# How long one model's detectors may run, all together. A 32x32x3 zoo model takes seconds on 2 cores
# (bench/RESULTS.md); the limit is there for graphs that never end, so that a registry worker is not held for
# good, and is far above what the patch grid lets a 224x224 model cost. A scan that reaches it is an error, which a
# fail-closed policy blocks.
DEFAULT_TIME_LIMIT_S = 3600.0
# Seconds one model's detectors should fit their settings to, shared evenly between them (--budget of scan, serve and
# rescan): at the default, models of the zoo's sizes run at full power; large ones run with reduced settings, and
# their report says so.
DEFAULT_BUDGET_S = 600.0
DEFAULT_BUDGET = Budget(DEFAULT_BUDGET_S)

# The intake's calls, injectable: load(path, value_range=..., layout=...) -> ModelArtifact; find(target) -> model
# files, and files refused without loading (scanner.intake.RefusedFile: a path and the IntakeError saying why).
ModelLoader = Callable[..., ModelArtifact]
ModelFinder = Callable[[Path], Sequence[Any]]
Fuse = Callable[[Mapping[str, DetectorResult]], tuple[float | None, Verdict]]

# Intake errors that mean "fine model, but not one the detectors can judge" (kind of NotAnImageModel).
NOT_APPLICABLE_KINDS = frozenset({"not_applicable"})


@dataclass(frozen=True)
class ScanTarget:
    """One model file to scan, and how the report and the policy name it."""

    path: Path
    label: str  # in reports: the path as found, or models:/name/version
    model_name: str  # what the policy's globs match: the registered name, or the file name without its suffix
    clean_data: Path | None = None  # found beside the model (a registry version's clean_sample.npz)

    @classmethod
    def for_file(cls, path: Path) -> ScanTarget:
        return cls(path=path, label=str(path), model_name=path.stem if path.suffix else path.name)


@dataclass(frozen=True)
class ScanOptions:
    """How to run the detectors. Explicit values here win over the policy's input defaults."""

    device: str = "auto"
    artifacts_dir: Path | None = None
    clean_data: CleanData | None = None  # --clean-data: for every target
    value_range: tuple[float, float] | None = None
    normalization: Normalization | None = None  # --mean/--std: per channel, applied after value_range
    layout: Layout | None = None
    seed: int = 0
    max_model_bytes: int | None = None  # --max-model-size: the intake's size limit (None: its default, 1 GiB)
    time_limit_s: float | None = DEFAULT_TIME_LIMIT_S  # --time-limit: for one model's detectors (None: no limit)
    budget: Budget | None = DEFAULT_BUDGET  # --budget: for one model's detectors together (None: full settings)
    # --synthesize-clean-data: where no clean data is given, images the model puts in each class (class inversion on
    # the torch view), so that BAN and the one-pixel clean-data probes run (scanner.detectors.ban.inversion)
    synthesize_clean_data: bool = False


class Scanner:
    """Runs detectors on models and judges them: `Scanner(detectors, policy).scan(targets)`."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        policy: Policy,
        *,
        fuse: Fuse | None = None,
        options: ScanOptions = ScanOptions(),
        load_model: ModelLoader | None = None,
        on_target: Progress = no_progress,
        on_step: Progress = no_progress,
    ) -> None:
        names = [detector.name for detector in detectors]
        if len(set(names)) != len(names):
            raise UsageError(f"detectors listed twice: {', '.join(names)}", hint="name each detector once")
        self.detectors = tuple(detectors)
        self.policy = policy
        self.fuse = fuse or _default_fuse()
        self.options = options
        self.load_model = load_model or _default_loader(options.max_model_bytes)
        self.on_target = on_target
        self.on_step = on_step
        self._clean_cache: dict[Path, CleanData] = {}

    def scan(self, targets: Sequence[ScanTarget | ScanResult]) -> list[ScanResult]:
        """Scan and judge each target; a `ScanResult` among them (a target that failed earlier) is only judged."""
        results = []
        for done, target in enumerate(targets, start=1):
            if isinstance(target, ScanResult):
                results.append(self.judge(target, PromotionTarget(_name_of(target.target))))
            else:
                results.append(self.scan_target(target))
            self.on_target(done, len(targets))
        return results

    def scan_target(self, target: ScanTarget, promotion: PromotionTarget | None = None) -> ScanResult:
        """Scan one model file and judge it for `promotion` (default: a plain scan of its model name)."""
        promotion = promotion or PromotionTarget(target.model_name)
        return self.judge(self._scan_unjudged(target), promotion)

    def judge(self, result: ScanResult, promotion: PromotionTarget) -> ScanResult:
        return dataclasses.replace(result, decision=evaluate(self.policy, result, promotion))

    def _scan_unjudged(self, target: ScanTarget) -> ScanResult:
        defaults = self.policy.input_defaults_for(target.model_name)
        value_range = self.options.value_range or (defaults.value_range if defaults else None)
        layout = self.options.layout or (defaults.layout if defaults else None)
        normalization = self.options.normalization or (defaults.normalization if defaults else None)
        # Only asked for when given, so loaders written before normalisation existed keep working.
        extra = {} if normalization is None else {"normalization": normalization}
        try:
            model = self.load_model(target.path, value_range=value_range, layout=layout, **extra)
        except ScannerError as error:
            status = Status.NOT_APPLICABLE if error.kind in NOT_APPLICABLE_KINDS else Status.ERROR
            log.info("%s: %s", target.label, error.one_line())
            return ScanResult(target.label, None, status, error=ErrorInfo(error.kind, error.one_line()))
        try:
            clean, clean_source = self._clean_data_for(target, model, defaults.clean_data if defaults else None)
        except ScannerError as error:
            return ScanResult(target.label, model.sha256, Status.ERROR, error=ErrorInfo(error.kind, error.one_line()))
        limit = self.options.time_limit_s
        deadline = Deadline.after(limit) if limit else None
        if clean is None and self.options.synthesize_clean_data:
            try:
                clean, clean_source = _synthesized(model, self.options, deadline, target.label)
            except ScannerError as error:
                return ScanResult(
                    target.label, model.sha256, Status.ERROR, error=ErrorInfo(error.kind, error.one_line())
                )
        context = DetectionContext(
            clean_data=clean,
            device=self.options.device,
            artifacts_dir=self.options.artifacts_dir,
            progress=_checking(deadline, self.on_step),
            seed=self.options.seed,
            deadline=deadline,
            model_name=target.model_name,
            budget=None if self.options.budget is None else self.options.budget.share(len(self.detectors)),
        )
        found = {detector.name: self._run(detector, model, context, target.label) for detector in self.detectors}
        score, verdict = self.fuse(found)
        return ScanResult(
            target=target.label,
            sha256=model.sha256,
            status=_overall_status(found),
            verdict=verdict,
            score=score,
            error=_overall_error(found),
            detectors=found,
            artifacts=tuple(_artifacts(found.values())),
            clean_data=clean_source,
            normalization=model.spec.normalization,
            channel_ranges=model.spec.channel_ranges if model.spec.normalization is not None else (),
        )

    def _run(self, detector: Detector, model: ModelArtifact, context: DetectionContext, label: str) -> DetectorResult:
        started = time.perf_counter()
        try:
            result = detector.detect(model, context)
        except ScannerError as error:
            log.warning("%s: detector %s failed: %s", label, detector.name, error.one_line())
            result = DetectorResult.failed(detector.name, error.one_line())
        except Exception as error:  # a detector's bug must not hide the other detectors' findings
            log.warning("%s: detector %s crashed: %s: %s", label, detector.name, type(error).__name__, error)
            log.debug("traceback of detector %s", detector.name, exc_info=True)
            result = DetectorResult.failed(detector.name, f"internal error: {type(error).__name__}: {error}")
        if result.seconds is None:
            result = dataclasses.replace(result, seconds=time.perf_counter() - started)
        return result

    def _clean_data_for(
        self, target: ScanTarget, model: ModelArtifact, from_policy: Path | None
    ) -> tuple[CleanData | None, str | None]:
        """The clean data for `target` and where it came from (recorded in the report)."""
        if self.options.clean_data is not None:
            clean = self.options.clean_data
            where = "--clean-data"
        else:
            # The policy's data first: whoever writes the model (a registry user, a pull request) also writes the data
            # beside it, and data chosen to hide a backdoor must not outrank the data the policy's owner chose.
            path = from_policy or target.clean_data
            if path is None:
                return None, None
            if path not in self._clean_cache:
                self._clean_cache[path] = load_clean_data(path)
            clean, where = self._clean_cache[path], str(path)
        _check_clean_data_fits(clean, where, target.label, model.spec)
        return clean, where


class CleanDataError(UsageError):
    kind = "clean_data"


class CleanDataMismatch(CleanDataError):
    pass


def load_clean_data(path: Path) -> CleanData:
    """Read clean sample data: an .npz with `x` (float32 images) and optionally `y` (int64 labels); no pickles."""
    hint = "save clean images as numpy.savez(path, x=images, y=labels) (no pickled objects)"
    if not Path(path).is_file():
        raise CleanDataError(f"clean data {path} does not exist (or is not a file)", hint="check the path")
    try:
        with open(path, "rb") as file:
            head = file.read(len(_NPZ_MAGIC))
        if head != _NPZ_MAGIC:
            what = "a single .npy array" if head.startswith(b"\x93NUM") else "not a zip archive"
            raise CleanDataError(f"clean data {path} is not an .npz file ({what})", hint=hint)
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files:
                raise CleanDataError(
                    f"{path} has no array named x (it has: {', '.join(archive.files) or 'nothing'})", hint=hint
                )
            unpacked = sum(member.file_size for member in archive.zip.infolist())
            if unpacked > MAX_CLEAN_DATA_BYTES:
                raise CleanDataError(
                    f"clean data {path} unpacks to {unpacked / 2**20:.0f} MiB, over the "
                    f"{MAX_CLEAN_DATA_BYTES // 2**20} MiB a scan reads",
                    hint="a few hundred images are enough: save a sample",
                )
            x = archive["x"]
            y = archive["y"] if "y" in archive.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CleanDataError(f"cannot read clean data {path}: {error}", hint=hint) from None
    if x.ndim != 4 or len(x) == 0 or not np.issubdtype(x.dtype, np.number):
        raise CleanDataError(
            f"clean data {path}: x must be a non-empty numeric array (N, C, H, W) or (N, H, W, C), "
            f"got {x.dtype} {x.shape}",
            hint="save a batch of images in the model's own layout",
        )
    if not np.isfinite(x).all():
        broken = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise CleanDataError(
            f"clean data {path}: {broken} of {len(x)} images hold NaN or infinite values",
            hint="leave those images out",
        )
    if y is not None and (y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer)):
        raise CleanDataError(
            f"clean data {path}: y must hold one integer label per image, got {y.dtype} {y.shape}",
            hint="save y as int64 labels, or leave it out",
        )
    return CleanData(x=x.astype(np.float32, copy=False), y=None if y is None else y.astype(np.int64, copy=False))


def _check_clean_data_fits(clean: CleanData, where: str, label: str, spec: InputSpec) -> None:
    """Clean data must be in the model's layout and size, on its value scale, and labelled with its classes."""
    if tuple(clean.x.shape[1:]) != spec.image_shape:
        raise CleanDataMismatch(
            f"clean data {where} holds images of shape {tuple(clean.x.shape[1:])}, "
            f"but {label} takes {spec.image_shape} ({spec.layout.value})",
            hint="give clean data in the model's own layout and size (the policy's inputs can name one per model)",
        )
    channel_axis = 1 if spec.layout is Layout.NCHW else 3
    for channel, (low, high) in enumerate(spec.channel_ranges):
        slack = VALUE_RANGE_SLACK * (high - low)
        values = np.take(clean.x, channel, axis=channel_axis) if spec.normalization is not None else clean.x
        lowest, highest = float(values.min()), float(values.max())
        if lowest < low - slack or highest > high + slack:
            which = f"channel {channel} of " if spec.normalization is not None else ""
            raise CleanDataMismatch(
                f"clean data {where} spans [{lowest:g}, {highest:g}], but {which}{label} takes values in"
                f" [{low:g}, {high:g}]",
                hint="scale the images to the model's input range, or give that range (--value-range, --mean/--std, "
                "or value_range, mean and std in the policy's inputs)",
            )
        if spec.normalization is None:
            break
    if clean.y is not None and len(clean.y) and (clean.y.min() < 0 or clean.y.max() >= spec.num_classes):
        raise CleanDataMismatch(
            f"clean data {where} has labels from {clean.y.min()} to {clean.y.max()}, but {label} has "
            f"{spec.num_classes} classes (0 to {spec.num_classes - 1})",
            hint="label the images with the model's own class indices, or leave y out",
        )


def expand_targets(
    targets: Iterable[str], find: ModelFinder | None = None, *, allow_files: Sequence[str] = ()
) -> list[ScanTarget | ScanResult]:
    """Files and directories -> one ScanTarget per model file; a target that cannot be listed, and a file in a folder
    that is refused unloaded (see `allow_files` in scanner.intake.find_model_files) -> an error result."""
    find = find or _default_finder(allow_files)
    expanded: list[ScanTarget | ScanResult] = []
    for target in targets:
        try:
            files = find(Path(target))
        except ScannerError as error:
            expanded.append(ScanResult(target, None, Status.ERROR, error=ErrorInfo(error.kind, error.one_line())))
            continue
        if not files:
            message = f"{target} holds no model files"
            expanded.append(ScanResult(target, None, Status.ERROR, error=ErrorInfo("no_models", message)))
        clean_by_file = zoo_clean_data(Path(target)) if Path(target).is_dir() else {}
        for entry in files:
            if isinstance(entry, Path):
                clean_data = clean_by_file.get(entry.resolve())
                expanded.append(dataclasses.replace(ScanTarget.for_file(entry), clean_data=clean_data))
            else:
                refusal = ErrorInfo(entry.error.kind, entry.error.one_line())
                log.info("%s: %s", entry.path, refusal.message)
                expanded.append(ScanResult(str(entry.path), None, Status.ERROR, error=refusal))
    return expanded


def zoo_clean_data(folder: Path) -> dict[Path, Path]:
    """Model file -> its clean data, as the zoo manifest directly in `folder` lists them (`model-scanner zoo build`
    writes both); {} without one. Only the manifest's word counts, never a file's name, and only data inside the
    folder: the report records what was used (ScanResult.clean_data)."""
    from scanner.zoo.errors import ZooError
    from scanner.zoo.manifest import MANIFEST_NAME, read_manifest

    if not (folder / MANIFEST_NAME).is_file():
        return {}
    try:
        entries = read_manifest(folder)
    except (ZooError, ValueError, KeyError, TypeError) as error:
        log.warning("%s: ignoring its zoo manifest: %s", folder, error)
        return {}
    root = folder.resolve()
    found: dict[Path, Path] = {}
    for entry in entries:
        if not entry.clean_data:
            continue
        data = entry.clean_data_path(folder).resolve()
        if not data.is_relative_to(root) or not data.is_file():
            log.warning("%s: clean data %s of %s is not a file in the folder: not used", folder, data, entry.file)
            continue
        found[entry.path(folder).resolve()] = data
    return found


def _synthesized(
    model: ModelArtifact, options: ScanOptions, deadline: Deadline | None, label: str
) -> tuple[CleanData | None, str | None]:
    """Clean data synthesized by class inversion, and how the report names it; none where torch is missing, its view
    cannot run the graph or one image would not fit the memory bound (the detectors then run as without clean
    data). A scan that runs past its time limit while synthesizing is an error, as for a detector."""
    try:
        from scanner.detectors.ban.budget import OverBound
        from scanner.detectors.ban.inversion import SOURCE, invert_classes
        from scanner.torchview import UnsupportedGraph
    except ImportError:
        log.warning("%s: synthesizing clean data needs torch (pip install 'model-scanner[torch]'): none used", label)
        return None, None
    try:
        return invert_classes(model, seed=options.seed, device=options.device, deadline=deadline), SOURCE
    except (UnsupportedGraph, OverBound) as error:
        log.warning("%s: no clean data synthesized: %s", label, error.one_line())
        return None, None


def _overall_status(found: Mapping[str, DetectorResult]) -> Status:
    statuses = {result.status for result in found.values()}
    if Status.SCANNED in statuses:
        return Status.SCANNED
    if Status.ERROR in statuses:
        return Status.ERROR
    return Status.NOT_APPLICABLE


def _overall_error(found: Mapping[str, DetectorResult]) -> ErrorInfo | None:
    if _overall_status(found) is not Status.ERROR:
        return None
    failed = [f"{name}: {result.reason}" for name, result in found.items() if result.status is Status.ERROR]
    return ErrorInfo("detector", "every detector failed; " + "; ".join(failed))


def _artifacts(results: Iterable[DetectorResult]) -> Iterator[str]:
    """Files the detectors wrote (their details' `heatmap` path, or `artifacts` list)."""
    for result in results:
        heatmap = result.details.get("heatmap")
        if isinstance(heatmap, (str, Path)):
            yield str(heatmap)
        for artifact in result.details.get("artifacts", ()) or ():
            yield str(artifact)


def _checking(deadline: Deadline | None, progress: Progress) -> Progress:
    """`progress` that first checks the deadline: every detector reports progress between its batches."""
    if deadline is None:
        return progress

    def checked(done: int, total: int) -> None:
        if deadline.passed():
            raise TimeLimitExceeded.ran_past(deadline.seconds)
        progress(done, total)

    return checked


def _name_of(label: str) -> str:
    return Path(label).stem or label


def _default_loader(max_model_bytes: int | None = None) -> ModelLoader:
    from scanner.intake import IntakeLimits, load_model

    if max_model_bytes is None:
        return load_model
    return functools.partial(load_model, limits=IntakeLimits(max_model_bytes=max_model_bytes))


def _default_finder(allow_files: Sequence[str] = ()) -> ModelFinder:
    from scanner.intake import find_model_files

    return functools.partial(find_model_files, allow_files=allow_files)


def _default_fuse() -> Fuse:
    from scanner.detectors.fusion import fuse

    return fuse
