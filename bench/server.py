"""A local corpus server: the pages of the current round, from memory, on 127.0.0.1.

Every page of a round is rendered and gzip-compressed when the round is switched, so
serving costs the tools under test nothing but the transfer, and a page's bytes stay
the same for the whole round. Each response carries a strong ETag for the exact bytes
served (the SHA-256 of the page, with ``-gzip`` for the gzipped representation); a
request whose ``If-None-Match`` names it gets 304 Not Modified, no body. No
Last-Modified, so ``If-Modified-Since`` is ignored. Clients that accept gzip get gzip.
Each server counts the requests it answered, the conditional ones and its 304s.

In process::

    server = CorpusServer(corpus)          # listens on 127.0.0.1, a free port
    server.set_round(1)
    ...
    server.close()

Standalone (as the benchmark runs it, so that its memory is not counted in the
tools' peak RSS), it prints ``READY <port>`` once round 0 is served, switches rounds
on ``POST /_control/round/<n>`` (answering when the new round is served), describes
the corpus on ``GET /_control/manifest`` and gives its counters so far on
``GET /_control/counts``::

    python -m bench.server --pages 100 --changed 2 --noise 1 --share 0.14 --port 8765
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import threading
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.corpus import DEFAULT_SEED, Corpus

HOST = "127.0.0.1"
_CONTROL = re.compile(r"^/_control/round/(\d+)$")


class _Pages:
    """The bodies of one round: path -> (plain, gzip), and each one's strong ETag."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.bodies = {
            path: (body, gzip.compress(body, compresslevel=6, mtime=0))
            for path, body in pages.items()
        }
        self.etags = {path: hashlib.sha256(body).hexdigest()[:32] for path, body in pages.items()}


class Counts:
    """What a server answered: requests, conditional ones (If-None-Match), 304s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, *, conditional: bool, not_modified: bool) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._counts["conditional"] += conditional
            self._counts["not_modified"] += not_modified

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {k: self._counts[k] for k in ("requests", "conditional", "not_modified")}


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison of If-None-Match with the representation's ETag."""
    tags = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return any(t in ("*", etag) for t in tags)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    server: _Server

    def do_GET(self) -> None:
        if self.path.startswith("/_control/"):
            self._control()
            return
        pages, path = self.server.current, self.path.split("?", 1)[0]
        bodies = pages.bodies.get(path)
        if bodies is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        accepts_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        etag = f'"{pages.etags[path]}-gzip"' if accepts_gzip else f'"{pages.etags[path]}"'
        condition = self.headers.get("If-None-Match")
        fresh = condition is not None and _matches(condition, etag)
        self.server.counts.add(conditional=condition is not None, not_modified=fresh)
        if fresh:
            self._send(HTTPStatus.NOT_MODIFIED, b"", "", etag=etag)
            return
        body = bodies[1] if accepts_gzip else bodies[0]
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", etag, gzipped=accepts_gzip)

    def _control(self) -> None:
        if self.path == "/_control/manifest":
            answer: object = self.server.owner.manifest()
        elif self.path == "/_control/counts":
            answer = self.server.counts.snapshot()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        self._send(HTTPStatus.OK, json.dumps(answer).encode(), "application/json")

    def do_POST(self) -> None:
        match = _CONTROL.match(self.path)
        if match is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        self.server.owner.set_round(int(match[1]))
        self._send(HTTPStatus.OK, f"round {match[1]}\n".encode(), "text/plain")

    def _send(
        self, status: int, body: bytes, content_type: str, etag: str = "", *, gzipped: bool = False
    ) -> None:
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Vary", "Accept-Encoding")
        if status == HTTPStatus.NOT_MODIFIED:  # no body, no Content-Length
            self.end_headers()
            return
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a thousand requests a round would drown the benchmark's output."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    current: _Pages
    owner: CorpusServer
    counts: Counts

    def server_activate(self) -> None:
        self.counts = Counts()
        super().server_activate()


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
        """What a client needs to know: the paths, their sizes, which pages each round
        edits, and how many pages each round serves with new bytes (the rest are the
        round before's, byte for byte: a conditional request for them gets 304)."""
        first = _Pages(self.corpus.pages(0)) if self.round != 0 else self._httpd.current
        corpus = self.corpus
        last = max([0, *corpus.changed_rounds, *(corpus.noise_rounds or ())]) + 1
        return {
            "seed": corpus.seed,
            "paths": [spec.path for spec in corpus.specs],
            "bytes": [len(first.bodies[spec.path][0]) for spec in corpus.specs],
            "changed": {r: sorted(corpus.changed_in(r)) for r in corpus.changed_rounds},
            "touched": {r: len(corpus.touched_in(r)) for r in range(last + 1)},
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
    parser.add_argument("--share", type=float, default=0.2, help="pages a changed round edits")
    parser.add_argument(
        "--noise", type=int, nargs="*", default=None, help="noise rounds (default: every round)"
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--until-eof", action="store_true", help="stop when stdin closes")
    args = parser.parse_args()
    corpus = Corpus(
        args.pages,
        seed=args.seed,
        changed_rounds=args.changed,
        share=args.share,
        noise_rounds=args.noise,
    )
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
