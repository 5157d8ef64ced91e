"""The small test zoo: built once, cached outside the repository, keyed by a hash of the zoo's code.

Several test runs (and several people) may ask for it at once: an exclusive file lock serialises the build, and a
marker file says it is complete, so a reader never sees half a zoo. Changing any file of `scanner/zoo/` changes
the key, so a stale zoo is never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

from scanner.findings import Progress, no_progress
from scanner.zoo.errors import ZooError

# (family, clean, backdoored): both families, all architectures and exporters, five attacks.
TEST_ZOO: tuple[tuple[str, int, int], ...] = (("digits16", 4, 4), ("shapes32", 3, 3))
TEST_ZOO_SEED = 0
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


def ensure_test_zoo(cache_root: Path, *, progress: Progress = no_progress, threads: int = 1) -> Path:
    """The directory of the test zoo under `cache_root`, building it first if needed (minutes, once).

    One torch thread by default: test runs share the machine, and on a busy machine a second thread mostly spins.
    """
    from scanner.zoo.build import build_zoo

    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    zoo_dir = cache_root / f"test-zoo-{zoo_code_hash()}"
    if (zoo_dir / COMPLETE_MARKER).exists():
        return zoo_dir
    with open(cache_root / f"{zoo_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # whoever holds it builds; the others wait, then find it complete
        if not (zoo_dir / COMPLETE_MARKER).exists():
            total = sum(clean + backdoored for _, clean, backdoored in TEST_ZOO)
            finished = 0
            for family, clean, backdoored in TEST_ZOO:
                progress_here = _shifted(progress, finished, total)
                entries = build_zoo(
                    family, clean, backdoored, zoo_dir, seed=TEST_ZOO_SEED, progress=progress_here, threads=threads
                )
                if len(entries) < clean + backdoored:
                    raise ZooError(
                        f"the test zoo got {len(entries)} of {clean + backdoored} {family} models: some missed the bar",
                        hint="the zoo's training recipe or attacks need work; see the log",
                    )
                finished += clean + backdoored
            (zoo_dir / COMPLETE_MARKER).write_text("complete\n")
    return zoo_dir


def _shifted(progress: Progress, offset: int, total: int) -> Progress:
    def report(done: int, _total: int) -> None:
        progress(offset + done, total)

    return report
