"""Shared fixtures. Real components wherever a user would meet them: real ONNX Runtime, really trained models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# As the CLI runs BAN: torch loaded with OpenMP's workers waiting passively (scanner.detectors.ban.detector.CPU_THREADS
# says why). Set here, before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def zoo() -> Path:
    """The small test zoo: a directory with manifest.json, clean and backdoored ONNX models of both families
    (digits16: 4 clean + 4 backdoored, shapes32: 3 + 3; all architectures, both exporters, five attacks) and
    clean_<family>.npz. Built once (a few minutes) and cached under $MODEL_SCANNER_CACHE (default
    ~/.cache/model-scanner), keyed by the zoo code's hash; read it with scanner.zoo.manifest.read_manifest(zoo)."""
    from scanner.zoo.cache import ensure_test_zoo

    return ensure_test_zoo(_cache_root())


@pytest.fixture(scope="session")
def second_zoo() -> Path:
    """The second generator's test zoo (scanner.zoo.cache.SECOND_TEST_ZOO): 4 clean and 4 backdoored models of a seed
    no fit or gate zoo uses, of all three data families, both value ranges, normalised and NHWC, each with its clean
    data; cached like `zoo`. Read it with scanner.calibration.zoos.read_zoo."""
    from scanner.zoo.cache import ensure_second_test_zoo

    return ensure_second_test_zoo(_cache_root())


def _cache_root() -> Path:
    return Path(os.environ.get("MODEL_SCANNER_CACHE") or Path.home() / ".cache" / "model-scanner")


@pytest.fixture(scope="session")
def zoo_pair_clean_data(zoo: Path) -> Path:
    """The test zoo's clean digits16 sample (.npz), with which `zoo_pair` was chosen."""
    return zoo / "clean_digits16.npz"


@pytest.fixture(scope="session")
def zoo_pair(zoo: Path, zoo_pair_clean_data: Path, repo_root: Path) -> tuple[Path, Path]:
    """(clean, backdoored) 16x16 digits models from the test zoo: a clean one the default policy allows and a
    backdoored one it blocks, with the one-pixel detector and `zoo_pair_clean_data` (without clean data the shipped
    calibration stays quiet on models unlike its zoos: bench/RESULTS.md). The detectors are not perfect and the tests
    that use this pair check the loop around them (registry, Action), not their reach: so the pair is chosen by one
    real scan of the zoo's digits models, and the tests fail if no such pair exists."""
    import json
    import subprocess
    import sys

    from scanner.zoo.manifest import read_manifest

    backdoored = {entry.path(zoo): entry.backdoored for entry in read_manifest(zoo) if entry.family == "digits16"}
    candidates = sorted(backdoored)
    command = [sys.executable, "-m", "scanner", "-q", "scan", *map(str, candidates), "--detectors", "one-pixel"]
    command += ["--clean-data", str(zoo_pair_clean_data), "--format", "json"]
    completed = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=600)
    results = json.loads(completed.stdout)["results"]
    decided = {Path(r["target"]).name: (r["decision"]["action"], r["score"] or 0.0) for r in results}
    blocked = [(decided[p.name][1], p) for p in candidates if backdoored[p] and decided[p.name][0] == "block"]
    allowed = [(decided[p.name][1], p) for p in candidates if not backdoored[p] and decided[p.name][0] == "allow"]
    assert blocked and allowed, f"no backdoored zoo model blocked and clean one allowed: {decided}"
    return min(allowed)[1], max(blocked)[1]
