"""How a response is read: formats.decide, which fetch and pipeline.read both ask."""

from __future__ import annotations

import pytest

from monitor.formats import decide, may_read
from monitor.model import Format

PDF = b"%PDF-1.7\n"
ZIP = b"PK\x03\x04\x14\x00"
CSV = b"Country,Requests\n"


@pytest.mark.parametrize(
    ("content_type", "head", "declared", "url", "expected"),
    [
        ("text/html; charset=utf-8", b"<html>", Format.AUTO, "", Format.HTML),
        ("text/html", PDF, Format.AUTO, "", Format.PDF),  # magic bytes win
        ("text/csv", ZIP, Format.CSV, "", Format.ZIP),  # even over the watch's format
        ("application/octet-stream", ZIP, Format.AUTO, "", Format.ZIP),
        ("text/plain", CSV, Format.AUTO, "https://e.org/r/data.CSV?x=1", Format.CSV),
        ("text/plain", b"# Notices", Format.AUTO, "https://r.e.org/cn/n.md", Format.MARKDOWN),
        ("text/plain", b"Hello", Format.AUTO, "https://e.org/", Format.TEXT),
        ("application/octet-stream", CSV, Format.TSV, "", Format.TSV),
        ("application/octet-stream", CSV, Format.AUTO, "", None),  # say `format:`
        ("application/problem+json", b"{}", Format.AUTO, "", Format.JSON),
        ("", b"<html>", Format.AUTO, "", Format.HTML),
        ("text/html", b"<html>", Format.ZIP, "", None),  # an error page, not the archive
        ("application/zip", b"<html>", Format.AUTO, "", None),
        ("image/png", b"\x89PNG", Format.AUTO, "", None),
    ],
)  # fmt: skip
def test_decide(
    content_type: str, head: bytes, declared: Format, url: str, expected: Format | None
) -> None:
    assert decide(content_type, head, declared=declared, url=url) is expected


def test_images_are_not_worth_downloading_unless_the_watch_says_otherwise() -> None:
    assert not may_read("image/png")
    assert may_read("image/png", Format.CSV)
    assert may_read("application/octet-stream") and may_read("")
