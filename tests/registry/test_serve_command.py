"""`model-scanner serve` on the command line: help, usage errors, and the webhook secret kept in the state dir."""

from __future__ import annotations

import os
import subprocess
import sys
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
