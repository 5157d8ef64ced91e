"""The shipped logistic calibrations' arithmetic: what the report's evidence reads from them."""

from __future__ import annotations

import math

import pytest

from scanner.detectors.logistic import LogisticCalibration, load_calibration


def test_contributions_are_the_terms_of_the_log_odds_largest_first() -> None:
    calibration = LogisticCalibration(
        "toy", ("a", "b", "c"), mean=(1.0, 0.0, 2.0), scale=(2.0, 1.0, 0.5), coef=(1.0, -2.0, 0.5), intercept=-0.25
    )
    values = {"a": 5.0, "b": 1.0, "c": 3.0}
    terms = calibration.contributions(values)
    assert terms == [("a", 2.0), ("c", 1.0), ("b", -2.0)]
    p = calibration.probability(values)
    assert math.log(p / (1 - p)) == pytest.approx(calibration.intercept + sum(t for _, t in terms))


def test_the_shipped_ban_calibration_names_every_statistic_it_weighs() -> None:
    from scanner.detectors.ban.detector import CALIBRATION_FILE

    calibration = load_calibration(CALIBRATION_FILE)
    values = dict.fromkeys(calibration.features, 0.5)
    assert {name for name, _ in calibration.contributions(values)} == set(calibration.features)
