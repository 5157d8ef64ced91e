"""hooks/demo.py (`make demo`): what it tells the user about --keep. The demo itself runs by `make demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_help_documents_keep(repo_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(repo_root / "hooks" / "demo.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "--keep" in done.stdout and "DEMO_ARGS=--keep" in done.stdout


def test_without_keep_the_demo_says_how_to_keep_the_ui(repo_root: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_under_test", repo_root / "hooks" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    leaving = demo.ui_note("http://127.0.0.1:5123", keep=False)
    assert "--keep" in leaving and "stops now" in leaving
    kept = demo.ui_note("http://127.0.0.1:5123", keep=True)
    assert "http://127.0.0.1:5123" in kept and "Ctrl-C" in kept


def test_the_makefile_passes_demo_args(repo_root: Path) -> None:
    makefile = (repo_root / "Makefile").read_text(encoding="utf-8")
    assert "hooks/demo.py $(DEMO_ARGS)" in makefile
