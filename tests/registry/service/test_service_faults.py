"""`model-scanner serve` when MLflow misbehaves (a version it answers 500 on, a download that never ends, the server
going down while serve runs), and SIGTERM in every state: idle, scanning, MLflow down, a job stuck in MLflow. Between
serve (a real subprocess) and the real gated MLflow server sits a small proxy, the one stand-in: it passes every
request through except those it is told to break."""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import signal
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.registry import tags as scan_tags

pytestmark = [pytest.mark.server, pytest.mark.filterwarnings("ignore::FutureWarning")]

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


class FaultyProxy:
    """An HTTP proxy in front of MLflow: answers 500 to reads of the `poisoned` versions, holds artifact downloads
    while `stall_downloads` is set, and is gone (connections refused) after `stop()`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.poisoned: set[tuple[str, str]] = set()
        self.poisoned_hits = 0
        self.stall_downloads = threading.Event()
        self.stalled_downloads = 0
        self._release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path.endswith("/model-versions/get") and (query.get("name"), query.get("version")) in (
                    proxy.poisoned
                ):
                    proxy.poisoned_hits += 1
                    self._send(500, b'{"error_code": "INTERNAL_ERROR", "message": "injected"}')
                    return
                if "artifacts" in url.path and self.command == "GET" and proxy.stall_downloads.is_set():
                    proxy.stalled_downloads += 1
                    proxy._release.wait(120)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    payload = answer.read()
                    relayed = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
                finally:
                    upstream.close()
                self._send(answer.status, payload, relayed)

            def _send(self, status: int, payload: bytes, headers: list[tuple[str, str]] | None = None) -> None:
                self.send_response(status)
                for key, value in headers or [("Content-Type", "application/json")]:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy(gated_server: Any) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(gated_server.url)
    yield proxy
    proxy.stop()


@pytest.fixture
def serve_through(
    repo_root: Path, gated_server: Any, proxy: FaultyProxy, tmp_path: Path
) -> Iterator[Callable[..., Any]]:
    """Starts `serve` with the proxy as its --tracking-uri; stopped (SIGKILL if need be) at the end."""
    from tests.registry.conftest import ServeProcess

    started: list[ServeProcess] = []

    def start(*extra: str) -> ServeProcess:
        behind_proxy = dataclasses.replace(gated_server, url=proxy.url)
        process = ServeProcess(repo_root, behind_proxy, tmp_path / "state", *extra).start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process is not None and process.process.poll() is None:
            process.kill()


def sigterm_and_wait(process: Any) -> tuple[int, float]:
    """(exit code, seconds from SIGTERM to exit); a serve still running after 30 s is killed and reported as -9."""
    asked = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    try:
        code = process.process.wait(timeout=30)
    except Exception:
        process.kill()
        return -9, time.monotonic() - asked
    return code, time.monotonic() - asked


def job_states(queue_db: Path, name: str) -> dict[str, str]:
    with sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT model_version, state FROM jobs WHERE model_name = ? ORDER BY id", (name,))
        return {version: state for version, state in rows}


def test_a_version_mlflow_fails_on_does_not_hold_up_the_others(
    gated_server: Any,
    proxy: FaultyProxy,
    serve_through: Callable[..., Any],
    register_model: Callable[..., str],
    service_model: Path,
    wait_for_condition: Callable[..., Any],
    tmp_path: Path,
) -> None:
    import mlflow

    name = "poison-delivery"
    client = gated_server.client()
    poisoned = register_model(gated_server.url, service_model, name)
    proxy.poisoned.add((name, poisoned))
    serve = serve_through("--detectors", "one-pixel", "--no-webhook", "--reconcile-interval", "1")
    wait_for_condition(lambda: proxy.poisoned_hits > 0, timeout_s=60, what="a worker on the poisoned version")

    source = client.get_model_version(name, poisoned).source
    others = [str(mlflow.register_model(source, name).version) for _ in range(3)]

    def scanned() -> set[str]:
        found = client.search_model_versions(f"name = '{name}'")
        return {v.version for v in found if v.tags.get(scan_tags.STATUS) not in (None, scan_tags.PENDING)}

    # With MLflow's own retries (minutes per call) and one worker, these waited behind the poisoned version.
    wait_for_condition(lambda: scanned() >= set(others), timeout_s=120, what="the other versions scanned")
    assert poisoned not in scanned()
    assert job_states(tmp_path / "state" / "queue.db", name)[poisoned] in ("queued", "running", "failed")
    code, took_s = sigterm_and_wait(serve)
    assert code == 0 and took_s < 10, (code, took_s)


def test_sigterm_stops_serve_within_10_s_while_mlflow_is_down(
    proxy: FaultyProxy, serve_through: Callable[..., Any]
) -> None:
    serve = serve_through("--detectors", "one-pixel", "--no-webhook", "--reconcile-interval", "1")
    proxy.stop()  # MLflow goes away after start-up: the poller (every second) now meets refused connections
    time.sleep(4)
    assert serve.process.poll() is None  # serve waits for MLflow to come back, it does not give up
    code, took_s = sigterm_and_wait(serve)
    assert code == 0 and took_s < 10, (code, took_s)
    assert "Traceback" not in serve.log_file.read_text(errors="replace")


def test_sigterm_stops_serve_within_10_s_while_a_job_is_stuck_in_mlflow(
    gated_server: Any,
    proxy: FaultyProxy,
    serve_through: Callable[..., Any],
    register_model: Callable[..., str],
    service_model: Path,
    wait_for_condition: Callable[..., Any],
    tmp_path: Path,
) -> None:
    name = "stalled-download"
    proxy.stall_downloads.set()  # the model's download never ends: its worker is busy with the job
    version = register_model(gated_server.url, service_model, name)
    serve = serve_through("--detectors", "one-pixel", "--no-webhook", "--reconcile-interval", "1")
    wait_for_condition(lambda: proxy.stalled_downloads > 0, timeout_s=60, what="a worker downloading the model")
    code, took_s = sigterm_and_wait(serve)
    assert code == 0 and took_s < 10, (code, took_s)
    # The job was left running, not lost: the next start picks it up and scans the version.
    assert job_states(tmp_path / "state" / "queue.db", name)[version] == "running"
    proxy.stall_downloads.clear()
    serve_through("--detectors", "one-pixel", "--no-webhook", "--reconcile-interval", "1")
    client = gated_server.client()
    wait_for_condition(
        lambda: client.get_model_version(name, version).tags.get(scan_tags.STATUS) not in (None, scan_tags.PENDING),
        timeout_s=90,
        what="the version scanned after the restart",
    )


def test_sigterm_stops_an_idle_serve_within_10_s(proxy: FaultyProxy, serve_through: Callable[..., Any]) -> None:
    serve = serve_through("--detectors", "one-pixel", "--no-webhook")
    time.sleep(1)
    code, took_s = sigterm_and_wait(serve)
    assert code == 0 and took_s < 10, (code, took_s)


def slow_to_scan(path: Path) -> Path:
    """A 224x224 RGB classifier of two 48-channel convolutions (about a GMAC per image): the one-pixel detector
    takes minutes on it, so a scan is still running when serve is stopped, however fast the machine (one 16-channel
    convolution finished within serve's grace period on an idle machine)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["conv1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("Conv", ["relu1", "W3"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W2"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "slow-conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [
            numpy_helper.from_array((rng.normal(size=(48, 3, 3, 3)) * 0.1).astype(np.float32), "W1"),
            numpy_helper.from_array((rng.normal(size=(48, 48, 3, 3)) * 0.05).astype(np.float32), "W3"),
            numpy_helper.from_array(rng.normal(size=(10, 48)).astype(np.float32), "W2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_sigterm_stops_serve_within_10_s_while_a_scan_runs(
    gated_server: Any,
    proxy: FaultyProxy,
    serve_through: Callable[..., Any],
    register_model: Callable[..., str],
    wait_for_condition: Callable[..., Any],
    tmp_path: Path,
) -> None:
    name = "slow-scan"
    register_model(gated_server.url, slow_to_scan(tmp_path / "slow.onnx"), name)
    serve = serve_through("--detectors", "one-pixel", "--no-webhook", "--reconcile-interval", "1")
    queue_db = tmp_path / "state" / "queue.db"

    def scanning() -> bool:
        with sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT finished_at FROM scan_runs WHERE model_name = ?", (name,)).fetchone()
        return row is not None and row[0] is None

    try:
        wait_for_condition(scanning, timeout_s=90, what="the scan to start", every_s=0.2)
        code, took_s = sigterm_and_wait(serve)
        assert code == 0 and took_s < 10, (code, took_s)
        assert scanning(), "the scan ended before serve did: the test did not catch serve mid-scan"
    finally:
        # Unscanned, it would be found by the reconcile poller of every later serve on the shared server, and hold
        # one of its workers for minutes.
        gated_server.client().delete_registered_model(name)
