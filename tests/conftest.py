"""Shared fixtures: a real local HTTP server whose pages tests can change."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Page:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"}
    )


class LocalSite:
    """Pages served on 127.0.0.1; set `site[path] = Page(...)` or an HTML string."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append((self.path, dict(self.headers)))
                page = site.pages.get(
                    self.path, Page(b"not found", 404, {"Content-Type": "text/plain"})
                )
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __setitem__(self, path: str, page: Page | str) -> None:
        self.pages[path] = Page(page.encode()) if isinstance(page, str) else page

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def site() -> Iterator[LocalSite]:
    local = LocalSite()
    local.thread.start()
    yield local
    local.server.shutdown()
    local.server.server_close()
