"""The webhook receiver over real HTTP: a captured MLflow delivery is queued; forgeries, replays, stale and
malformed deliveries are refused; none of them disturbs the service."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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
        return error.code, json.loads(error.read())


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
        connection_deadline_s=3,
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


def test_connections_over_the_limit_are_refused_and_the_receiver_recovers(
    impatient_receiver: WebhookReceiver, clock: Clock
) -> None:
    stalled = [stalled_post(impatient_receiver.port) for _ in range(2)]
    try:
        health = impatient_receiver.url.replace("/webhook", "/healthz")
        with pytest.raises((urllib.error.HTTPError, urllib.error.URLError, ConnectionError)) as refused:
            urllib.request.urlopen(health, timeout=5)
        assert not isinstance(refused.value, urllib.error.HTTPError) or refused.value.code == 503
    finally:
        for connection in stalled:
            connection.close()
    clock.now = 5000.0
    body = b'{"entity": "model_version", "action": "created", "data": {"name": "m", "version": "3"}}'
    deadline = time.monotonic() + 10
    while True:  # the slots free up as the server notices the closed connections
        try:
            assert post(impatient_receiver.url, signed("after-1", body), body)[0] == 200
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "the receiver never took connections again"
            time.sleep(0.2)
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
