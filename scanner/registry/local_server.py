"""A local `mlflow server` on loopback with the gate: for `make demo`, tests and benchmarks.

Light settings measured on these machines (bench/RESULTS.md): sqlite backend (webhooks need SQL), one worker, no job
execution (5 s start, ~0.5 GB). Webhooks to loopback receivers need MLFLOW_WEBHOOK_ALLOWED_SCHEMES and
MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS; a fixed MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY keeps stored secrets readable across
restarts, and a short MLFLOW_WEBHOOK_CACHE_TTL makes a new webhook live at once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from scanner.errors import RegistryError

GATE_APP = "model-scanner-gate"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fernet_key_for(seed: str) -> str:
    """A stable Fernet key (32 url-safe base64 bytes) derived from `seed`: same directory, same key."""
    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def entry_point_dir(root: Path) -> Path:
    """A directory that, on PYTHONPATH, declares the gate's entry point without installing the project.

    For running the gate from a source checkout (tests, a worktree): importlib.metadata finds this dist-info and
    MLflow resolves `--app-name model-scanner-gate` to scanner.registry.gate:create_app of whatever `scanner` is
    first on PYTHONPATH.
    """
    dist = root / "model_scanner_gate_source-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: model-scanner-gate-source\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        f"[mlflow.app]\n{GATE_APP} = scanner.registry.gate:create_app\n", encoding="utf-8"
    )
    return root


class LocalMlflowServer:
    """`with LocalMlflowServer(dir) as server:` starts it, waits until it answers, and stops it afterwards."""

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        gate: bool = True,
        env: Mapping[str, str] | None = None,
        pythonpath: Sequence[Path] = (),
        gunicorn: bool = False,
        log_file: Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.gate = gate
        self.extra_env = dict(env or {})
        self.pythonpath = list(pythonpath)
        self.gunicorn = gunicorn
        self.log_file = log_file or state_dir / "mlflow-server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.state_dir / 'mlflow.db'}",
            "--artifacts-destination", str(self.state_dir / "artifacts"),
            "--workers", "1",
        ]  # fmt: skip
        if self.gunicorn:
            command += ["--gunicorn-opts", "--timeout 120"]
        if self.gate:
            command += ["--app-name", GATE_APP]
        return command

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
                "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
                "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": fernet_key_for(str(self.state_dir.resolve())),
                "MLFLOW_WEBHOOK_CACHE_TTL": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.pythonpath:
            parts = [str(p) for p in self.pythonpath] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
            env["PYTHONPATH"] = os.pathsep.join(parts)
        env.update(self.extra_env)
        return env

    def start(self, *, timeout_s: float = 90) -> LocalMlflowServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd=self.state_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its uvicorn/gunicorn children go down with it (stop() signals the group)
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RegistryError(
                    f"mlflow server exited with code {self._process.returncode} at start-up",
                    hint=f"see its log: {self.log_file}",
                )
            if self.healthy():
                return self
            time.sleep(0.3)
        self.stop()
        raise RegistryError(f"mlflow server did not answer within {timeout_s:g} s", hint=f"see {self.log_file}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalMlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
