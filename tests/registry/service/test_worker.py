"""A scan that crashes never leaves its job running nor its version untagged: the version is tagged as an error (the
gate then fails closed), the job is retried with backoff and given up after MAX_ATTEMPTS, all in a real queue file."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from scanner.detectors.interface import DetectionContext, Detector
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.findings import DetectorResult, ModelArtifact, ScanResult, Status
from scanner.policy import PromotionTarget, load_builtin_policy
from scanner.registry import tags as scan_tags
from scanner.registry.client import RegistryClient, VersionInfo
from scanner.registry.engine import CoreScanEngine
from scanner.registry.gate import SET_ALIAS, Gate, PolicySource, RegistryRequest
from scanner.registry.queue import WorkQueue
from scanner.registry.service import worker as worker_module
from scanner.registry.service.worker import MAX_ATTEMPTS, Worker
from scanner.registry.source import FetchedModel

POLICIES = Path(__file__).resolve().parents[3] / "policies"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingRegistry(RegistryClient):
    """The registry calls a worker makes, answered in memory: tag writes are kept, reports are dropped."""

    def __init__(self) -> None:  # no MLflow client: nothing here reaches a server
        self.tracking_uri = "http://127.0.0.1:9"
        self.token = None
        self.mlflow = None
        self.tags: dict[tuple[str, str], dict[str, str]] = {}

    def version(self, name: str, version: str) -> VersionInfo:
        return VersionInfo(name=name, version=version, run_id=None, tags=dict(self.tags.get((name, version), {})))

    def log_report(self, info: VersionInfo, files: list[Path]) -> str:
        assert all(path.is_file() for path in files)
        return "file:///reports"

    def set_scan_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        self.tags.setdefault((name, version), {}).update(tags)


class CrashingEngine(CoreScanEngine):
    """The real engine, whose scan dies of an exception the scanner does not expect (as a deeply nested input did)."""

    def scan(self, model: FetchedModel, artifacts_dir: Path) -> ScanResult:
        raise RecursionError("maximum recursion depth exceeded while decoding something deeply nested")


class TagsOnly:
    """A registry for the gate where every version has `tags` and no files can be read."""

    def __init__(self, tags: Mapping[str, str]) -> None:
        self.version_tags = tags

    def tags(self, name: str, version: str) -> Mapping[str, str] | None:
        return self.version_tags

    def promotions(self, name: str) -> list[tuple[str, PromotionTarget]]:
        return []

    def files_digest(self, name: str, version: str) -> str | None:
        return None


def champion_refusal(tags: Mapping[str, str]) -> str | None:
    gate = Gate(PolicySource(str(POLICIES / "default.yaml")), token="t", registry=TagsOnly(tags))
    refusal = gate.check(RegistryRequest(SET_ALIAS, {"name": "m", "version": "1", "alias": "champion"}), {})
    return None if refusal is None else refusal.message


def job_states(queue: WorkQueue) -> list[str]:
    return [state for _, _, _, state in queue.jobs()]


def test_a_crashing_scan_is_tagged_as_an_error_retried_and_given_up(
    tmp_path: Path, service_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fetched = FetchedModel(path=service_model, clean_data=None, name="m", version="1")
    monkeypatch.setattr(worker_module, "fetch_model", lambda uri, dest, client=None: fetched)
    clock = Clock()
    queue = WorkQueue(tmp_path / "queue.db", clock=clock)
    registry = RecordingRegistry()
    worker = Worker(queue, registry, CrashingEngine([OnePixelDetector()], load_builtin_policy()), work_dir=tmp_path)
    queue.enqueue("m", "1", reason="test")
    caplog.set_level(logging.DEBUG, logger="scanner.registry.service.worker")

    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert worker.run_one()
        tags = registry.tags[("m", "1")]
        assert tags[scan_tags.STATUS] == "error"
        assert tags[scan_tags.ERROR].startswith("internal_error: the scan crashed: RecursionError")
        assert tags[scan_tags.DECISION] == "block"  # the default policy fails closed on an unscannable model
        refusal = champion_refusal(tags)
        assert refusal is not None and "internal_error" in refusal
        assert job_states(queue) == (["queued"] if attempt < MAX_ATTEMPTS else ["failed"])
        assert not worker.run_one()  # retried with backoff, not at once
        clock.now += 120

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == MAX_ATTEMPTS and all(r.exc_info is None for r in errors)
    assert "models:/m/1: the scan crashed on attempt 1 (RecursionError: maximum recursion" in errors[0].getMessage()
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)  # the traceback, for -vv
    # The poller may queue the version again later (a new job), since none is open.
    assert queue.enqueue("m", "1", reason="reconcile")


@pytest.mark.server
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_corrupt_clean_sample_blocks_the_version_in_a_real_registry(
    gated_server: Any, register_model: Callable[..., str], service_model: Path, tmp_path: Path
) -> None:
    from mlflow.exceptions import RestException

    from scanner.registry.engine import build_engine

    garbage = tmp_path / "clean_sample.npz"
    garbage.write_bytes(b"PK\x03\x04 this is no zip archive, whatever its first bytes say")
    name = "corrupt-clean-sample"
    version = register_model(gated_server.url, service_model, name, clean_sample=garbage)
    queue = WorkQueue(tmp_path / "queue.db")
    registry = RegistryClient(gated_server.url, token=gated_server.token)
    worker = Worker(queue, registry, build_engine(None, ["one-pixel"]), work_dir=tmp_path)
    queue.enqueue(name, version, reason="test")

    assert worker.run_one()
    assert "running" not in job_states(queue)
    tags = gated_server.client().get_model_version(name, version).tags
    assert tags[scan_tags.STATUS] == "error" and tags[scan_tags.ERROR], tags
    with pytest.raises(RestException) as refused:
        gated_server.client().set_registered_model_alias(name, "champion", version)
    assert refused.value.error_code == "PERMISSION_DENIED"


class KeepingRegistry(RecordingRegistry):
    """Keeps what a worker logs as the version's report, in one folder, as MLflow keeps a run's artifact path."""

    def __init__(self, store: Path) -> None:
        super().__init__()
        self.store = store

    def log_report(self, info: VersionInfo, files: list[Path]) -> str:
        self.store.mkdir(parents=True, exist_ok=True)
        for path in files:
            (self.store / path.name).write_bytes(path.read_bytes())
        return self.store.as_uri()


def test_the_stored_report_names_its_heatmap_beside_it_not_in_a_deleted_folder(
    tmp_path: Path, service_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    fetched = FetchedModel(path=service_model, clean_data=None, name="fraud-cnn", version="3")
    monkeypatch.setattr(worker_module, "fetch_model", lambda uri, dest, client=None: fetched)
    queue = WorkQueue(tmp_path / "queue.db")
    registry = KeepingRegistry(tmp_path / "stored")
    worker = Worker(
        queue, registry, CoreScanEngine([OnePixelDetector()], load_builtin_policy()), work_dir=tmp_path / "work"
    )
    (tmp_path / "work").mkdir()
    queue.enqueue("fraud-cnn", "3", reason="test")
    assert worker.run_one()

    report = json.loads((registry.store / "scan-report.json").read_text(encoding="utf-8"))
    (artifacts,) = [result["artifacts"] for result in report["results"]]
    assert len(artifacts) == 1 and "/" not in artifacts[0]  # a name relative to the report
    assert artifacts[0].startswith("fraud-cnn-") and artifacts[0].endswith(".png")  # named after the model
    assert (registry.store / artifacts[0]).is_file()
    assert list((tmp_path / "work").iterdir()) == []  # the scratch folder the picture was written in is gone


class Finds(Detector):
    """Finds nothing, in whatever input space the model was handed."""

    name = "probe"
    version = "1"

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        return DetectorResult(self.name, Status.SCANNED, score=0.1)


def test_mean_and_std_tags_are_recorded_with_the_scan_and_a_bad_one_is_the_versions_error(
    tmp_path: Path, service_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    hints = {
        "1": {"model_scanner.mean": "0.5", "model_scanner.std": "0.25", "team": "vision"},
        "2": {"model_scanner.mean": "0.5", "model_scanner.std": "0"},
    }
    fetched = {v: FetchedModel(service_model, None, "grey", v, tags=tags) for v, tags in hints.items()}
    monkeypatch.setattr(worker_module, "fetch_model", lambda uri, dest, client=None: fetched[uri.rsplit("/", 1)[1]])
    queue = WorkQueue(tmp_path / "queue.db")
    registry = KeepingRegistry(tmp_path / "stored")
    worker = Worker(queue, registry, CoreScanEngine([Finds()], load_builtin_policy()), work_dir=tmp_path)

    queue.enqueue("grey", "1", reason="test")
    assert worker.run_one()
    tags = registry.tags[("grey", "1")]
    assert tags[scan_tags.STATUS] == "scanned" and not tags.get(scan_tags.ERROR)
    assert json.loads(tags[scan_tags.INPUTS]) == {"model_scanner.mean": "0.5", "model_scanner.std": "0.25"}
    (result,) = json.loads((registry.store / "scan-report.json").read_text(encoding="utf-8"))["results"]
    assert result["normalization"] == {"mean": [0.5], "std": [0.25], "channel_ranges": [[-2.0, 2.0]]}

    queue.enqueue("grey", "2", reason="test")
    assert worker.run_one()
    tags = registry.tags[("grey", "2")]
    assert tags[scan_tags.STATUS] == "error" and tags[scan_tags.DECISION] == "block"
    assert tags[scan_tags.ERROR].startswith("usage: tag model_scanner.std='0': every std must be above 0")
    assert json.loads(tags[scan_tags.INPUTS]) == hints["2"]
    assert "running" not in job_states(queue)
