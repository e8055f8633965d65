"""The floor: the least work a page monitor on monitor's own stack does per round.

A contestant for `bench.run --floor`, run like the others as a subprocess on its own
store. It uses what monitor uses (httpx with asyncio, lxml, zstandard, SQLite) and
does only what any tool with monitor's promises must do for each page:

- a conditional GET (`If-None-Match` with the ETag it stored), ten at a time;
- on 304: nothing but the check's row;
- on 200: the SHA-256 of the raw body; lxml's parse of it, the text of `<main>`
  with its whitespace collapsed, and that text's SHA-256 against the stored one;
- the raw body kept: its first body whole with zstd (level 3), each later one
  compressed against that first body as a dictionary; the text kept when it is new
  or changed;
- one row per check, all in one transaction at the end of the run.

It has no watchlist validation (the URLs come as a JSON list), no politeness, no
redirects or network policy, no block structure, no jurisdiction matching, no alerts
and no crash safety beyond SQLite's: whatever this costs, monitor cannot cost less on
the same libraries. `bench.run --floor` prints its share of urlwatch's CPU beside
monitor's, against the same goals.

    python -m bench.floor URLS_JSON STORE_DB    # JSON lines like `monitor check --json`
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import sys
from dataclasses import dataclass

import httpx
import lxml.etree
import zstandard

CONCURRENCY = 10
LEVEL = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS page (id INTEGER PRIMARY KEY, etag TEXT, body_sha TEXT,
    text_sha TEXT, keyframe TEXT);
CREATE TABLE IF NOT EXISTS body (sha TEXT PRIMARY KEY, base TEXT, data BLOB);
CREATE TABLE IF NOT EXISTS version (id INTEGER PRIMARY KEY, page INTEGER, text TEXT);
CREATE TABLE IF NOT EXISTS checks (id INTEGER PRIMARY KEY, page INTEGER, outcome TEXT);
"""
Write = tuple[str, tuple[object, ...]]


@dataclass
class Page:
    """What the store knows of one page: its ETag, its last body's and text's hashes,
    and its keyframe (its first body, kept whole, which its later bodies are
    compressed against)."""

    etag: str | None = None
    body_sha: str | None = None
    text_sha: str | None = None
    keyframe: str | None = None


def main_text(body: bytes) -> str:
    root = lxml.etree.fromstring(body, PARSER)
    main = root.find(".//main")
    whole = main if main is not None else root
    text = lxml.etree.tostring(whole, method="text", encoding="unicode", with_tail=False)
    return " ".join(text.split())


PARSER = lxml.etree.HTMLParser()  # plain elements: lxml.html's classes cost a lookup each


def outcome(
    db: sqlite3.Connection, index: int, page: Page, response: httpx.Response, writes: list[Write]
) -> str:
    """The page's outcome; what to write for it is appended to `writes`."""
    if response.status_code == 304:
        return "not_modified"
    body = response.content
    body_sha = hashlib.sha256(body).hexdigest()
    verdict = "unchanged"
    if body_sha != page.body_sha:
        text = main_text(body)
        text_sha = hashlib.sha256(text.encode()).hexdigest()
        if text_sha != page.text_sha:
            verdict = "new" if page.text_sha is None else "changed"
            writes.append(("INSERT INTO version (page, text) VALUES (?, ?)", (index, text)))
            page.text_sha = text_sha
        writes.append(
            ("INSERT OR IGNORE INTO body VALUES (?, ?, ?)", _packed(db, page, body, body_sha))
        )
        page.keyframe = page.keyframe or body_sha
    row = (index, response.headers.get("etag"), body_sha, page.text_sha, page.keyframe)
    writes.append(("INSERT OR REPLACE INTO page VALUES (?, ?, ?, ?, ?)", row))
    return verdict


def _packed(db: sqlite3.Connection, page: Page, body: bytes, sha: str) -> tuple[object, ...]:
    if page.keyframe is None:
        return sha, None, zstandard.ZstdCompressor(level=LEVEL).compress(body)
    (whole,) = db.execute("SELECT data FROM body WHERE sha = ?", (page.keyframe,)).fetchone()
    base = zstandard.ZstdCompressionDict(
        zstandard.decompress(whole), dict_type=zstandard.DICT_TYPE_RAWCONTENT
    )
    return sha, page.keyframe, zstandard.ZstdCompressor(level=LEVEL, dict_data=base).compress(body)


async def check_all(db: sqlite3.Connection, urls: list[str]) -> list[Write]:
    pages = [Page() for _ in urls]
    for index, *known in db.execute("SELECT * FROM page"):
        pages[index] = Page(*known)
    writes: list[Write] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(client: httpx.AsyncClient, index: int) -> None:
        page = pages[index]
        headers = {"If-None-Match": page.etag} if page.etag else {}
        async with gate:
            response = await client.get(urls[index], headers=headers)
        verdict = outcome(db, index, page, response, writes)
        writes.append(("INSERT INTO checks (page, outcome) VALUES (?, ?)", (index, verdict)))
        line = {"type": "check", "watch": f"page-{index:04d}", "outcome": verdict}
        print(json.dumps(line), flush=True)

    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        await asyncio.gather(*(one(client, index) for index in range(len(urls))))
    return writes


def run(urls_path: str, db_path: str) -> None:
    with open(urls_path, encoding="utf-8") as file:
        urls: list[str] = json.load(file)
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    writes = asyncio.run(check_all(db, urls))
    with db:
        for statement, values in writes:
            db.execute(statement, values)
    db.close()


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
