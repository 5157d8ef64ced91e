"""The detectors, registered explicitly by their CLI name. Each one is imported only when asked for, so that
`import scanner` stays free of torch and onnxruntime."""

from __future__ import annotations

from collections.abc import Callable

from scanner.detectors.interface import Detector


def _one_pixel() -> Detector:
    from scanner.detectors.one_pixel import OnePixelDetector

    return OnePixelDetector()


def _ban() -> Detector:
    from scanner.detectors.ban import BanDetector

    return BanDetector()


# CLI name (--detectors) -> factory. The JSON report keys results by `Detector.name` ("one_pixel", "ban").
DETECTORS: dict[str, Callable[[], Detector]] = {"one-pixel": _one_pixel, "ban": _ban}
