"""The webhook receiver over real HTTP: a captured MLflow delivery is queued; forgeries, replays, stale and
malformed deliveries are refused; none of them disturbs the service."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.registry.queue import WorkQueue
from scanner.registry.receiver import WebhookReceiver
from scanner.registry.webhook import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_for

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
