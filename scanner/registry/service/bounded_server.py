"""A threaded HTTP server that slow, hostile or vanishing clients cannot exhaust.

One thread per connection, as `ThreadingHTTPServer`, one request per connection, with these bounds:

- at most `max_connections` at a time;
- a request (head and body) must arrive within `request_deadline_s` of the connection's accept, however it trickles
  its bytes (the accept loop cuts it), and the handler's own `timeout` bounds every single read;
- a connection still sending its request `stall_grace_s` after its accept is stalled: one address keeps at most
  `max_per_client` stalled connections (older ones are cut, new ones from it are answered 503), so a slow client
  holds a few slots at most, while a burst of genuine deliveries from one address (each in one go) is not limited;
- when every slot is taken, the accept loop waits up to `slot_wait_s` for one and meanwhile cuts the connections that
  have been sending their request for over `stall_grace_s`: a delivery arrives in one go (milliseconds), so those are
  the stalled ones, and a slow client cannot keep a genuine one out. Only then is a connection answered 503.
- a listen backlog of `socket.SOMAXCONN`, so that a burst waits in the kernel while the slots free up instead of
  being reset.

A client that hangs up is routine, not an error: it is logged at debug level, with no traceback.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

BUSY_ANSWER = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BUSY_WARNING_EVERY_S = 60.0


@dataclass
class _Connection:
    client: str
    accepted_at: float
    reading: bool = True  # False once its request is read: then only the handler's work is left
    cut: bool = False


class BoundedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = socket.SOMAXCONN  # the kernel caps it at net.core.somaxconn

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int,
        max_per_client: int,
        request_deadline_s: float,
        stall_grace_s: float = 1.0,
        slot_wait_s: float = 2.0,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.request_deadline_s = request_deadline_s
        self.stall_grace_s = stall_grace_s
        self.slot_wait_s = slot_wait_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: dict[Any, _Connection] = {}
        self._open_lock = threading.Lock()
        self._busy_warned_at = -math.inf
        super().__init__(address, handler)

    def request_read(self, request: Any) -> None:
        """Called by the handler once the whole request is in: the request deadline no longer applies."""
        with self._open_lock:
            connection = self._open.get(request)
            if connection is not None:
                connection.reading = False

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0])
        if len(self._stalled(time.monotonic()).get(client, ())) >= self.max_per_client:
            self._refuse_busy(request, client_address, f"{self.max_per_client} stalled connections from {client}")
            return
        if not self._wait_for_slot():
            self._refuse_busy(request, client_address, f"{self.max_connections} connections open")
            return
        with self._open_lock:
            self._open[request] = _Connection(client=client, accepted_at=time.monotonic())
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._forget(request)
            raise

    def _wait_for_slot(self) -> bool:
        """A free slot, taken; when there is none, stalled requests are cut to make one (up to `slot_wait_s`)."""
        if self._slots.acquire(blocking=False):
            return True
        give_up_at = time.monotonic() + self.slot_wait_s
        while True:
            self._cut(older_than_s=self.stall_grace_s)
            if self._slots.acquire(timeout=0.05):
                return True
            if time.monotonic() > give_up_at:
                return False

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def service_actions(self) -> None:
        """Runs in the accept loop about twice a second: cuts requests past their deadline, and each address's
        stalled connections beyond `max_per_client` (the oldest first)."""
        self._cut(older_than_s=self.request_deadline_s)
        now = time.monotonic()
        for client, stalled in self._stalled(now).items():
            if len(stalled) > self.max_per_client:
                log.debug("%s holds %d stalled connections: cutting the oldest", client, len(stalled))
                self._cut_these(stalled[: len(stalled) - self.max_per_client])

    def _stalled(self, now: float) -> dict[str, list[Any]]:
        """Per address, its connections still sending their request after `stall_grace_s`, oldest first."""
        found: dict[str, list[tuple[float, Any]]] = {}
        with self._open_lock:
            for request, connection in self._open.items():
                if connection.reading and not connection.cut and now - connection.accepted_at > self.stall_grace_s:
                    found.setdefault(connection.client, []).append((connection.accepted_at, request))
        return {
            client: [request for _, request in sorted(pairs, key=lambda p: p[0])] for client, pairs in found.items()
        }

    def _cut(self, *, older_than_s: float) -> None:
        """Cuts the connections still sending their request `older_than_s` after they were accepted."""
        now = time.monotonic()
        with self._open_lock:
            overdue = [
                request
                for request, connection in self._open.items()
                if connection.reading and not connection.cut and now - connection.accepted_at > older_than_s
            ]
        self._cut_these(overdue)

    def _cut_these(self, requests: list[Any]) -> None:
        with self._open_lock:
            chosen = [r for r in requests if r in self._open and not self._open[r].cut]
            for request in chosen:
                self._open[request].cut = True
        for request in chosen:
            log.debug("cutting a connection that has not sent its whole request")
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)  # wakes its thread's blocked read with an end of file

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address[0], error)
            return
        log.exception("unexpected error serving %s", client_address[0])

    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def _forget(self, request: Any) -> None:
        with self._open_lock:
            if self._open.pop(request, None) is None:
                return
        self._slots.release()

    def _refuse_busy(self, request: Any, client_address: Any, why: str) -> None:
        now = time.monotonic()
        if now - self._busy_warned_at > BUSY_WARNING_EVERY_S:
            self._busy_warned_at = now
            log.warning("%s: refusing new connections (503) until some close", why)
        log.debug("refused a connection from %s: %s", client_address[0], why)
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(BUSY_ANSWER)
        self.shutdown_request(request)
