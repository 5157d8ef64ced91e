"""The webhook receiver: a small HTTP server that checks a delivery, stores it in the queue, and answers at once.

POST /webhook: 200 once the event is committed to the queue (or was seen before: MLflow retries with the same
delivery id), 401 bad signature / stale timestamp, 400 malformed body, 413 too large, 503 if the queue cannot store
it (MLflow then retries). GET /healthz: 200 with the queue's counts. Scanning happens elsewhere (workers), so an
answer never waits on a scan. One request per connection. Slow or stalled clients are cut off (a timeout per read,
a deadline for the whole request, a few stalled connections per address, stalled ones cut first when the slots run
out: see BoundedHTTPServer); a client that hangs up loses only its own answer.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from scanner.errors import UsageError
from scanner.registry.queue import WorkQueue
from scanner.registry.service.bounded_server import BoundedHTTPServer
from scanner.registry.service.webhook import Intent, WebhookRejected, verify_delivery

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1 << 20
# MLflow sends a delivery in one go (milliseconds) and retries a failed one 3 times within about 10 s: a client that
# pauses this long within a request is stalled or hostile, and must let go of its slot well within those retries.
READ_TIMEOUT_S = 2.0
REQUEST_DEADLINE_S = 5.0
STALL_GRACE_S = 1.0
MAX_CONNECTIONS = 64
MAX_PER_CLIENT = 4  # stalled connections per address; MLflow's own deliveries never stall


class WebhookReceiver:
    """Serves on (host, port) in a background thread; port 0 picks a free one (see `.port`)."""

    def __init__(
        self,
        queue: WorkQueue,
        *,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        max_age_s: float = 300,
        clock: Callable[[], float] = time.time,
        read_timeout_s: float = READ_TIMEOUT_S,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        stall_grace_s: float = STALL_GRACE_S,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
    ) -> None:
        if not secret.strip():
            raise UsageError("the webhook secret is empty: anyone could sign a webhook delivery")
        self.queue = queue
        self.secret = secret
        self.max_age_s = max_age_s
        self.clock = clock
        self.read_timeout_s = read_timeout_s
        try:
            self._server = BoundedHTTPServer(
                (host, port),
                _handler_for(self),
                max_connections=max_connections,
                max_per_client=max_per_client,
                request_deadline_s=request_deadline_s,
                stall_grace_s=stall_grace_s,
            )
        except (OSError, OverflowError) as error:
            raise UsageError(
                f"cannot listen for webhooks on {host}:{port}: {_why_not_listening(error, host)}",
                hint="give --listen an address of this host and a free port, e.g. --listen 127.0.0.1:8765",
            ) from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}{WEBHOOK_PATH}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        log.info("webhook receiver listening on %s", self.url)

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, for ever if it never ran
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """The receiver's logic without HTTP: (status, JSON answer)."""
        try:
            delivery = verify_delivery(headers, body, secret=self.secret, now=self.clock(), max_age_s=self.max_age_s)
        except WebhookRejected as rejected:
            log.warning("webhook refused (%d): %s", rejected.status, rejected)
            return rejected.status, {"error": str(rejected)}
        target = None
        if delivery.intent is Intent.SCAN:
            assert delivery.model_name is not None and delivery.model_version is not None
            target = (delivery.model_name, delivery.model_version)
        try:
            fresh = self.queue.record_delivery(delivery.delivery_id, delivery.event, target)
        except Exception as error:  # the queue is a file: a full disk or lock timeout must not lose the event
            log.error("could not store delivery %s: %s", delivery.delivery_id, error)
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "could not store the event; retry"}
        if not fresh:
            return HTTPStatus.OK, {"status": "duplicate", "delivery_id": delivery.delivery_id}
        status = "queued" if target else "ignored"
        log.log(
            logging.INFO if target else logging.DEBUG,
            "delivery %s (%s): %s",
            delivery.delivery_id,
            delivery.event,
            status,
        )
        return HTTPStatus.OK, {"status": status, "delivery_id": delivery.delivery_id}


def _why_not_listening(error: OSError | OverflowError, host: str) -> str:
    if isinstance(error, socket.gaierror):
        return f"unknown host {host!r}"
    if isinstance(error, OverflowError):
        return "port must be 0-65535"
    reasons = {
        errno.EADDRINUSE: "the port is already in use",
        errno.EADDRNOTAVAIL: "not an address of this host",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }
    return reasons.get(error.errno or 0, error.strerror or str(error))


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "model-scanner"
        protocol_version = "HTTP/1.1"
        timeout = receiver.read_timeout_s  # per read: a stalled client raises TimeoutError and is dropped

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != WEBHOOK_PATH:
                self.close_connection = True
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST {WEBHOOK_PATH}"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.close_connection = True  # a body we did not read must not be taken for the next request
                self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
                return
            if length < 0 or length > MAX_BODY_BYTES:
                self.close_connection = True
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return
            body = self.rfile.read(length)
            if len(body) < length:  # the client hung up mid-body: nobody is left to answer
                log.debug("%s hung up after %d of %d body bytes", self.address_string(), len(body), length)
                self.close_connection = True
                return
            self._request_read()
            status, answer = receiver.handle(dict(self.headers.items()), body)
            self._answer(status, answer)

        def do_GET(self) -> None:
            self._request_read()
            if self.path.split("?", 1)[0] != HEALTH_PATH:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            self._answer(HTTPStatus.OK, {"status": "ok", "jobs": receiver.queue.counts()})

        def _request_read(self) -> None:
            if isinstance(self.server, BoundedHTTPServer):
                self.server.request_read(self.request)

        def _answer(self, status: int, answer: dict[str, Any]) -> None:
            payload = json.dumps(answer).encode()
            self.close_connection = True  # one request per connection: an idle keep-alive holds no slot
            self.send_response(status)
            self.send_header("Connection", "close")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
