"""A local HTTP server on 127.0.0.1 serving a folder, for testing real download code offline."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        self.requests.append(f"{self.command} {self.path}")


@contextlib.contextmanager
def serve_directory(directory: str) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` on 127.0.0.1; yields ``(base_url, requests)``, each request as "METHOD /path"."""
    requests: list[str] = []
    handler = functools.partial(type("Handler", (_QuietHandler,), {"requests": requests}), directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
