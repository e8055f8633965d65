"""A local corpus server: the pages of the current round, from memory, on 127.0.0.1.

Every page of a round is rendered and gzip-compressed when the round is switched, so
serving costs the tools under test nothing but the transfer. Responses carry no
ETag, Last-Modified or caching headers: conditional requests always get the full
page, as they do from most policy pages. Clients that accept gzip get gzip.

In process::

    server = CorpusServer(corpus)          # listens on 127.0.0.1, a free port
    server.set_round(1)
    ...
    server.close()

Standalone (as the benchmark runs it, so that its memory is not counted in the
tools' peak RSS), it prints ``READY <port>`` once round 0 is served, switches rounds
on ``POST /_control/round/<n>`` (answering when the new round is served), and
describes the corpus on ``GET /_control/manifest``::

    python -m bench.server --pages 100 --changed 2 --port 8765
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.corpus import DEFAULT_SEED, Corpus

HOST = "127.0.0.1"
_CONTROL = re.compile(r"^/_control/round/(\d+)$")


class _Pages:
    """The bodies of one round: path -> (plain, gzip)."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.bodies = {
            path: (body, gzip.compress(body, compresslevel=6, mtime=0))
            for path, body in pages.items()
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    server: _Server

    def do_GET(self) -> None:
        if self.path == "/_control/manifest":
            manifest = json.dumps(self.server.owner.manifest()).encode()
            self._send(HTTPStatus.OK, manifest, "application/json")
            return
        bodies = self.server.current.bodies.get(self.path.split("?", 1)[0])
        if bodies is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        plain, packed = bodies
        accepts_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        body = packed if accepts_gzip else plain
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", gzipped=accepts_gzip)

    def do_POST(self) -> None:
        match = _CONTROL.match(self.path)
        if match is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        self.server.owner.set_round(int(match[1]))
        self._send(HTTPStatus.OK, f"round {match[1]}\n".encode(), "text/plain")

    def _send(self, status: int, body: bytes, content_type: str, *, gzipped: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a thousand requests a round would drown the benchmark's output."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    current: _Pages
    owner: CorpusServer


class CorpusServer:
    """Serves ``corpus`` on 127.0.0.1 in a background thread."""

    def __init__(self, corpus: Corpus, port: int = 0) -> None:
        self.corpus = corpus
        self.round = -1
        self._httpd = _Server((HOST, port), _Handler)
        self._httpd.owner = self
        self.set_round(0)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def set_round(self, round_: int) -> None:
        """Serve the pages of ``round_`` from now on (rendered before the switch)."""
        if round_ != self.round:
            self._httpd.current = _Pages(self.corpus.pages(round_))
            self.round = round_

    def manifest(self) -> dict[str, object]:
        """What a client needs to know: the paths, their sizes, which pages each round edits."""
        first = _Pages(self.corpus.pages(0)) if self.round != 0 else self._httpd.current
        return {
            "seed": self.corpus.seed,
            "paths": [spec.path for spec in self.corpus.specs],
            "bytes": [len(first.bodies[spec.path][0]) for spec in self.corpus.specs],
            "changed": {r: sorted(self.corpus.changed_in(r)) for r in self.corpus.changed_rounds},
        }

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main() -> None:
    """Serve a corpus until interrupted (or until stdin closes, with --until-eof)."""
    parser = argparse.ArgumentParser(description="Serve the benchmark corpus on 127.0.0.1.")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--changed", type=int, nargs="*", default=[2], help="changed rounds")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--until-eof", action="store_true", help="stop when stdin closes")
    args = parser.parse_args()
    corpus = Corpus(args.pages, seed=args.seed, changed_rounds=args.changed)
    server = CorpusServer(corpus, args.port)
    print(f"READY {server.port}", flush=True)
    print(f"serving {args.pages} pages on http://{HOST}:{server.port}/ (round 0)", file=sys.stderr)
    try:
        if args.until_eof:
            sys.stdin.read()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
