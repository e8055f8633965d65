"""A loopback site for the browser tests: pages that JavaScript fills, and paths that
misbehave (one never answers), served on 127.0.0.1 by a real HTTP server."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import POLL

HANG = "/hang"  # a path the server never answers (until the site closes)
HANG_LIMIT = 30.0  # seconds a hanging answer is held at most, so no thread outlives a test


@dataclass
class Resource:
    body: bytes
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class JSite:
    """Resources by path, on 127.0.0.1; set ``site["/x"] = "<html>…"`` or a Resource.

    Records every request's path and headers, so tests see what the browser sent.
    """

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.closing = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                site.requests.append((self.path, dict(self.headers)))
                if self.path.split("?", 1)[0] == HANG:
                    site.closing.wait(HANG_LIMIT)
                    self.close_connection = True
                    return
                site.answer(self)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL,), daemon=True)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        resource = self.resources.get(path) or Resource(b"not found", 404, "text/plain")
        handler.send_response(resource.status)
        handler.send_header("Content-Type", resource.content_type)
        for name, value in resource.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(resource.body)))
        handler.end_headers()
        handler.wfile.write(resource.body)

    def __enter__(self) -> JSite:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def __setitem__(self, path: str, resource: Resource | str) -> None:
        if isinstance(resource, str):
            resource = Resource(resource.encode())
        self.resources[path] = resource

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def headers_of(self, path: str) -> list[dict[str, str]]:
        """The headers of every request for ``path``, oldest first, by lower-case name."""
        return [
            {name.lower(): value for name, value in headers.items()}
            for seen, headers in self.requests
            if seen.split("?", 1)[0] == path
        ]
