"""Load on the webhook receiver alone (no MLflow, no scans): slow clients during a burst of deliveries, and a crowd
of connections at once.

    python bench/receiver_load.py slow-burst [--slow 100] [--addresses 20] [--deliveries 200] [--concurrency 10]
    python bench/receiver_load.py crowd [--connections 100]

slow-burst: `--slow` connections from `--addresses` loopback addresses (127.0.0.10, ...) each open a POST and trickle
its body a byte every 0.3 s, never finishing, and reopen as soon as they are cut; meanwhile `--deliveries` correctly
signed deliveries are sent the way MLflow sends them (`--concurrency` at a time, 3 retries 1, 2 and 4 s apart on a 5xx
or a failed connection, 30 s timeout). Reports how many landed, on which try, and how long they took.
crowd: `--connections` clients connect at the same instant and each posts one delivery; reports the answers (a reset
or a 503 is a failure). Linux only (the loopback addresses beyond 127.0.0.1).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

SECRET = "bench-secret"
TRICKLE_EVERY_S = 0.3
MLFLOW_RETRY_WAITS_S = (1, 2, 4)


def signed_request(delivery_id: str, version: int) -> tuple[dict[str, str], bytes]:
    from scanner.registry.service.webhook import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_for

    body = json.dumps(
        {"entity": "model_version", "action": "created", "data": {"name": "bench", "version": str(version)}}
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature_for(SECRET, delivery_id, timestamp, body),
        "Content-Type": "application/json",
    }
    return headers, body


class Slowloris:
    """Trickling, never-finished POSTs from several addresses, reopened when cut (non-blocking, one thread)."""

    def __init__(self, port: int, addresses: list[str], total: int) -> None:
        self.port = port
        self.addresses = [addresses[i % len(addresses)] for i in range(total)]
        self.cut = 0
        self.opened = 0
        self._unsent: dict[socket.socket, bytes] = {}
        self._stop = threading.Event()
        self._connections: list[socket.socket | None] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, address: str) -> socket.socket | None:
        connection = socket.socket()
        connection.setblocking(False)
        try:
            connection.bind((address, 0))
            connection.connect_ex(("127.0.0.1", self.port))
        except OSError:
            connection.close()
            return None
        self.opened += 1
        self._unsent[connection] = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        return connection

    def _alive(self, connection: socket.socket) -> bool:
        try:
            connection.recv(4096)
            return False  # an answer or an end of file: the server is done with it
        except BlockingIOError:
            pass
        except OSError as error:
            return error.errno == errno.ENOTCONN  # still waiting in the backlog
        try:
            connection.send(self._unsent.pop(connection, b" "))
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY_S):
            for index, connection in enumerate(self._connections):
                if connection is not None and self._alive(connection):
                    continue
                if connection is not None:
                    self.cut += 1
                    self._unsent.pop(connection, None)
                    connection.close()
                self._connections[index] = self._open(self.addresses[index])

    def __enter__(self) -> Slowloris:
        self._connections = [self._open(address) for address in self.addresses]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for connection in self._connections:
            if connection is not None:
                connection.close()


def deliver_like_mlflow(url: str, index: int) -> tuple[int, int, float]:
    """(last status, tries, seconds) of one delivery with MLflow's retries; status 0: no answer at all."""
    headers, body = signed_request(f"bench-{index}", index)
    started = time.monotonic()
    status = 0
    for tries, wait_s in enumerate((*MLFLOW_RETRY_WAITS_S, None), start=1):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError):
            status = 0
        if (status and status < 500) or wait_s is None:
            return status, tries, time.monotonic() - started
        time.sleep(wait_s)
    raise AssertionError("unreachable")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2) if ordered else 0.0


def slow_burst(receiver: object, args: argparse.Namespace) -> dict[str, object]:
    addresses = [f"127.0.0.{10 + i}" for i in range(args.addresses)]
    port = receiver.port  # type: ignore[attr-defined]
    url = receiver.url  # type: ignore[attr-defined]
    with Slowloris(port, addresses, args.slow) as slow:
        time.sleep(2.0)  # the slow clients fill the slots first
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(lambda i: deliver_like_mlflow(url, i), range(args.deliveries)))
        took_s = time.monotonic() - started
        cut, opened = slow.cut, slow.opened
    landed = [r for r in results if r[0] == 200]
    return {
        "mode": "slow-burst",
        "slow_clients": args.slow,
        "slow_addresses": args.addresses,
        "deliveries": args.deliveries,
        "concurrency": args.concurrency,
        "landed": len(landed),
        "lost": args.deliveries - len(landed),
        "landed_on_first_try": sum(1 for r in landed if r[1] == 1),
        "delivery_s_p50": percentile([r[2] for r in landed], 0.5),
        "delivery_s_p99": percentile([r[2] for r in landed], 0.99),
        "delivery_s_max": percentile([r[2] for r in landed], 1.0),
        "burst_s": round(took_s, 1),
        "slow_connections_opened": opened,
        "slow_connections_cut": cut,
    }


def crowd(receiver: object, args: argparse.Namespace) -> dict[str, object]:
    port = receiver.port  # type: ignore[attr-defined]
    ready = threading.Barrier(args.connections, timeout=60)

    def one(index: int) -> str:
        headers, body = signed_request(f"crowd-{index}", index)
        head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        ready.wait()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
                connection.sendall(head.encode() + b"\r\n" + body)
                answer = b""
                while chunk := connection.recv(4096):
                    answer += chunk
        except OSError as error:
            return type(error).__name__
        return answer.split(b"\r\n", 1)[0].decode() or "closed without an answer"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.connections) as pool:
        answers = list(pool.map(one, range(args.connections)))
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer] = counts.get(answer, 0) + 1
    return {
        "mode": "crowd",
        "connections": args.connections,
        "answers": counts,
        "all_s": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["slow-burst", "crowd"])
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--addresses", type=int, default=20)
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10, help="MLflow delivers from 10 threads")
    parser.add_argument("--connections", type=int, default=100)
    args = parser.parse_args()

    from scanner.registry.queue import WorkQueue
    from scanner.registry.service.receiver import WebhookReceiver

    with tempfile.TemporaryDirectory(prefix="receiver-bench-") as scratch:
        receiver = WebhookReceiver(WorkQueue(Path(scratch) / "queue.db"), secret=SECRET)
        receiver.start()
        try:
            result = slow_burst(receiver, args) if args.mode == "slow-burst" else crowd(receiver, args)
            result["queued"] = receiver.queue.counts()["queued"]
        finally:
            receiver.stop()
    result["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=2))
    ok = result.get("lost") == 0 if args.mode == "slow-burst" else result["queued"] == args.connections
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
