"""Fusion: one score in [0, 1] from the detectors that ran.

INTERIM (until the BAN issue ships a calibrated combination trained on the zoo): the mean of the scores of the
detectors that scanned; verdict by a 0.5 threshold. Replace, don't extend.
"""

from __future__ import annotations

from collections.abc import Mapping

from scanner.findings import DetectorResult, Status, Verdict

THRESHOLD = 0.5


def fuse(results: Mapping[str, DetectorResult]) -> tuple[float | None, Verdict]:
    scores = [r.score for r in results.values() if r.status is Status.SCANNED and r.score is not None]
    if not scores:
        return None, Verdict.UNKNOWN
    score = sum(scores) / len(scores)
    return score, Verdict.BACKDOORED if score >= THRESHOLD else Verdict.CLEAN
