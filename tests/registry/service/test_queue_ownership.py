"""One `serve` per queue file: a second one on the same state directory is refused with a clear error; a crashed
one never leaves the lock behind (the operating system's flock drops it with the process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scanner.errors import RegistryError
from scanner.registry.service import QueueOwnership


def test_a_second_owner_of_one_queue_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    queue = tmp_path / "state" / "queue.db"
    first = QueueOwnership(queue)
    first.acquire()
    with pytest.raises(RegistryError, match=rf"another model-scanner serve \(pid {os.getpid()}\) is using the queue"):
        QueueOwnership(queue).acquire()
    QueueOwnership(tmp_path / "elsewhere" / "queue.db").acquire()  # another state directory is fine
    first.release()
    again = QueueOwnership(queue)
    again.acquire()  # released: free again
    again.release()


def test_a_killed_owner_leaves_no_stale_lock(tmp_path: Path) -> None:
    queue = tmp_path / "queue.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from scanner.registry.service import QueueOwnership as Q; from pathlib import Path; "
         f"Q(Path({str(queue)!r})).acquire(); print('held', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RegistryError, match=rf"pid {holder.pid}"):
            QueueOwnership(queue).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            QueueOwnership(queue).acquire()
            break
        except RegistryError:
            assert time.monotonic() < deadline, "the lock outlived the process that held it"
            time.sleep(0.1)
