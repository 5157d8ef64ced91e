"""`model-scanner detector train` on the cached test zoo: a real subprocess, a classifier file that loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scanner.detectors.one_pixel_classifier import SignatureClassifier
from scanner.detectors.one_pixel_training import read_zoo


def test_detector_train_writes_a_classifier_that_loads(zoo: Path, tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "classifier.json"
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "detector", "train", "--zoo", str(zoo), "--out", str(out)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["out"] == str(out)
    classifier = SignatureClassifier.load(out)
    assert set(classifier.heads) == {"clean", "synthetic"}
    assert classifier.provenance["models"] == len(read_zoo(zoo).models)
    assert classifier.provenance["zoos"] == [str(zoo)]
    assert 0.0 <= classifier.provenance["metrics"]["clean"]["cv5_auc"] <= 1.0


def test_detector_train_explains_a_missing_zoo(tmp_path: Path, repo_root: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner",
            "detector",
            "train",
            "--zoo",
            str(tmp_path),
            "--out",
            str(tmp_path / "x.json"),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "manifest" in done.stderr and "zoo build" in done.stderr
