"""The one-pixel signature detector (black-box, on ONNX Runtime): a module per idea.

`signature` computes the per-class one-pixel signature, `features` turns it into numbers, `composite` and `patches`
probe held-out clean images with blends and small squares, `classifier` is the shipped head, and `detector` puts them
together as the `Detector` the scanner runs.
"""

from scanner.detectors.one_pixel.detector import OnePixelDetector

__all__ = ["OnePixelDetector"]
