"""`model-scanner detector train` on the cached test zoo: a real subprocess, a classifier file that loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.calibration.ban import FEATURES
from scanner.calibration.zoos import read_zoo
from scanner.detectors.logistic import load_calibration
from scanner.detectors.one_pixel.classifier import SignatureClassifier


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
    assert set(classifier.heads) == {"clean", "synthetic", "clean+synthetic+composite"}
    assert classifier.provenance["models"] == len(read_zoo(zoo).models)
    assert classifier.provenance["zoos"] == [str(zoo)]
    assert 0.0 <= classifier.provenance["metrics"]["clean"]["out_of_fold_auc"] <= 1.0


@pytest.mark.slow
def test_ban_calibration_records_how_its_zoo_was_built(zoo: Path, tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "ban.json"
    command = [sys.executable, "-m", "scanner", "-q", "detector", "train", "--detector", "ban", "--zoo", str(zoo)]
    command += ["--zoo-command", "make test-zoo", "--out", str(out)]
    done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    calibration = load_calibration(out.name, out)
    assert calibration.features == FEATURES
    assert calibration.provenance["zoo_command"] == "make test-zoo"
    assert calibration.provenance["models"] == len(read_zoo(zoo).models)


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


def test_an_output_in_a_missing_directory_is_refused_before_any_training(cli, tmp_path):
    run = cli("detector", "train", "--zoo", str(tmp_path / "no-zoo"), "--out", str(tmp_path / "missing" / "c.json"))
    assert run.code == 2 and "is not a directory" in run.stderr and "Traceback" not in run.stderr
