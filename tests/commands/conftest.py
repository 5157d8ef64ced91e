"""Fixtures for command tests: run the CLI in-process (fast) or as a subprocess (what users run)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.cli import main


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """`cli("scan", "x.onnx")` -> exit code and captured output, through scanner.cli.main in this process."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exit:  # argparse: --help, usage errors
            code = int(exit.code or 0)
        out = capsys.readouterr()
        return Run(code, out.out, out.err)

    return run


@pytest.fixture
def cli_process(repo_root: Path) -> Callable[..., Run]:
    """`cli_process("scan", "x.onnx")`: `python -m scanner ...` in a subprocess, as users and CI run it."""

    def run(*argv: str, timeout: float = 300) -> Run:
        done = subprocess.run(
            [sys.executable, "-m", "scanner", *argv], cwd=repo_root, capture_output=True, text=True, timeout=timeout
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run
