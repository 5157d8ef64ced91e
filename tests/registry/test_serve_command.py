"""`model-scanner serve` on the command line: help, usage errors, and the webhook secret kept in the state dir."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.commands.serve import SECRET_ENV, webhook_secret


def run_cli(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], cwd=repo_root, capture_output=True, text=True, timeout=120
    )


def test_help_has_examples(repo_root: Path) -> None:
    done = run_cli(repo_root, "serve", "--help")
    assert done.returncode == 0
    assert "--tracking-uri" in done.stdout and "examples:" in done.stdout


def test_bad_listen_address_is_a_usage_error(repo_root: Path, tmp_path: Path) -> None:
    done = run_cli(
        repo_root, "serve", "--tracking-uri", "http://127.0.0.1:9", "--listen", "nowhere", "--state-dir", str(tmp_path)
    )
    assert done.returncode == 2
    assert "--listen 'nowhere'" in done.stderr and "Traceback" not in done.stderr


def test_webhook_secret_is_made_once_and_kept_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    first = webhook_secret(tmp_path / "state")
    assert webhook_secret(tmp_path / "state") == first and len(first) >= 32
    assert os.stat(tmp_path / "state" / "webhook-secret").st_mode & 0o077 == 0
    monkeypatch.setenv(SECRET_ENV, "from-env")
    assert webhook_secret(tmp_path / "state") == "from-env"


def serve_until_it_exits(repo_root: Path, *args: str, env: dict[str, str], timeout_s: float = 60) -> tuple[int, str]:
    """(exit code, stderr) of `serve`; a service that starts instead of refusing is killed and fails the test."""
    command = [sys.executable, "-m", "scanner", "serve", "--detectors", "one-pixel", "--no-webhook", *args]
    try:
        done = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as running:
        raise AssertionError(f"serve started instead of refusing: {running.stderr!r}") from None
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("file_secret", "env_secret"),
    [("", None), (" \n\t\n", None), ("kept-secret", ""), ("kept-secret", "   ")],
    ids=["empty-file", "blank-file", "empty-env", "blank-env"],
)
def test_serve_refuses_an_empty_webhook_secret(
    repo_root: Path, tmp_path: Path, file_secret: str, env_secret: str | None
) -> None:
    from scanner.registry.local_server import free_port

    state = tmp_path / "state"
    state.mkdir()
    (state / "webhook-secret").write_text(file_secret, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    if env_secret is not None:
        env[SECRET_ENV] = env_secret
    port = free_port()
    code, stderr = serve_until_it_exits(
        repo_root, "--tracking-uri", "http://127.0.0.1:9", "--state-dir", str(state), "--listen", f"127.0.0.1:{port}",
        env=env,
    )  # fmt: skip
    assert code == 2, stderr
    assert "webhook secret" in stderr and "empty" in stderr and SECRET_ENV in stderr
    assert "Traceback" not in stderr


def test_the_receiver_refuses_an_empty_secret(tmp_path: Path) -> None:
    from scanner.errors import UsageError
    from scanner.registry.queue import WorkQueue
    from scanner.registry.service.receiver import WebhookReceiver

    for blank in ("", "  "):
        with pytest.raises(UsageError, match="empty"):
            WebhookReceiver(WorkQueue(tmp_path / "queue.db"), secret=blank)


@pytest.fixture
def answering() -> Iterator[str]:
    """A stand-in for MLflow that answers every request with 200: serve's reachability check passes."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("127.0.0.1:99999", "port must be 0-65535"),
        ("127.0.0.1:-1", "port must be 0-65535"),
        ("nohost.invalid:1", "unknown host"),
    ],
    ids=["port-too-high", "negative-port", "unknown-host"],
)
def test_a_bad_listen_address_is_one_clear_line(
    repo_root: Path, tmp_path: Path, answering: str, listen: str, said: str
) -> None:
    env = os.environ | {SECRET_ENV: "serve-secret"}
    code, stderr = serve_until_it_exits(
        repo_root, "--tracking-uri", answering, "--state-dir", str(tmp_path), "--listen", listen, env=env
    )
    assert code == 2, stderr
    assert listen in stderr and said in stderr and "--listen" in stderr and "Traceback" not in stderr


def test_a_port_in_use_is_one_clear_line(repo_root: Path, tmp_path: Path, answering: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        env = os.environ | {SECRET_ENV: "serve-secret"}
        code, stderr = serve_until_it_exits(
            repo_root, "--tracking-uri", answering, "--state-dir", str(tmp_path), "--listen", listen, env=env
        )
    assert code == 2, stderr
    assert listen in stderr and "already in use" in stderr and "--listen" in stderr and "Traceback" not in stderr


def nothing_listening() -> str:
    """An http URL on a free loopback port: nothing listens there, connections are refused."""
    from scanner.registry.local_server import free_port

    return f"http://127.0.0.1:{free_port()}"


def test_unreachable_mlflow_is_named_within_seconds_and_sigterm_stops_serve(repo_root: Path, tmp_path: Path) -> None:
    uri = nothing_listening()
    env = os.environ | {SECRET_ENV: "serve-secret"}
    command = [sys.executable, "-m", "scanner", "serve", "--tracking-uri", uri, "--state-dir", str(tmp_path)]
    started = time.monotonic()
    serve = subprocess.Popen(command, cwd=repo_root, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stderr is not None
        said = ""
        while "unreachable" not in said:  # the line, or the end of stderr
            line = serve.stderr.readline()
            if not line:
                break
            said += line
        told_after = time.monotonic() - started
        assert f"MLflow at {uri} is unreachable (connection refused)" in said, said
        assert told_after < 20, f"took {told_after:.1f} s to say so"
        assert serve.poll() is None, "serve gave up at once instead of waiting for MLflow (--mlflow-wait)"
        asked = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=30)
        stopped_after = time.monotonic() - asked
    finally:
        serve.kill()
        serve.wait()
    assert code == 0 and stopped_after < 5, (code, stopped_after)
    assert "Traceback" not in serve.stderr.read()


def test_unreachable_mlflow_ends_serve_with_one_line_after_mlflow_wait(repo_root: Path, tmp_path: Path) -> None:
    uri = nothing_listening()
    env = os.environ | {SECRET_ENV: "serve-secret"}
    started = time.monotonic()
    code, stderr = serve_until_it_exits(
        repo_root, "--tracking-uri", uri, "--state-dir", str(tmp_path), "--mlflow-wait", "0", env=env
    )
    assert code == 2, stderr
    assert time.monotonic() - started < 20
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("model-scanner: error: MLflow at") and uri in last and "--tracking-uri" in last, stderr
    assert "Retrying" not in stderr and "Traceback" not in stderr
