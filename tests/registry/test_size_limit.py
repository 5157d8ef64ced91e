"""--max-model-size reaches the intake from `serve` and `rescan` too (for `scan`: tests/commands/test_scan_command.py).

A registry's model over the default 1 GiB would otherwise be refused by the service and the re-scans with no way to
raise the limit. The limit never lets a model through: a model over it is an error result, which the policy blocks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from scanner.detectors.one_pixel import OnePixelDetector
from scanner.findings import Status
from scanner.policy import load_builtin_policy
from scanner.registry.engine import CoreScanEngine
from scanner.registry.rescan.driver import Rescanner
from scanner.registry.rescan.executors import LocalExecutor
from scanner.registry.rescan.job import RescanJob, build_engine
from scanner.registry.source import FetchedModel


def fetched(path: Path) -> FetchedModel:
    return FetchedModel(path=path, clean_data=None, name="tiny", version="1")


def test_the_registry_engine_refuses_a_model_over_its_limit_and_scans_it_within(
    service_model: Path, tmp_path: Path
) -> None:
    size = service_model.stat().st_size
    policy = load_builtin_policy()
    over = CoreScanEngine([OnePixelDetector()], policy, max_model_bytes=size - 1).scan(fetched(service_model), tmp_path)
    assert over.status is Status.ERROR and over.error is not None and over.error.kind == "file_too_large"
    within = CoreScanEngine([OnePixelDetector()], policy, max_model_bytes=size).scan(fetched(service_model), tmp_path)
    assert within.status is not Status.ERROR and within.score is not None


def test_a_rescan_job_carries_the_limit_to_its_worker(service_model: Path, tmp_path: Path) -> None:
    size = service_model.stat().st_size
    policy = load_builtin_policy()
    rescanner = Rescanner(
        registry=SimpleNamespace(tracking_uri="http://127.0.0.1:9"),  # type: ignore[arg-type]  # not contacted
        policy=policy,
        detectors=["one-pixel"],
        executor=LocalExecutor(),
        max_model_bytes=size - 1,
    )
    job = rescanner._job("tiny", "1")
    assert isinstance(job, RescanJob) and job.max_model_bytes == size - 1
    result = build_engine(job).scan(fetched(service_model), tmp_path)  # what run_rescan_job does after the fetch
    assert result.status is Status.ERROR and result.error is not None and result.error.kind == "file_too_large"


@pytest.mark.parametrize("command", ["serve", "rescan"])
def test_serve_and_rescan_take_max_model_size(repo_root: Path, command: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "scanner", command, *args]
        return subprocess.run(argv, cwd=repo_root, capture_output=True, text=True, timeout=120)

    assert "--max-model-size" in cli("--help").stdout
    bad = cli("--tracking-uri", "http://127.0.0.1:9", "--max-model-size", "3GiB")
    assert bad.returncode == 2 and "2GiB" in bad.stderr and "Traceback" not in bad.stderr
