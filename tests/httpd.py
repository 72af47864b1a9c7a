"""A tiny threaded raw-socket HTTP server for tests that need to misbehave on the wire.

``serve(handler)`` runs ``handler(conn, request_head)`` in its own thread for every connection
(``request_head`` is the bytes up to the blank line) and yields the base URL
``http://127.0.0.1:PORT``. Use it where pytest-httpserver cannot: dripping bodies, stalls,
concurrency counting.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Handler = Callable[[socket.socket, bytes], None]


def read_head(conn: socket.socket) -> bytes:
    """Read one request head (through the blank line) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@contextmanager
def serve(handler: Handler) -> Iterator[str]:
    class _Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            # the client may go away mid-answer (e.g. it timed out); that's what some tests want
            with contextlib.suppress(OSError):
                handler(conn, read_head(conn))

    class _Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with _Server(("127.0.0.1", 0), _Handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()
