"""Local HTTP servers on 127.0.0.1, for testing real download code offline."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
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



class _SilentHandler(http.server.BaseHTTPRequestHandler):
    """Reads the request and never answers: waits until ``released`` is set or ``lifetime_s`` has passed."""

    released: threading.Event
    lifetime_s: float
    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802
        self.requests.append(f"{self.command} {self.path}")
        self.released.wait(self.lifetime_s)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve_silence(lifetime_s: float = 30.0) -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 that takes every GET and never sends a byte back (a mirror that hangs); yields
    ``(base_url, requests)`` like :func:`serve_directory`. Each held request is let go when the block ends or
    ``lifetime_s`` seconds after it came, whichever is first, so a client without a timeout is not left hanging."""
    requests: list[str] = []
    released = threading.Event()
    handler = type("Handler", (_SilentHandler,), {"requests": requests, "released": released, "lifetime_s": lifetime_s})
    with _serve(handler) as url:
        try:
            yield url, requests
        finally:
            released.set()
