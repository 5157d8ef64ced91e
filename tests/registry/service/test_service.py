"""`model-scanner serve` against a real MLflow server with real webhook deliveries: crash recovery and catch-up.

The service runs as a subprocess and is killed with SIGKILL (a crash, no clean shutdown) while registrations wait in
its queue; versions registered while it is down are never delivered (MLflow drops webhooks after 3 retries) and must
be found by the reconcile poller. Every version must end up scanned, and none scanned (published) twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner.registry import tags as scan_tags
from scanner.registry.queue import WorkQueue
from scanner.registry.rescan.plan import engine_parts

pytestmark = [pytest.mark.server, pytest.mark.filterwarnings("ignore::FutureWarning")]


def open_jobs(queue_db: Path) -> tuple[int, int]:
    """(jobs recorded, jobs still queued or running), read the way an operator would: straight from sqlite."""
    if not queue_db.exists():
        return 0, 0
    with sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True, timeout=10) as db:
        total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        open_ = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]
    return total, open_


def scanned_versions(client: Any, name: str) -> dict[str, dict[str, str]]:
    found = client.search_model_versions(f"name = '{name}'")
    return {v.version: v.tags for v in found if scan_tags.STATUS in v.tags and v.tags[scan_tags.STATUS] != "pending"}


def test_crash_with_queued_work_and_missed_webhooks(
    gated_server: Any,
    serve: Callable[..., Any],
    register_model: Callable[..., str],
    service_model: Path,
    wait_for_condition: Callable[..., Any],
    tmp_path: Path,
) -> None:
    import mlflow

    client = gated_server.client()
    name = "reliability-cnn"
    state = tmp_path / "state"
    service = serve("--detectors", "one-pixel", "--reconcile-interval", "2", state_dir=state)

    first = register_model(gated_server.url, service_model, name)
    source = client.get_model_version(name, first).source
    versions = [first] + [str(mlflow.register_model(source, name).version) for _ in range(9)]
    _, still_open = wait_for_condition(
        lambda: (counts := open_jobs(state / "queue.db"))[0] >= 10 and counts, timeout_s=60, what="10 queued jobs"
    )
    service.kill()
    assert still_open >= 1, "every scan finished before the crash: the test did not exercise recovery"
    # What a kill mid-scan leaves in the scratch folder (a download and a half-written report), made certain here.
    scratch = state / "queue.db.scratch"
    (scratch / "model-scanner-killed" / "model").mkdir(parents=True, exist_ok=True)

    # While the service is down: these webhooks fail and are lost; only the reconcile poller can find them.
    missed = [str(mlflow.register_model(source, name).version) for _ in range(3)]

    serve("--detectors", "one-pixel", "--reconcile-interval", "2", state_dir=state)
    everything = set(versions + missed)
    done = wait_for_condition(
        lambda: (found := scanned_versions(client, name)).keys() >= everything and found,
        timeout_s=120,
        what="all 13 versions scanned",
    )
    queue = WorkQueue(state / "queue.db")
    # The worker records a scan as published just after writing its tags: wait for the last one's bookkeeping.
    # (Only this test's versions: the shared server holds other tests' versions, which the service scans too.)
    wait_for_condition(
        lambda: not any(model == name and state in ("queued", "running") for model, _, _, state in queue.jobs()),
        timeout_s=60,
        what="this model's jobs to finish",
    )
    records = {r.model_version: r for r in queue.scan_records() if r.model_name == name}
    assert set(records) == everything
    assert all(r.publishes == 1 for r in records.values()), {v: r.publishes for v, r in records.items()}
    reasons = {version: reason for model, version, reason, _ in queue.jobs() if model == name}
    assert {reasons[v] for v in missed} == {"reconcile"}
    assert all(tags[scan_tags.SHA256] for tags in done.values())
    # Stamped with the engine that made them, so that a later `rescan` does not redo serve's scans.
    engines = {engine_parts(tags.get(scan_tags.ENGINE)) for tags in done.values()}
    assert len(engines) == 1 and None not in engines, engines
    assert [detector for detector, _ in next(iter(engines)).detectors] == ["one_pixel"]  # type: ignore[union-attr]
    # Scratch lives in the state directory and the restart cleared what the crash left. (Not "empty": the service
    # may be scanning another test's version of the shared server right now.)
    assert scratch.is_dir() and not (scratch / "model-scanner-killed").exists()
    # Each start created or updated the one webhook: no pile-up.
    assert [hook.name for hook in client.list_webhooks()].count("model-scanner") == 1


def test_a_second_serve_on_the_same_state_directory_is_refused(serve: Callable[..., Any], tmp_path: Path) -> None:
    state = tmp_path / "one-state"
    first = serve("--detectors", "one-pixel", "--no-webhook", state_dir=state)
    with pytest.raises(AssertionError, match=r"another model-scanner serve \(pid \d+\) is using the queue"):
        serve("--detectors", "one-pixel", "--no-webhook", state_dir=state)
    assert first.process is not None and first.process.poll() is None  # the first one runs on, untouched
