"""The webhook receiver over real HTTP: a captured MLflow delivery is queued; forgeries, replays, stale and
malformed deliveries are refused; none of them disturbs the service."""

from __future__ import annotations

import errno
import json
import logging
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from scanner.registry.queue import WorkQueue
from scanner.registry.service.receiver import WebhookReceiver
from scanner.registry.service.webhook import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_for

SECRET = "s3cret"  # the captured deliveries' secret


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver(tmp_path: Path, clock: Clock) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(WorkQueue(tmp_path / "queue.db"), secret=SECRET, clock=clock, max_age_s=300)
    receiver.start()
    yield receiver
    receiver.stop()


def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={**headers, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else {}  # a 503 for a busy server has no body


def replay(receiver: WebhookReceiver, delivery: dict[str, Any], **header_changes: str) -> tuple[int, dict[str, Any]]:
    headers = {k: v for k, v in delivery["headers"].items() if k.startswith("X-MLflow")}
    headers.update(header_changes)
    return post(receiver.url, headers, delivery["raw_body"].encode())


def test_real_delivery_is_queued_and_its_retries_are_not(
    receiver: WebhookReceiver, clock: Clock, captured: Callable[[str], dict[str, Any]]
) -> None:
    delivery = captured("03_model_version.created.json")
    clock.now = delivery["received_at"]
    assert replay(receiver, delivery) == (
        200,
        {"status": "queued", "delivery_id": delivery["headers"][DELIVERY_ID_HEADER]},
    )
    clock.now += 7  # MLflow's last retry
    status, answer = replay(receiver, delivery)
    assert (status, answer["status"]) == (200, "duplicate")
    assert receiver.queue.counts()["queued"] == 1


def test_refusals_do_not_disturb_the_service(
    receiver: WebhookReceiver, clock: Clock, captured: Callable[[str], dict[str, Any]]
) -> None:
    delivery = captured("03_model_version.created.json")
    clock.now = delivery["received_at"]
    forged = signature_for(
        "guessed-secret",
        delivery["headers"][DELIVERY_ID_HEADER],
        delivery["headers"][TIMESTAMP_HEADER],
        delivery["raw_body"].encode(),
    )
    assert replay(receiver, delivery, **{SIGNATURE_HEADER: forged})[0] == 401
    assert replay(receiver, delivery, **{SIGNATURE_HEADER: "v1,"})[0] == 401
    clock.now = delivery["received_at"] + 3600
    status, answer = replay(receiver, delivery)
    assert status == 401 and "stale" in answer["error"]

    clock.now = 5000.0
    body = b'{"entity": "model_version", "action": "created", "data": '  # truncated JSON, correctly signed
    signed = {
        DELIVERY_ID_HEADER: "m-1",
        TIMESTAMP_HEADER: "5000",
        SIGNATURE_HEADER: signature_for(SECRET, "m-1", "5000", body),
    }
    assert post(receiver.url, signed, body)[0] == 400
    assert receiver.queue.counts()["queued"] == 0

    # The service still takes good deliveries (and the refused ones left no trace in the queue).
    good = b'{"entity": "model_version", "action": "created", "data": {"name": "m", "version": "2"}}'
    headers = {
        DELIVERY_ID_HEADER: "g-1",
        TIMESTAMP_HEADER: "5000",
        SIGNATURE_HEADER: signature_for(SECRET, "g-1", "5000", good),
    }
    assert post(receiver.url, headers, good) == (200, {"status": "queued", "delivery_id": "g-1"})
    with urllib.request.urlopen(receiver.url.replace("/webhook", "/healthz"), timeout=5) as answer:
        assert json.loads(answer.read())["jobs"]["queued"] == 1


def test_oversized_body_is_refused_before_it_is_read(receiver: WebhookReceiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as connection:
        connection.sendall(
            f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {2 << 20}\r\n\r\n".encode()
        )  # announces 2 MiB, sends none of it: the answer must not wait for the body
        answer = connection.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413")


def signed(delivery_id: str, body: bytes, timestamp: str = "5000") -> dict[str, str]:
    return {
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature_for(SECRET, delivery_id, timestamp, body),
    }


def test_a_deeply_nested_signed_body_is_a_400(receiver: WebhookReceiver, clock: Clock) -> None:
    clock.now = 5000.0
    body = b"[" * 100_000 + b"]" * 100_000
    status, answer = post(receiver.url, signed("deep-1", body), body)
    assert status == 400 and "nest" in answer["error"]
    assert receiver.queue.counts()["queued"] == 0


@pytest.fixture
def impatient_receiver(tmp_path: Path, clock: Clock) -> Iterator[WebhookReceiver]:
    """A receiver with short limits: 1 s per read, 3 s per connection, 2 connections at a time."""
    receiver = WebhookReceiver(
        WorkQueue(tmp_path / "queue.db"),
        secret=SECRET,
        clock=clock,
        read_timeout_s=1,
        request_deadline_s=3,
        max_connections=2,
    )
    receiver.start()
    yield receiver
    receiver.stop()


def stalled_post(port: int, *, announced: int = 100, sent: bytes = b"{}") -> socket.socket:
    """A connection that announces `announced` body bytes and sends fewer: a slowloris."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {announced}\r\n\r\n".encode() + sent)
    return connection


def closed_by_server(connection: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset); raises TimeoutError if it holds it open."""
    try:
        while connection.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def test_a_stalled_body_does_not_hold_a_thread(impatient_receiver: WebhookReceiver) -> None:
    with stalled_post(impatient_receiver.port) as connection:
        connection.settimeout(5)  # the read timeout is 1 s: the server must let go well before
        assert closed_by_server(connection)


def test_a_trickling_client_is_cut_off_at_the_connection_deadline(impatient_receiver: WebhookReceiver) -> None:
    # One byte every 0.5 s: every single read finishes within the read timeout, so only the deadline stops it.
    with stalled_post(impatient_receiver.port, announced=1000, sent=b"") as connection:
        connection.settimeout(0.5)
        cut = False
        for _ in range(20):  # 10 s, against a deadline of 3 s
            try:
                connection.sendall(b" ")
                cut = connection.recv(4096) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                cut = True
            if cut:
                break
        assert cut


def test_stalled_connections_make_way_for_a_delivery(impatient_receiver: WebhookReceiver, clock: Clock) -> None:
    # Both slots held by clients that trickle their request (each read within the read timeout, never complete):
    # the delivery still lands, and it is they who are cut.
    with Slowloris(impatient_receiver.port, clients=["127.0.0.2", "127.0.0.3"], per_client=1) as slow:
        time.sleep(1.5)  # past the grace a request gets to arrive, before the 3 s request deadline
        assert slow.cut == 0
        clock.now = 5000.0
        body = b'{"entity": "model_version", "action": "created", "data": {"name": "m", "version": "3"}}'
        assert post(impatient_receiver.url, signed("after-1", body), body) == (
            200,
            {"status": "queued", "delivery_id": "after-1"},
        )
        assert slow.cut >= 1
    assert impatient_receiver.queue.counts()["queued"] == 1


def hang_up(connection: socket.socket) -> None:
    """Closes with a reset (SO_LINGER 0), as a client that gives up does."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def test_clients_that_hang_up_leave_no_traceback(
    receiver: WebhookReceiver, clock: Clock, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="scanner.registry")
    clock.now = 5000.0
    hang_up(stalled_post(receiver.port))  # in the middle of the body
    body = b'{"entity": "model_version", "action": "created", "data": {"name": "m", "version": "4"}}'
    for index in range(5):  # after the whole request, before (or while) the answer is written
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as connection:
            head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in signed(f"gone-{index}", body).items())
            connection.sendall(head.encode() + b"\r\n" + body)
            hang_up(connection)
    time.sleep(1.0)
    assert post(receiver.url, signed("still-up", body), body)[0] == 200  # the service carries on
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


class Slowloris:
    """Clients that open a POST and trickle its body a byte at a time, never finishing it; each read the server makes
    completes within its read timeout, so only its request deadline or its eviction ends them. With `reconnect`,
    a client whose connection is cut opens a new one at once, as an attacker would. `.cut` counts the cuts seen."""

    def __init__(
        self, port: int, *, clients: list[str], per_client: int, every_s: float = 0.3, reconnect: bool = False
    ) -> None:
        self.port = port
        self.addresses = [address for address in clients for _ in range(per_client)]
        self.every_s = every_s
        self.reconnect = reconnect
        self.cut = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._connections: list[socket.socket | None] = []
        self._unsent: dict[socket.socket, bytes] = {}

    def _open(self, address: str) -> socket.socket | None:
        # Non-blocking, so that one connection waiting in a full backlog does not hold up the others' trickle.
        connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        connection.setblocking(False)
        try:
            connection.bind((address, 0))
            connection.connect_ex(("127.0.0.1", self.port))
        except OSError:
            connection.close()
            return None
        self._unsent[connection] = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        return connection

    def __enter__(self) -> Slowloris:
        self._connections = [self._open(address) for address in self.addresses]
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for index, connection in enumerate(self._connections):
                if connection is not None and self._still_open(connection):
                    continue
                if connection is not None:
                    self.cut += 1
                    self._unsent.pop(connection, None)
                    connection.close()
                self._connections[index] = self._open(self.addresses[index]) if self.reconnect else None

    def _still_open(self, connection: socket.socket) -> bool:
        try:
            if connection.recv(4096) != b"":
                return False  # an answer (503): the server is done with it
            return False  # end of file: cut
        except BlockingIOError:
            pass  # connected, nothing to read: still open
        except OSError as error:
            return error.errno == errno.ENOTCONN  # still connecting (waiting in the backlog)
        try:
            connection.send(self._unsent.pop(connection, b" "))
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for connection in self._connections:
            if connection is not None:
                connection.close()

    def open_count(self) -> int:
        return sum(1 for connection in self._connections if connection is not None)


def deliver_like_mlflow(url: str, delivery_id: str, body: bytes) -> int:
    """One delivery as MLflow makes it: up to 3 retries, 1 s, 2 s, 4 s apart, on 5xx or a failed connection.
    Returns the last status (0: no answer at all)."""
    status = 0
    for wait_s in (1, 2, 4, None):
        try:
            status = post(url, signed(delivery_id, body), body)[0]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status = 0
        if (status and status < 500) or wait_s is None:
            return status
        time.sleep(wait_s)
    return status


def test_genuine_deliveries_land_while_slow_clients_keep_coming(receiver: WebhookReceiver, clock: Clock) -> None:
    # 100 trickling connections from 20 addresses, reopened as soon as they are cut, against the default limits
    # (64 connections): 50 deliveries, sent the way MLflow sends them (10 at a time, 3 retries within ~7 s), all land.
    clock.now = 5000.0
    addresses = [f"127.0.0.{host}" for host in range(10, 30)]
    with Slowloris(receiver.port, clients=addresses, per_client=5, reconnect=True) as slow:
        time.sleep(2.0)  # the slots are full of slow clients before the first delivery

        def deliver(index: int) -> int:
            body = json.dumps(
                {"entity": "model_version", "action": "created", "data": {"name": "burst", "version": str(index)}}
            ).encode()
            return deliver_like_mlflow(receiver.url, f"burst-{index}", body)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(deliver, range(50)))
        took_s = time.monotonic() - started
        still_slow = slow.open_count()
    assert statuses == [200] * 50, statuses
    assert receiver.queue.counts()["queued"] == 50
    assert slow.cut > 0 and still_slow > 0  # the slow clients were there all along, and they were the ones cut
    assert took_s < 120, took_s


def test_one_address_keeps_only_a_few_stalled_connections(tmp_path: Path, clock: Clock) -> None:
    receiver = WebhookReceiver(
        WorkQueue(tmp_path / "queue.db"), secret=SECRET, clock=clock, request_deadline_s=60, max_per_client=4
    )
    receiver.start()
    try:
        with Slowloris(receiver.port, clients=["127.0.0.7"], per_client=12) as slow:
            deadline = time.monotonic() + 20
            while slow.open_count() > 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # and it stays so
            assert slow.open_count() == 4, slow.open_count()
            assert receiver._server.open_connections() <= 4
    finally:
        receiver.stop()


def test_a_burst_of_100_connections_is_queued_not_reset(receiver: WebhookReceiver, clock: Clock) -> None:
    clock.now = 5000.0
    ready = threading.Barrier(100, timeout=30)

    def deliver(index: int) -> str:
        body = json.dumps(
            {"entity": "model_version", "action": "created", "data": {"name": "crowd", "version": str(index)}}
        ).encode()
        head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in signed(f"crowd-{index}", body).items())
        ready.wait()
        try:
            with socket.create_connection(("127.0.0.1", receiver.port), timeout=60) as connection:
                connection.sendall(head.encode() + b"\r\n" + body)
                answer = b""
                while chunk := connection.recv(4096):
                    answer += chunk
        except OSError as error:
            return type(error).__name__
        return answer.split(b"\r\n", 1)[0].decode()

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(deliver, range(100)))
    assert answers == ["HTTP/1.1 200 OK"] * 100, sorted(set(answers))
    assert receiver.queue.counts()["queued"] == 100
