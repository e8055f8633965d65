"""Formats: how a response is read, decided once from its content type, its first
bytes and the watch's `format:`.

Fetch asks it which responses to accept (anything it cannot name is `wrong_type`),
and `pipeline.read` asks it which extractor reads a snapshot: both see the same rule.

- Magic bytes win: a body that starts ``%PDF-`` is a PDF and one that starts ``PK``
  with a ZIP header is a ZIP, whatever the server says (a PDF served as text/html is
  read as a PDF).
- Otherwise the watch's ``format:`` wins (``csv`` reads a ``text/plain`` or
  ``application/octet-stream`` body as CSV); a watch that says ``zip`` or ``pdf``
  about a body without their magic bytes gets a refusal, not a misreading.
- Otherwise (``auto``) the content type decides; a generic one (``text/plain``,
  ``application/octet-stream``, none) is named by the URL's suffix (``.csv``,
  ``.tsv``, ``.json``, ``.md``), as raw file hosts serve every file as text/plain.

Pure: no I/O.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from monitor.model import Format

__all__ = ["BINARY", "SNIFF_BYTES", "decide", "may_read", "refusal"]

SNIFF_BYTES = 1024  # where magic bytes are looked for
BINARY = frozenset({Format.ZIP, Format.PDF})  # read from bytes, never decoded as text

_TYPES = {
    "text/html": Format.HTML,
    "application/xhtml+xml": Format.HTML,
    "text/plain": Format.TEXT,
    "text/markdown": Format.MARKDOWN,
    "text/x-markdown": Format.MARKDOWN,
    "text/csv": Format.CSV,
    "text/x-csv": Format.CSV,
    "application/csv": Format.CSV,
    "text/comma-separated-values": Format.CSV,
    "text/tab-separated-values": Format.TSV,
    "application/json": Format.JSON,
    "text/json": Format.JSON,
    "application/zip": Format.ZIP,
    "application/x-zip-compressed": Format.ZIP,
    "application/x-zip": Format.ZIP,
    "application/pdf": Format.PDF,
    "application/x-pdf": Format.PDF,
}
_GENERIC = frozenset({"", "text/plain", "application/octet-stream", "binary/octet-stream"})
_SUFFIXES = {
    ".csv": Format.CSV,
    ".tsv": Format.TSV,
    ".tab": Format.TSV,
    ".json": Format.JSON,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".txt": Format.TEXT,
    ".zip": Format.ZIP,
    ".pdf": Format.PDF,
}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a member's header, or an empty archive


def mime(content_type: str) -> str:
    """The media type of a Content-Type header, lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def may_read(content_type: str, declared: Format = Format.AUTO) -> bool:
    """Whether a response of this type is worth reading at all (images, video and
    unknown types are refused before their body is downloaded)."""
    media = mime(content_type)
    return declared is not Format.AUTO or media in _TYPES or media in _GENERIC or _is_json(media)


def decide(
    content_type: str, head: bytes, *, declared: Format = Format.AUTO, url: str = ""
) -> Format | None:
    """The format a body is read as (see the module docstring), or None: refused."""
    magic = _magic(head)
    if magic is not None:
        return magic
    if declared in BINARY:
        return None
    if declared is not Format.AUTO:
        return declared
    media = mime(content_type)
    named = Format.JSON if _is_json(media) else _TYPES.get(media)
    if media in _GENERIC:
        named = _by_suffix(url) or named or (Format.HTML if not media else None)
    return None if named in BINARY else named


def refusal(content_type: str, declared: Format = Format.AUTO) -> str:
    """Why `decide` refused a body: what a health alert says."""
    media = mime(content_type) or "none"
    if declared in BINARY:
        return f"the body is no {declared.upper()} (format: {declared}; content type {media})"
    if _TYPES.get(media) in BINARY:
        return f"content type {media}, but the body is no {_TYPES[media].upper()}"
    return f"content type {media}: not a format monitor reads (see `format:` in the README)"


def _magic(head: bytes) -> Format | None:
    if head.lstrip()[:5] == b"%PDF-":
        return Format.PDF
    if head.startswith(_ZIP_MAGIC):
        return Format.ZIP
    return None


def _is_json(media: str) -> bool:
    return media.endswith("+json")


def _by_suffix(url: str) -> Format | None:
    path = urlsplit(url).path.lower()
    return next((fmt for suffix, fmt in _SUFFIXES.items() if path.endswith(suffix)), None)
