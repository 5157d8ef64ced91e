"""A threaded HTTP server that slow, hostile or vanishing clients cannot exhaust.

One thread per connection, as `ThreadingHTTPServer`, with three bounds: at most `max_connections` at a time (more are
answered 503 and closed at once), no connection older than `connection_deadline_s` (the accept loop cuts it, however
it trickles its bytes), and the handler's own `timeout` on every read. A client that hangs up is routine, not an
error: it is logged at debug level, with no traceback.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

BUSY_ANSWER = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BUSY_WARNING_EVERY_S = 60.0


class BoundedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int,
        connection_deadline_s: float,
    ) -> None:
        self.max_connections = max_connections
        self.connection_deadline_s = connection_deadline_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._opened_at: dict[Any, float] = {}  # connection -> when accepted (inf once cut)
        self._opened_lock = threading.Lock()
        self._busy_warned_at = -math.inf
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request, client_address)
            return
        with self._opened_lock:
            self._opened_at[request] = time.monotonic()
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def service_actions(self) -> None:
        """Runs in the accept loop about twice a second: cuts connections past their deadline."""
        now = time.monotonic()
        with self._opened_lock:
            overdue = [conn for conn, since in self._opened_at.items() if now - since > self.connection_deadline_s]
            for connection in overdue:
                self._opened_at[connection] = math.inf
        for connection in overdue:
            log.debug("cutting a connection open for over %g s", self.connection_deadline_s)
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # wakes its thread's blocked read with an end of file

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address[0], error)
            return
        log.exception("unexpected error serving %s", client_address[0])

    def _forget(self, request: Any) -> None:
        with self._opened_lock:
            if self._opened_at.pop(request, None) is None:
                return
        self._slots.release()

    def _refuse_busy(self, request: Any, client_address: Any) -> None:
        now = time.monotonic()
        if now - self._busy_warned_at > BUSY_WARNING_EVERY_S:
            self._busy_warned_at = now
            log.warning(
                "%d connections open, the most served at once: refusing new ones (503) until some close",
                self.max_connections,
            )
        log.debug("refused a connection from %s: too many open", client_address[0])
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(BUSY_ANSWER)
        self.shutdown_request(request)
