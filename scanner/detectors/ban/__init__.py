"""The BAN detector (white-box, on torch): `steps` holds the feature mask and the adversarial neuron noise, `universal`
the per-class universal perturbations, and `detector` the `Detector` that runs them with the shipped calibration."""

from scanner.detectors.ban.detector import BanDetector

__all__ = ["BanDetector"]
