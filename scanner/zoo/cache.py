"""The small test zoos, one per generator: built once, cached outside the repository, keyed by a hash of their code.

Several test runs (and several people) may ask for one at once: an exclusive file lock serialises the build, and a
marker file says it is complete, so a reader never sees half a zoo. Changing a file of `scanner/zoo/` that shapes
the models changes the first zoo's key (and any such file of the package, `second/` included, the second's), so a
stale zoo is never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from scanner.findings import Progress, no_progress
from scanner.zoo.errors import ZooError

# (family, clean, backdoored): both families, all architectures and exporters, five attacks.
TEST_ZOO: tuple[tuple[str, int, int], ...] = (("digits16", 4, 4), ("shapes32", 3, 3))
TEST_ZOO_SEED = 0
# The second generator's held-out models, of a seed that no fit, gate zoo or benchmark build uses: (index,
# backdoored) draws of seed 21. All three families, both value ranges, normalised and NHWC models, four architectures,
# three attacks. Its backdoored draws 2 (square patch) and 3 (all-to-all) miss the zoo's bar in 3 attempts on this
# seed: left out rather than trained in vain on every new machine.
SECOND_TEST_ZOO: tuple[tuple[int, bool], ...] = (
    (0, False), (1, False), (2, False), (3, False), (0, True), (1, True), (4, True), (5, True),
)  # fmt: skip
SECOND_TEST_ZOO_SEED = 21
COMPLETE_MARKER = "COMPLETE"


# Files that do not change the models or data a build produces: editing them keeps the cached zoo. (The manifest's
# reader accepts manifests with fewer keys, so its format can grow without a rebuild.)
NOT_HASHED = frozenset({"__init__.py", "cache.py", "errors.py", "manifest.py"})


def zoo_code_hash() -> str:
    """A hash of the zoo package's source files that shape the models and data, and of the test zoo's recipe."""
    digest = hashlib.sha256(json.dumps([TEST_ZOO, TEST_ZOO_SEED]).encode())
    package = Path(__file__).resolve().parent
    for source in sorted(package.glob("*.py")):
        if source.name in NOT_HASHED:
            continue
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def second_zoo_code_hash() -> str:
    """A hash of the zoo package's sources that shape models and data, the second generator's and the first's (whose
    exporter and helpers it shares), and of the second test zoo's recipe."""
    digest = hashlib.sha256(json.dumps([SECOND_TEST_ZOO, SECOND_TEST_ZOO_SEED]).encode())
    package = Path(__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        if source.parent == package and source.name in NOT_HASHED:
            continue
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def ensure_test_zoo(cache_root: Path, *, progress: Progress = no_progress, threads: int = 1) -> Path:
    """The directory of the first generator's test zoo under `cache_root`, building it first if needed (minutes,
    once).

    One torch thread by default: test runs share the machine, and on a busy machine a second thread mostly spins.
    """

    def build(zoo_dir: Path) -> None:
        from scanner.zoo.build import build_zoo

        total = sum(clean + backdoored for _, clean, backdoored in TEST_ZOO)
        finished = 0
        for family, clean, backdoored in TEST_ZOO:
            progress_here = _shifted(progress, finished, total)
            entries = build_zoo(
                family, clean, backdoored, zoo_dir, seed=TEST_ZOO_SEED, progress=progress_here, threads=threads
            )
            _require_all(len(entries), clean + backdoored, family)
            finished += clean + backdoored

    return _ensure(Path(cache_root) / f"test-zoo-{zoo_code_hash()}", build)


def ensure_second_test_zoo(cache_root: Path, *, progress: Progress = no_progress, threads: int = 1) -> Path:
    """The directory of the second generator's test zoo (`SECOND_TEST_ZOO`) under `cache_root`, building it first if
    needed (about 3 minutes on one core, once)."""

    def build(zoo_dir: Path) -> None:
        from scanner.zoo.second.build import build_models
        from scanner.zoo.second.plan import draw_model

        models = [draw_model(SECOND_TEST_ZOO_SEED, index, backdoored) for index, backdoored in SECOND_TEST_ZOO]
        entries = build_models(models, zoo_dir, progress=progress, threads=threads)
        _require_all(len(entries), len(models), "second generator")

    return _ensure(Path(cache_root) / f"second-test-zoo-{second_zoo_code_hash()}", build)


def ensure_test_zoos(cache_root: Path) -> tuple[Path, Path]:
    """Both test zoos, the two builds side by side in two processes (one torch thread each: about the second's time
    on two cores instead of the sum)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        first, second = pool.submit(ensure_test_zoo, cache_root), pool.submit(ensure_second_test_zoo, cache_root)
        return first.result(), second.result()


def _ensure(zoo_dir: Path, build: Callable[[Path], None]) -> Path:
    if (zoo_dir / COMPLETE_MARKER).exists():
        return zoo_dir
    zoo_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(zoo_dir.parent / f"{zoo_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # whoever holds it builds; the others wait, then find it complete
        if not (zoo_dir / COMPLETE_MARKER).exists():
            build(zoo_dir)
            (zoo_dir / COMPLETE_MARKER).write_text("complete\n")
    return zoo_dir


def _require_all(built: int, planned: int, what: str) -> None:
    if built < planned:
        raise ZooError(
            f"the test zoo got {built} of {planned} {what} models: some missed the bar",
            hint="the zoo's training recipe or attacks need work; see the log",
        )


def _shifted(progress: Progress, offset: int, total: int) -> Progress:
    def report(done: int, _total: int) -> None:
        progress(offset + done, total)

    return report
