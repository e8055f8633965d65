"""Tabular: data files (CSV, TSV, JSON, and those inside a ZIP) into a version's blocks.

Transparency reports publish their numbers as data; read as rows, a change to the
Hong Kong row is reported as that row and the cells that changed ("Requests:
241 → 0"), like a row of an HTML table. This stage is pure: bytes in, blocks out.

How data becomes blocks:

- Every data row is a ``row`` block that knows its table's ``columns`` (the header)
  and its ``key``: the cells of the key columns (the watch's ``key:``, or the leading
  columns of the header whose cells hold no numbers, at least the first). Its path
  is the file's name inside a ZIP, then the key. Rows are sorted by key (stably), so
  a file that lists the same rows in another order is the same version, and the diff
  pairs a changed row with itself by its key.
- ``rows: {Country: [Hong Kong, Macau]}`` keeps only the rows whose cell in that
  column is one of the values (case and spacing aside); a jurisdiction id among the
  values (``HK``) accepts every name the catalog knows for it. Rows are filtered while
  they stream, so a file of millions of rows is held only as the rows kept.
- Cells keep their text exactly (runs of spaces become one, control characters go):
  a number is compared as written, never rounded, and a cell that looks like a
  spreadsheet formula (``=HYPERLINK(…)``) is only ever text.
- CSV: the encoding is the byte-order mark's, else the one fetch found for the
  response, else UTF-8 if the first 64 KB decode as UTF-8, else detected
  (charset-normalizer); the delimiter is the one of ``, ; TAB |`` that the header
  line holds most of (TSV: tab). Short rows are padded to the header's width, longer
  ones keep their extra cells (named ``#n``), blank rows are skipped.
- JSON: the watch's ``query:`` (JMESPath) selects the part to read. An array of
  objects is a table like CSV (columns: the objects' keys in order of appearance);
  any other value is walked, each scalar becoming a row ``name | value`` (or, for
  prose, a paragraph) with its key path as section path.
- ZIP: ``member:`` (a glob, matched against the full name and the base name) names
  the files read; without it, every ``.csv``, ``.tsv`` and ``.json`` member is. The
  members read may together inflate to the watch's size cap, by the sizes the archive
  declares: a zip bomb is refused as ``too_large`` before a byte is inflated. Each
  member is inflated as it is read, never whole, and no further than its declared
  size (an archive that understates it fails the member's CRC check).
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import IO

import charset_normalizer
import jmespath
from jmespath.exceptions import JMESPathError

from monitor.errors import DocumentTooLarge, ExtractError
from monitor.jurisdictions import catalog
from monitor.model import Block, Document, ExtractRules, Format
from monitor.text import UserPattern, compile_ignore

__all__ = ["tabulate"]

_SAMPLE = 64 * 1024  # bytes looked at for the encoding and the delimiter
_KEY_SAMPLE = 200  # rows looked at to infer the key columns
_DELIMITERS = (",", "\t", ";", "|")
_PROSE = 120  # a JSON string at least this long is prose, compared sentence by sentence
_MEMBER_FORMATS = {".csv": Format.CSV, ".tsv": Format.TSV, ".json": Format.JSON}
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NUMERIC = re.compile(r"[-+]?(?:\d[\d,. \u00a0']*)?\d(?:\s*[%\u2030])?")


def tabulate(
    body: bytes, fmt: Format, rules: ExtractRules, *, encoding: str | None, max_bytes: int
) -> Document:
    """A data response's blocks (see the module docstring); raises ExtractError, and
    DocumentTooLarge for a ZIP member past `max_bytes`."""
    shape = _Shape.of(rules)
    if fmt is Format.ZIP:
        blocks = _archive(body, shape, rules.member, max_bytes)
    else:
        blocks = _read(_Raw(io.BytesIO(body)), fmt, shape, (), encoding)
    if not blocks:
        raise ExtractError(f"no rows found{shape.describe()}")
    return tuple(blocks)


# --- what the watch asks for ---------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """The watch's data rules, compiled once: key columns, row filter, JSON query,
    ignore patterns."""

    key: tuple[str, ...]
    rows: tuple[tuple[str, frozenset[str]], ...]
    query: jmespath.parser.ParsedResult | None
    ignore: tuple[UserPattern, ...]
    wanted: tuple[tuple[str, tuple[str, ...]], ...] = ()  # `rows` as written

    @classmethod
    def of(cls, rules: ExtractRules) -> _Shape:
        ignore = compile_ignore(rules.ignore)  # RE2: linear time, like every extractor's
        try:
            query = jmespath.compile(rules.query) if rules.query else None
        except JMESPathError as exc:
            raise ExtractError(f"invalid query: {exc}") from exc
        rows = tuple((column, _accepted(values)) for column, values in rules.rows)
        return cls(rules.key, rows, query, ignore, rules.rows)

    def describe(self) -> str:
        """The `rows` filter, for a message saying that nothing passed it."""
        if not self.wanted:
            return ""
        wanted = "; ".join(f"{column}: {list(values)}" for column, values in self.wanted)
        return f" (rows: {wanted})"

    def cell(self, raw: object) -> str:
        """A cell's text as written: one space for runs of spaces, no control
        characters, the watch's ignore patterns applied."""
        text = " ".join(_CONTROL.sub("", str(raw)).split())
        for pattern in self.ignore:
            text = " ".join(pattern.sub("", text).split())
        return text


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@functools.lru_cache(maxsize=64)
def _accepted(values: tuple[str, ...]) -> frozenset[str]:
    """The cell texts a `rows` filter accepts: its values, and every name of a
    jurisdiction given by its id (HK: Hong Kong, Hong Kong SAR, 香港 …)."""
    places = catalog()
    names: set[str] = set()
    for value in values:
        place = places.get(value.strip())
        names.update(_fold(n) for n in (value, *(place.names if place else ())))
    return frozenset(names)


# --- tables --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """A header, with where its key and filter columns stand, and how cells are
    cleaned (the filter's cells first: a row filtered out costs little)."""

    columns: tuple[str, ...]
    key: tuple[int, ...]
    filters: tuple[tuple[int, frozenset[str]], ...]
    path: tuple[str, ...]
    clean: Callable[[object], str]

    def block(self, raw: Sequence[str]) -> Block | None:
        """The row block of some cells, or None when the row is blank or filtered out."""
        for i, values in self.filters:
            if i >= len(raw) or _fold(self.clean(raw[i])) not in values:
                return None
        cells = tuple(self.clean(cell) for cell in raw)
        if not any(cells):
            return None
        width = len(self.columns)
        if len(cells) < width:
            cells += ("",) * (width - len(cells))
        columns = self.columns + tuple(f"#{i + 1}" for i in range(width, len(cells)))
        key = tuple(cells[i] for i in self.key)
        return Block(
            "row", " | ".join(cells), (*self.path, *key), cells=cells, columns=columns, key=key
        )


def _header(raw: Sequence[str]) -> tuple[str, ...]:
    """Column names: empty ones by position, repeated ones numbered."""
    columns: list[str] = []
    for i, name in enumerate(raw):
        name = name or f"#{i + 1}"
        columns.append(name if name not in columns else f"{name} ({columns.count(name) + 1})")
    return tuple(columns)


def _position(columns: Sequence[str], name: str, what: str) -> int:
    folded = [_fold(c) for c in columns]
    try:
        return folded.index(_fold(name))
    except ValueError:
        raise ExtractError(f"{what} column {name!r} is not in the header {list(columns)}") from None


def _table(
    columns: tuple[str, ...],
    sample: Sequence[Sequence[str]],
    shape: _Shape,
    path: tuple[str, ...],
) -> _Table:
    if shape.key:
        key = tuple(_position(columns, name, "key") for name in shape.key)
    else:
        key = _inferred_key(len(columns), [[shape.cell(c) for c in row] for row in sample])
    filters = tuple((_position(columns, name, "rows"), values) for name, values in shape.rows)
    return _Table(columns, key, filters, path, shape.cell)


def _inferred_key(width: int, sample: Sequence[Sequence[str]]) -> tuple[int, ...]:
    """The leading columns with no number in the sample, at least the first one."""
    count = 0
    while count < width and not any(
        count < len(row) and _NUMERIC.fullmatch(row[count]) for row in sample
    ):
        count += 1
    return tuple(range(count if 0 < count < width else 1))


def _rows(table: _Table, cells: Iterable[Sequence[str]]) -> list[Block]:
    """The kept rows of a table as blocks, sorted by key (stable for equal keys)."""
    blocks = [block for row in cells if (block := table.block(row)) is not None]
    blocks.sort(key=lambda block: [_fold(part) for part in block.key])
    return blocks


def _tabulated(
    header: Sequence[str], rows: Iterator[Sequence[str]], shape: _Shape, path: tuple[str, ...]
) -> list[Block]:
    """A header and its rows: the key is inferred from the first rows, then they all
    stream through the filter."""
    sample = list(itertools.islice(rows, _KEY_SAMPLE))
    table = _table(_header([shape.cell(name) for name in header]), sample, shape, path)
    return _rows(table, itertools.chain(sample, rows))


# --- reading a file ------------------------------------------------------------------


def _read(
    stream: io.RawIOBase,
    fmt: Format | None,
    shape: _Shape,
    path: tuple[str, ...],
    encoding: str | None,
) -> list[Block]:
    """A file's blocks, decoded as it streams; `fmt` None: JSON if it starts like
    JSON, else CSV (a ZIP member without a known suffix)."""
    buffered = io.BufferedReader(stream, buffer_size=_SAMPLE)
    sample = buffered.peek(_SAMPLE)[:_SAMPLE]
    codec = _codec(sample, encoding)
    if fmt is None:
        fmt = Format.JSON if sample.lstrip()[:1] in (b"{", b"[") else Format.CSV
    text = io.TextIOWrapper(buffered, encoding=codec, errors="replace", newline="")
    if fmt is Format.JSON:
        return _json(text.read(), shape, path)
    return _csv(text, "\t" if fmt is Format.TSV else None, shape, path)


def _codec(sample: bytes, declared: str | None) -> str:
    """The text codec of a data file (see the module docstring)."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if sample.startswith(bom):
            return codec
    if declared:
        return "utf-8-sig" if codecs.lookup(declared).name == "utf-8" else declared
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not merely a character cut at the sample's end
            best = charset_normalizer.from_bytes(sample).best()
            return best.encoding if best else "cp1252"
    return "utf-8-sig"


def _csv(text: IO[str], delimiter: str | None, shape: _Shape, path: tuple[str, ...]) -> list[Block]:
    lead: list[str] = []
    head = text.readline()
    while head.isspace():  # blank lines before the header, which tells the delimiter
        lead.append(head)
        head = text.readline()
    lines = itertools.chain(lead, (head,), text)
    reader = csv.reader(lines, delimiter=delimiter or _delimiter(head))
    rows = _guarded(reader)
    header = next((row for row in rows if any(shape.cell(cell) for cell in row)), None)
    return [] if header is None else _tabulated(header, rows, shape, path)


def _guarded(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's rows; a malformed file is an ExtractError that says where."""
    line = 0
    try:
        for line, row in enumerate(reader, start=1):  # noqa: B007 (used after the loop)
            yield row
    except csv.Error as exc:
        raise ExtractError(f"unreadable CSV after row {line}: {exc}") from exc


def _delimiter(header: str) -> str:
    counts = [(header.count(d), -i, d) for i, d in enumerate(_DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] else ","


# --- JSON ----------------------------------------------------------------------------


def _json(text: str, shape: _Shape, path: tuple[str, ...]) -> list[Block]:
    try:
        data = json.loads(text.lstrip("\ufeff"), parse_float=Decimal)
    except ValueError as exc:
        raise ExtractError(f"unreadable JSON: {exc}") from exc
    if shape.query is not None:
        data = shape.query.search(data)
        if data is None or data == []:
            raise ExtractError(f"query {shape.query.expression!r} matched nothing")
    return _walk(data, shape, path)


def _walk(value: object, shape: _Shape, path: tuple[str, ...]) -> list[Block]:
    """The blocks of a JSON value at a key path."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return _objects(value, shape, path)
    if isinstance(value, dict):
        return [
            b for name, item in value.items() for b in _named(shape.cell(name), item, shape, path)
        ]
    if isinstance(value, list):
        return [b for item in value for b in _item(item, shape, path)]
    text = shape.cell(_scalar(value))
    return [Block("paragraph", text, path)] if text else []


def _named(name: str, value: object, shape: _Shape, path: tuple[str, ...]) -> list[Block]:
    """A named value: a nested structure is a section; a scalar a `name | value` row
    (prose a paragraph), so that its change is reported as that name's value."""
    if isinstance(value, dict | list):
        return _walk(value, shape, (*path, name))
    text = shape.cell(_scalar(value))
    if len(text) >= _PROSE:
        return [Block("paragraph", text, (*path, name))]
    cells = (name, text)
    return [
        Block(
            "row",
            " | ".join(cells),
            path,
            cells=cells,
            columns=("name", cells[0]),
            key=(*path, cells[0]),
        )
    ]


def _item(value: object, shape: _Shape, path: tuple[str, ...]) -> list[Block]:
    if isinstance(value, dict | list):
        return _walk(value, shape, path)
    text = shape.cell(_scalar(value))
    return [Block("item", text, path)] if text else []


def _objects(items: list[dict[str, object]], shape: _Shape, path: tuple[str, ...]) -> list[Block]:
    """An array of objects as a table: one row per object, its keys the columns."""
    names = list(dict.fromkeys(str(name) for item in items for name in item))
    rows = ([_scalar(item.get(name)) for name in names] for item in items)
    return _tabulated(names, rows, shape, path)


def _scalar(value: object) -> str:
    """A JSON value as a cell: strings and numbers as written, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# --- ZIP -----------------------------------------------------------------------------


def _archive(body: bytes, shape: _Shape, member: str | None, max_bytes: int) -> list[Block]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractError(f"unreadable ZIP archive: {exc}") from exc
    with archive:
        chosen = _members(archive, member)
        _admit(chosen, max_bytes)
        return [b for info in chosen for b in _member_blocks(archive, info, shape)]


def _members(archive: zipfile.ZipFile, pattern: str | None) -> list[zipfile.ZipInfo]:
    files = [info for info in archive.infolist() if not info.is_dir()]
    if pattern:
        chosen = [
            i for i in files if fnmatchcase(i.filename, pattern) or fnmatchcase(_base(i), pattern)
        ]
    else:
        chosen = [i for i in files if _suffix(i.filename) in _MEMBER_FORMATS]
    if not chosen:
        names = ", ".join(i.filename for i in files[:20]) + (" …" if len(files) > 20 else "")
        wanted = f"no member matches {pattern!r}" if pattern else "no CSV, TSV or JSON member"
        raise ExtractError(f"{wanted}; the archive holds: {names or 'nothing'}")
    return sorted(chosen, key=lambda info: info.filename)


def _admit(members: Sequence[zipfile.ZipInfo], max_bytes: int) -> None:
    """The members to read may inflate to `max_bytes` together, by the sizes the
    archive declares; zipfile inflates a member no further than its declared size (an
    archive that understates one fails its CRC check), so this bounds what is read."""
    total = 0
    for info in members:
        total += info.file_size
        if total > max_bytes:
            others = " (with the members before it)" if total > info.file_size else ""
            raise DocumentTooLarge(
                f"ZIP member {info.filename!r} inflates to {info.file_size} bytes{others}, "
                f"past the {max_bytes}-byte cap (max_size)"
            )


def _base(info: zipfile.ZipInfo) -> str:
    return info.filename.rsplit("/", 1)[-1]


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > name.rfind("/") else ""


def _member_blocks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shape: _Shape) -> list[Block]:
    """One member's blocks, inflated as they are read; a corrupt member (a bad CRC,
    an unsupported compression, a password) is an ExtractError."""
    fmt = _MEMBER_FORMATS.get(_suffix(info.filename))
    try:
        with archive.open(info) as raw:
            return _read(_Raw(raw), fmt, shape, (shape.cell(_base(info)),), None)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError) as exc:
        raise ExtractError(f"unreadable ZIP member {info.filename!r}: {exc}") from exc


class _Raw(io.RawIOBase):
    """Any binary stream as a raw one, for io.BufferedReader."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
