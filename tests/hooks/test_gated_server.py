"""hooks/mlflow/gated-server.sh finds mlflow without PATH: on PATH, else in the checkout's .venv (what `make`
installs), else it says what to do."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from scanner.registry.local_server import free_port

BARE_PATH = "/usr/bin:/bin"  # a login shell's PATH without any virtualenv


@pytest.mark.server
def test_finds_mlflow_in_the_checkouts_venv_without_path(repo_root: Path, tmp_path: Path) -> None:
    if not (repo_root / ".venv" / "bin" / "mlflow").exists():
        pytest.skip("no .venv/bin/mlflow in this checkout (make install makes it)")
    if shutil.which("mlflow", path=BARE_PATH):
        pytest.skip(f"an mlflow on {BARE_PATH} would be found first")
    port = free_port()
    env = {
        "PATH": BARE_PATH,
        "HOME": str(tmp_path),
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(repo_root)),
        "MODEL_SCANNER_TOKEN": "gate-token",
        "MLFLOW_HOME": str(tmp_path / "state"),
        "PORT": str(port),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    server = subprocess.Popen(
        [str(repo_root / "hooks" / "mlflow" / "gated-server.sh"), "--workers", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline, healthy = time.monotonic() + 120, False
        while time.monotonic() < deadline and server.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    healthy = answer.status == 200
            except OSError:
                time.sleep(0.5)
        assert healthy, server.stderr.read().decode() if server.poll() is not None else "no answer in 120 s"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_without_any_mlflow_it_says_what_to_do(repo_root: Path, tmp_path: Path) -> None:
    if shutil.which("mlflow", path=BARE_PATH):
        pytest.skip(f"an mlflow on {BARE_PATH} would be found")
    checkout = tmp_path / "checkout"  # a checkout without .venv
    (checkout / "hooks" / "mlflow").mkdir(parents=True)
    script = checkout / "hooks" / "mlflow" / "gated-server.sh"
    shutil.copy2(repo_root / "hooks" / "mlflow" / "gated-server.sh", script)
    done = subprocess.run(
        [str(script)], env={"PATH": BARE_PATH, "MODEL_SCANNER_TOKEN": "t"}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 127
    assert "mlflow is not on PATH" in done.stderr and "make install" in done.stderr and "MLFLOW=" in done.stderr
    assert "not found" not in done.stderr  # not the shell's own 'exec: mlflow: not found'
