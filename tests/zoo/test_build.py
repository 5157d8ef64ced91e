import shutil
import subprocess
import sys

import pytest

from scanner.zoo.build import ARCH_ORDER, ATTACK_ORDER, NEVER_PAIRED, build_zoo, plan
from scanner.zoo.cache import TEST_ZOO, TEST_ZOO_SEED
from scanner.zoo.errors import ZooError
from scanner.zoo.manifest import read_manifest


def test_plan_is_deterministic_and_cycles_through_every_combination():
    planned = plan("digits16", 6, 30, seed=4)
    assert planned == plan("digits16", 6, 30, seed=4)
    assert len({p.file for p in planned}) == 36
    clean = [p for p in planned if p.attack is None]
    backdoored = [p for p in planned if p.attack is not None]
    assert {(p.arch, p.exporter) for p in clean} == {(a, e) for a in ARCH_ORDER for e in ("legacy", "dynamo")}
    pairs = {(a, k) for a in ARCH_ORDER for k in ATTACK_ORDER}
    assert {(p.arch, p.attack) for p in backdoored} == pairs - NEVER_PAIRED
    assert ("cnn", "all_to_all") in NEVER_PAIRED
    # A larger build extends a smaller one: model i keeps its name and recipe.
    assert plan("digits16", 2, 3, seed=4) == clean[:2] + backdoored[:3]
    assert plan("digits16", 1, 1, seed=5)[0].file != planned[0].file


def test_plan_refuses_an_attack_no_architecture_can_carry():
    with pytest.raises(ZooError, match="all_to_all"):
        plan("digits16", 0, 5, archs=("cnn", "cnn_bn"))


def _recorder(steps):
    return lambda done, total: steps.append((done, total))


def test_rebuilding_resumes_without_training(zoo, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(zoo, copy)
    before = read_manifest(copy)
    for family, clean, backdoored in TEST_ZOO:
        steps: list[tuple[int, int]] = []
        entries = build_zoo(family, clean, backdoored, copy, seed=TEST_ZOO_SEED, progress=_recorder(steps))
        assert len(entries) == clean + backdoored
        assert steps[-1] == (clean + backdoored, clean + backdoored)
    assert read_manifest(copy) == before


def test_cli_resumes_and_reports(zoo, tmp_path, repo_root):
    copy = tmp_path / "zoo"
    shutil.copytree(zoo, copy)
    family, clean, backdoored = TEST_ZOO[0]
    command = [sys.executable, "-m", "scanner", "zoo", "build", "--family", family, "--clean", str(clean)]
    command += ["--backdoored", str(backdoored), "--out", str(copy), "--seed", str(TEST_ZOO_SEED)]
    done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{clean} clean + {backdoored} backdoored" in done.stderr


def test_cli_help_shows_an_example(repo_root):
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "zoo", "build", "--help"], cwd=repo_root, capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "model-scanner zoo build --family shapes32 --clean 10 --backdoored 10 --out" in done.stdout
