"""A re-scan beside `serve`: claims go through serve's own queue, so no version is scanned by both at once."""

from scanner.registry.queue import JobState, WorkQueue


def test_a_version_serve_has_queued_is_left_to_serve(tmp_path):
    path = tmp_path / "queue.db"
    serve = WorkQueue(path)
    rescan = WorkQueue(path)
    assert serve.enqueue("fraud", "1", reason="webhook model_version.created")
    assert rescan.claim_version("fraud", "1", reason="rescan: detector_changed") is None


def test_a_claimed_version_is_not_queued_or_claimed_by_serve(tmp_path):
    path = tmp_path / "queue.db"
    serve = WorkQueue(path)
    rescan = WorkQueue(path)
    claim = rescan.claim_version("fraud", "2", reason="rescan: expired")
    assert claim is not None and claim.model_version == "2"
    assert rescan.claim_version("fraud", "2", reason="rescan: expired") is None  # twice: still one scan
    assert not serve.enqueue("fraud", "2", reason="reconcile")  # serve's poller or webhook: already open
    assert serve.claim() is None  # serve's workers never take a running job
    rescan.finish(claim, "scanned: clean (re-scan)")
    assert serve.counts()[JobState.DONE.value] == 1
    assert serve.enqueue("fraud", "2", reason="webhook model_version_tag.set")  # free again afterwards


def test_a_crashed_rescans_claim_goes_back_to_serve(tmp_path):
    path = tmp_path / "queue.db"
    rescan = WorkQueue(path)
    assert rescan.claim_version("fraud", "3", reason="rescan: failed") is not None
    rescan.close()
    serve = WorkQueue(path)
    assert serve.recover_abandoned() == 1  # serve's start-up after the crash
    job = serve.claim()
    assert job is not None and (job.model_name, job.model_version) == ("fraud", "3")
