"""Every install route the docs name exists in this repository (model-scanner is on no package index and in no
container registry): pip from a checkout or the git URL, the Dockerfile the k8s CronJob runs, the Action by its
repository path. No image is built here (no network); the Dockerfile's inputs are checked instead."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOC_GLOBS = ("README.md", "hooks/**/*", ".github/**/*", "action.yml", "policies/*", "Dockerfile", "docs/**/*")


def documents(repo_root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for pattern in DOC_GLOBS:
        for path in repo_root.glob(pattern):
            if path.is_file() and "node_modules" not in path.parts:
                try:
                    found[path.relative_to(repo_root).as_posix()] = path.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    continue
    return found


def test_no_doc_installs_model_scanner_from_a_package_index(repo_root: Path) -> None:
    # `pip install model-scanner`, `pip install 'model-scanner[cpu]'`: an index install; `... @ git+https://...` or a
    # checkout path ('.[cpu]') is fine.
    from_index = re.compile(r"pip install[^\n`]*?['\"]?model-scanner(\[[^\]]*\])?['\"]?(?!\S*\s*@)")
    offending = {
        name: match.group(0) for name, text in documents(repo_root).items() for match in from_index.finditer(text)
    }
    assert offending == {}


def test_the_git_url_route_names_the_package_and_its_extras(repo_root: Path) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    routes = re.findall(r"'(model-scanner)\[([a-z,]+)\] @ git\+https://[^']+'", readme)
    assert routes
    for name, extras in routes:
        assert name == project["name"]
        assert set(extras.split(",")) <= set(project["optional-dependencies"])


def dockerfile_instructions(repo_root: Path) -> list[tuple[str, str]]:
    text = (repo_root / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_copies_files_that_exist_and_installs_real_extras(repo_root: Path) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    instructions = dockerfile_instructions(repo_root)
    copied = [shlex.split(argument)[:-1] for kind, argument in instructions if kind == "COPY"]
    sources = [source for group in copied for source in group]
    assert "scanner" in sources and "pyproject.toml" in sources
    missing = [source for source in sources if not (repo_root / source).exists()]
    assert missing == []
    ignored = (repo_root / ".dockerignore").read_text(encoding="utf-8").split()
    assert not set(sources) & set(ignored)  # a copied path the build context would leave out
    runs = " ".join(argument for kind, argument in instructions if kind == "RUN")
    extras = set(tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for asked in re.findall(r"'\.\[([a-z,]+)\]'", runs):
        assert set(asked.split(",")) <= extras
    assert "-c constraints.txt" in runs and "download.pytorch.org/whl/cpu" in runs  # torch pinned, CPU build
    entry = dict(instructions)["ENTRYPOINT"]
    assert entry == '["model-scanner"]'
    user = dict(instructions)["USER"]
    cronjob = yaml.safe_load((repo_root / "hooks" / "k8s" / "rescan-cronjob.yaml").read_text(encoding="utf-8"))
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert int(user) == pod["securityContext"]["runAsUser"]  # the image runs as the user the CronJob demands


def test_the_cronjob_runs_the_image_the_dockerfile_builds(repo_root: Path) -> None:
    text = (repo_root / "hooks" / "k8s" / "rescan-cronjob.yaml").read_text(encoding="utf-8")
    cronjob = yaml.safe_load(text)
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    build = re.search(r"docker build -t (\S+) \.", text)
    assert build is not None and build.group(1) == image  # the comment's build command makes exactly this image
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    assert f"docker build -t {image} ." in readme  # and the README documents the same build


def test_actions_are_used_by_this_repositorys_path_or_by_dot(repo_root: Path) -> None:
    third_party = ("actions/", "github/codeql-action/")
    for name, text in documents(repo_root).items():
        for used in re.findall(r"uses:\s*['\"]?([^\s'\"`]+)", text):
            if used.startswith(third_party):
                continue
            assert used in ("./", "OWNER/REPO@REF"), f"{name}: uses: {used}"
    assert (repo_root / "action.yml").is_file()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ([], "torch==2.13.0"),
        (
            ["TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"],
            "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple",
        ),
    ],
    ids=["default", "cpu-index"],
)
def test_the_makefile_lets_the_user_choose_the_torch_index(
    repo_root: Path, tmp_path: Path, variables: list[str], expected: str
) -> None:
    # -n: print the commands, run none; VENV points at a folder that does not exist, so nothing is reused either.
    done = subprocess.run(
        ["make", "-n", "-B", "install", f"VENV={tmp_path / 'venv'}", *variables],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (torch_line,) = [line for line in done.stdout.splitlines() if "torch==2.13.0" in line and "pip install" in line]
    assert torch_line.rstrip().endswith(expected)
    assert "bin/model-scanner" in done.stdout and "bin/activate" in done.stdout  # says how to reach the commands
