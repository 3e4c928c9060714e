"""Local HTTP servers on 127.0.0.1, for testing real download code offline."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        self.requests.append(f"{self.command} {self.path}")


class _DroppingHandler(http.server.BaseHTTPRequestHandler):
    """Announces the whole payload (Content-Length) but sends only its first half, then closes the connection."""

    payload: bytes
    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        self.requests.append(f"{self.command} {self.path}")


@contextlib.contextmanager
def _serve(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve_directory(directory: str) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` on 127.0.0.1; yields ``(base_url, requests)``, each request as "METHOD /path"."""
    requests: list[str] = []
    handler = functools.partial(type("Handler", (_QuietHandler,), {"requests": requests}), directory=directory)
    with _serve(handler) as url:
        yield url, requests


@contextlib.contextmanager
def serve_dropping_connection(payload: bytes) -> Iterator[tuple[str, list[str]]]:
    """A server that answers every GET with a Content-Length of ``len(payload)`` but sends only half of it and
    closes the connection (a download cut off mid-file); yields ``(base_url, requests)`` like
    :func:`serve_directory`."""
    requests: list[str] = []
    with _serve(type("Handler", (_DroppingHandler,), {"payload": payload, "requests": requests})) as url:
        yield url, requests


@contextlib.contextmanager
def serve_silence(lifetime_s: float = 30.0, max_connections: int = 16) -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 that accepts TCP connections and never sends a byte (a mirror that hangs).

    Yields ``(base_url, connections)``; ``connections`` gets one ``"host:port"`` per accepted connection. It holds
    at most ``max_connections`` open (more are closed at once), and closes them all and stops listening when the
    block ends or ``lifetime_s`` seconds after it started, whichever comes first, so a client without a timeout
    is cut off rather than left hanging.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    connections: list[str] = []

    def hold() -> None:
        held: list[socket.socket] = []
        deadline = time.monotonic() + lifetime_s
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    conn, peer = listener.accept()
                except TimeoutError:
                    continue
                if len(held) >= max_connections:
                    conn.close()
                    continue
                held.append(conn)
                connections.append(f"{peer[0]}:{peer[1]}")
        finally:
            for conn in held:
                conn.close()
            listener.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", connections
    finally:
        stop.set()
        thread.join(timeout=5)
