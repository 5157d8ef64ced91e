"""The detectors, registered explicitly by their CLI name. Each one is imported only when asked for, so that
`import scanner` stays free of torch and onnxruntime."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources

from scanner.detectors.interface import Detector
from scanner.errors import ScannerError, UsageError


def _one_pixel() -> Detector:
    from scanner.detectors.one_pixel import OnePixelDetector

    return OnePixelDetector()


def _ban() -> Detector:
    from scanner.detectors.ban import BanDetector

    return BanDetector()


# CLI name (--detectors) -> factory. The JSON report keys results by `Detector.name` ("one_pixel", "ban").
DETECTORS: dict[str, Callable[[], Detector]] = {"one-pixel": _one_pixel, "ban": _ban}


def load_detectors(names: Sequence[str] | None = None) -> dict[str, Detector | str]:
    """CLI name -> loaded detector. Named detectors must load (else UsageError); by default every registered one is
    tried, and one that cannot load here maps to the reason why, for the caller to report or skip."""
    unknown = [name for name in names or () if name not in DETECTORS]
    if unknown:
        raise UsageError(
            f"unknown detector(s): {', '.join(unknown)}", hint=f"choose from: {', '.join(sorted(DETECTORS))}"
        )
    loaded: dict[str, Detector | str] = {}
    for name in names or list(DETECTORS):
        try:
            loaded[name] = DETECTORS[name]()
        except (ScannerError, ImportError) as error:
            message = error.one_line() if isinstance(error, ScannerError) else f"cannot load it: {error}"
            if names:
                raise UsageError(
                    f"detector {name} is not available: {message}",
                    hint="install model-scanner[torch,cpu], or choose other --detectors",
                ) from None
            loaded[name] = message
    return loaded


@cache
def shipped_data_digest() -> str:
    """Digest of the trained files shipped with the detectors (classifier, calibrations, fusion): a refit changes
    results without a version bump, and the re-scan key must see it."""
    digest = hashlib.sha256()
    data = resources.files("scanner.detectors").joinpath("data")
    for entry in sorted(data.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".json"):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
