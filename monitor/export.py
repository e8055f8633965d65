"""Evidence export: a watch's snapshots and versions as a WARC/1.1 file and a manifest.

The proof of what a page said lives in the store, compressed in monitor's own way.
`export` writes it out in the web archivists' standard format (ISO 28500, read by
pywb, ReplayWeb.page and warcio), so it can be handed to someone without monitor:

    warcinfo   the watch, monitor's version, the command, and what was reconstructed
    response   per HTTP snapshot: status line, headers as received, the raw body as stored
    request    beside it: the request monitor sends for this watch (reconstructed)
    resource   per rendered snapshot: the DOM headless Chromium built
    metadata   per version: its extracted blocks with section paths and the rules that
               extracted them; per version with findings: the findings and its alerts
               as JSON; each `WARC-Refers-To` its snapshot's record

Beside `FILE.warc[.gz]`, `FILE.warc[.gz].manifest.json` lists every record with its
offset, length and SHA-256 in the file, and the SHA-256 of the whole file.
`verify` checks all of it and re-extracts each version's text from its raw body.

Memory stays bounded: the store is read one snapshot (one raw body) and one version
at a time, records are written as they are made, and so are the manifest's lines.
"""

from __future__ import annotations

import base64
import hashlib
import http
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

from monitor import __version__
from monitor.config import Watch
from monitor.errors import ExtractError, StoreError
from monitor.fetch import make_client
from monitor.messages import Message
from monitor.model import Block, ExtractRules, Format, Snapshot, document_hash, finding_data
from monitor.pipeline import numbered, read
from monitor.store import Store
from monitor.store.evidence import SnapshotRef, VersionRef

FORMAT = "monitor-evidence/1"
MANIFEST_SUFFIX = ".manifest.json"
_CHUNK = 1 << 20

NOTES = (
    "request records are reconstructed from the watch's configuration at export time "
    "(monitor does not store the request it sent): the headers its HTTP client sends for "
    "this watch, without conditional-request validators or redirect hops",
    "status lines are rebuilt from the stored status code: HTTP/1.1 and the standard reason phrase",
    "response payloads are the bodies exactly as stored, decoded from any Content-Encoding "
    "and Transfer-Encoding; the headers that described those encodings are kept as "
    "X-Archive-Orig-<name>",
    "rendered snapshots are resource records of the DOM headless Chromium built; the main "
    "document's status and headers are in the version's metadata record; the browser's "
    "own requests are not recorded",
    "a version whose rules differ from the watch's rules at export time has rules: null "
    "(only their digest is stored) and cannot be re-extracted by verify-export",
)
_FRAMING = ("content-encoding", "transfer-encoding", "content-length")


# --- what to export ---------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which of a watch's snapshots to export; all of them when nothing is given."""

    version: int | None = None
    first: int | None = None  # --from
    last: int | None = None  # --to
    since: datetime | None = None
    alert: int | None = None


@dataclass(frozen=True)
class Plan:
    """The snapshots to write (references only) and the versions they carry."""

    watch_id: str
    snapshots: tuple[SnapshotRef, ...]
    versions: dict[int, VersionRef]  # by snapshot id


class NotStored(LookupError):
    """The selection names something the store does not hold (a usage error)."""


def plan(store: Store, watch_id: str, selection: Selection) -> Plan:
    """What `export` writes for `selection`; NotStored when it names nothing stored."""
    snapshots = store.snapshot_refs(watch_id)
    if not snapshots:
        raise NotStored(f"nothing stored for {watch_id!r}: the store has never checked it")
    versions = store.version_refs(watch_id)
    picked = _pick(snapshots, versions, watch_id, _as_range(store, watch_id, selection))
    if selection.since is not None:
        picked = [s for s in picked if s.fetched_at >= selection.since]
    if not picked:
        raise NotStored(f"no snapshot of {watch_id!r} matches the selection")
    ids = {s.id for s in picked}
    return Plan(
        watch_id, tuple(picked), {v.snapshot_id: v for v in versions if v.snapshot_id in ids}
    )


def _as_range(store: Store, watch_id: str, selection: Selection) -> tuple[int | None, int | None]:
    """The (first, last) version numbers a selection spans; None: open at that end."""
    if selection.version is not None:
        return selection.version, selection.version
    if selection.alert is None:
        return selection.first, selection.last
    try:
        row = store.alert(selection.alert)
    except StoreError:
        raise NotStored(f"no alert {selection.alert} (see monitor alerts)") from None
    if row.watch_id != watch_id:
        raise NotStored(f"alert {row.id} is about {row.watch_id!r}, not {watch_id!r}")
    before, after = row.versions
    if after is None:
        raise NotStored(f"alert {row.id} is a {row.kind} alert: it has no version to export")
    return before or after, after


def _pick(
    snapshots: list[SnapshotRef],
    versions: list[VersionRef],
    watch_id: str,
    span: tuple[int | None, int | None],
) -> list[SnapshotRef]:
    """The snapshots from the first version's through the last version's, inclusive:
    the checks in between show how long each text stood."""
    first, last = span
    if first is None and last is None:
        return snapshots
    low = _numbered(versions, watch_id, first).snapshot_id if first is not None else 0
    high = _numbered(versions, watch_id, last).snapshot_id if last is not None else snapshots[-1].id
    if low > high:
        raise NotStored(f"version {first} is newer than version {last}")
    return [s for s in snapshots if low <= s.id <= high]


def _numbered(versions: list[VersionRef], watch_id: str, number: int) -> VersionRef:
    """A version by its number, as `monitor diff` and `show` find it; NotStored if none."""
    try:
        return numbered(versions, watch_id, number)
    except LookupError as exc:
        raise NotStored(str(exc)) from None


# --- writing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """What one export wrote."""

    path: Path
    manifest: Path
    records: int
    snapshots: int
    versions: int
    size: int
    sha256: str


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def export(store: Store, chosen: Plan, watch: Watch | None, out: Path, *, command: str) -> Exported:
    """Write the WARC file and its manifest; each appears whole or not at all."""
    parts = out.with_name(out.name + ".part"), manifest_path(out).with_name(out.name + ".mpart")
    try:
        with parts[0].open("wb") as raw, parts[1].open("w", encoding="utf-8") as man:
            archive = _Archive(raw, man, gzip=out.name.endswith(".gz"))
            archive.begin(_head(chosen.watch_id, watch, out, command))
            for ref in chosen.snapshots:
                archive.snapshot(store, ref, chosen.versions.get(ref.id), watch)
            done = archive.end()
        os.replace(parts[0], out)
        os.replace(parts[1], manifest_path(out))
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return Exported(out, manifest_path(out), *done, len(chosen.versions), *archive.sink.total())


def _head(watch_id: str, watch: Watch | None, out: Path, command: str) -> dict[str, Any]:
    about: dict[str, Any] = {"id": watch_id}
    if watch is not None:
        about |= {"url": watch.url, "name": watch.name, "platform": watch.platform}
    else:
        about["note"] = "not in the watchlist at export time: no request records, no rules"
    return {
        "format": FORMAT,
        "software": f"monitor {__version__}",
        "created": datetime.now(UTC).isoformat(),
        "command": command,
        "warc": out.name,
        "watch": about,
        "notes": list(NOTES),
    }


class _Sink:
    """The output file, hashing every byte and each record's bytes on the way."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.size = raw, 0
        self.whole, self.part = hashlib.sha256(), hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.whole.update(data)
        self.part.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def begin(self) -> int:
        self.part = hashlib.sha256()
        return self.size

    def total(self) -> tuple[int, str]:
        return self.size, self.whole.hexdigest()


class _Writer(WARCWriter):  # type: ignore[misc]  # warcio has no type hints
    """warcio's writer with SHA-256 digests, so the response's payload digest is the
    snapshot's own hash (in base32, as WARC digests are written)."""

    @staticmethod
    def _create_digester() -> Digester:
        return Digester("sha256")


class _Archive:
    """Records into the sink, and a manifest line for each."""

    def __init__(self, raw: IO[bytes], manifest: IO[str], *, gzip: bool) -> None:
        self.sink = _Sink(raw)
        self.writer = _Writer(self.sink, gzip=gzip, warc_version="1.1")
        self.manifest = manifest
        self.records = self.snapshots = 0

    def begin(self, head: dict[str, Any]) -> None:
        text = json.dumps(head, ensure_ascii=False, indent=1)
        self.manifest.write(text[: text.rindex("}")].rstrip() + ',\n "records": [')
        info = {
            "software": head["software"],
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
            "warc-format/warc-1.1/",
            "description": f"evidence export of the watch {head['watch']['id']}",
            "command": head["command"],
            "monitor-watch": json.dumps(head["watch"], ensure_ascii=False),
            **{f"monitor-note-{i}": note for i, note in enumerate(head["notes"], 1)},
        }
        self._write(self.writer.create_warcinfo_record(head["warc"], info), {})

    def snapshot(
        self, store: Store, ref: SnapshotRef, version: VersionRef | None, watch: Watch | None
    ) -> None:
        snap = store.snapshot(ref.id)
        about = {"snapshot_sha256": snap.sha256} | ({"version": version.number} if version else {})
        target = self._response(snap, about, watch)
        self.snapshots += 1
        if version is not None:
            self._version(store, version, snap, target, watch)

    def _response(self, snap: Snapshot, about: dict[str, Any], watch: Watch | None) -> str:
        """The snapshot's record(s); returns the id of the one holding the body."""
        date = _warc_date(snap.fetched_at)
        if snap.rendered:
            record = self.writer.create_warc_record(
                snap.final_url,
                "resource",
                payload=io.BytesIO(snap.body),
                length=len(snap.body),
                warc_content_type=snap.content_type or "text/html",
                warc_headers_dict={"WARC-Date": date},
            )
            return self._write(record, about)
        response = self.writer.create_warc_record(
            snap.final_url,
            "response",
            payload=io.BytesIO(snap.body),
            length=len(snap.body),
            warc_headers_dict={"WARC-Date": date},
            http_headers=_response_head(snap),
        )
        target = self._write(response, about)
        if watch is not None:
            self._write(_request(self.writer, watch, snap.final_url, date, target), about)
        return target

    def _version(
        self,
        store: Store,
        ref: VersionRef,
        snap: Snapshot,
        target: str,
        watch: Watch | None,
    ) -> None:
        version = store.version(ref.id)
        rules = watch.rules if watch is not None else None
        data = {
            "type": "version",
            "watch": version.watch_id,
            "version": version.number,
            "kind": str(version.kind),
            "recorded": version.created_at.isoformat(),
            "snapshot": _snapshot_json(snap),
            "rules_hash": version.rules_hash,
            "rules": asdict(rules) if rules and rules.digest() == version.rules_hash else None,
            "doc_hash": version.doc_hash,
            "blocks": json.loads(version.document_json),
        }
        about = {"version": version.number, "snapshot_sha256": snap.sha256}
        self._metadata(version.created_at, target, data, about)
        findings = store.findings(version_id=ref.id, limit=100_000)
        alerts = store.version_alerts(ref.id)
        if not findings and not alerts:
            return
        data = {
            "type": "findings",
            "watch": version.watch_id,
            "version": version.number,
            "findings": [finding_data(f.finding) for f in findings],
            "alerts": [_alert_json(a) for a in alerts],
        }
        self._metadata(version.created_at, target, data, about)

    def _metadata(
        self, at: datetime, target: str, data: dict[str, Any], about: dict[str, Any]
    ) -> None:
        """A metadata record about a snapshot's record. Its URI is monitor's own
        (`urn:monitor:version:WATCH:N`), never the page's: replay tools (pywb) would
        otherwise serve the JSON as the page."""
        body = json.dumps(data, ensure_ascii=False, indent=1).encode()
        record = self.writer.create_warc_record(
            f"urn:monitor:{data['type']}:{data['watch']}:{data['version']}",
            "metadata",
            payload=io.BytesIO(body),
            length=len(body),
            warc_content_type="application/json",
            warc_headers_dict={"WARC-Date": _warc_date(at), "WARC-Refers-To": target},
        )
        self._write(record, about | {"content": data["type"]})

    def _write(self, record: Any, about: dict[str, Any]) -> str:
        offset = self.sink.begin()
        self.writer.write_record(record)
        headers = record.rec_headers
        line = {
            "offset": offset,
            "length": self.sink.size - offset,
            "sha256": self.sink.part.hexdigest(),
            "type": headers.get_header("WARC-Type"),
            "id": headers.get_header("WARC-Record-ID"),
            "uri": headers.get_header("WARC-Target-URI"),
            "date": headers.get_header("WARC-Date"),
            "block_sha256": _hex(headers.get_header("WARC-Block-Digest")),
            **about,
        }
        if payload := headers.get_header("WARC-Payload-Digest"):
            line["payload_sha256"] = _hex(payload)
        separator = "\n  " if self.records == 0 else ",\n  "
        self.manifest.write(separator + json.dumps(line, ensure_ascii=False))
        self.records += 1
        return str(line["id"])

    def end(self) -> tuple[int, int]:
        size, sha = self.sink.total()
        tail = json.dumps({"size": size, "sha256": sha})
        self.manifest.write(f'\n ],\n "warc_file": {tail}\n}}\n')
        return self.records, self.snapshots


def _warc_date(at: datetime) -> str:
    naive = at.astimezone(UTC).replace(tzinfo=None)
    return str(datetime_to_iso_date(naive, use_micros=True))


def _hex(digest: str | None) -> str | None:
    """`sha256:BASE32` (a WARC digest) as hex, as sha256sum prints it."""
    if not digest:
        return None
    algorithm, _, value = digest.partition(":")
    return base64.b32decode(value).hex() if algorithm == "sha256" else digest


def _response_head(snap: Snapshot) -> StatusAndHeaders:
    """The status line and the headers as received; those describing a transfer or
    content encoding the stored (decoded) body no longer has are renamed, not dropped."""
    encoded = any(
        k == "transfer-encoding" or (k == "content-encoding" and v.strip().lower() != "identity")
        for k, v in snap.headers
    )
    headers = [
        (f"x-archive-orig-{k}" if encoded and k.lower() in _FRAMING else k, v)
        for k, v in snap.headers
    ]
    return StatusAndHeaders(f"{snap.status} {_phrase(snap.status)}", headers, protocol="HTTP/1.1")


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _request(writer: _Writer, watch: Watch, url: str, date: str, response_id: str) -> Any:
    """The GET monitor's HTTP client sends for this watch, as httpx builds it."""
    built = make_client().build_request("GET", url, headers=watch.headers)
    target = built.url.raw_path.decode("ascii")
    head = StatusAndHeaders(
        f"GET {target} HTTP/1.1",
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in built.headers.raw],
        is_http_request=True,
    )
    return writer.create_warc_record(
        url,
        "request",
        http_headers=head,
        warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": response_id},
    )


def _snapshot_json(snap: Snapshot) -> dict[str, Any]:
    return {
        "sha256": snap.sha256,
        "url": snap.url,
        "final_url": snap.final_url,
        "status": snap.status,
        "fetched_at": snap.fetched_at.isoformat(),
        "encoding": snap.encoding,
        "rendered": snap.rendered,
        "headers": [list(h) for h in snap.headers],
    }


def _alert_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": str(row.kind),
        "title": row.title,
        "created_at": row.created_at.isoformat(),
        "jurisdictions": list(row.jurisdictions),
        "text": Message.from_json(row.message).text,
    }


# --- verifying --------------------------------------------------------------------------


@dataclass
class Verdict:
    """What `verify` found: problems (the export is not sound) and notes."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int = 0
    versions: int = 0
    reextracted: int = 0


def verify(path: Path) -> Verdict:
    """Check every digest of an export, against the manifest beside it when there is
    one, and re-extract each version's text from its raw body with its recorded rules."""
    verdict = Verdict()
    manifest = _load_manifest(path, verdict)
    seen = _check_records(path, verdict)
    if manifest is not None:
        try:
            _check_manifest(path, manifest, seen, verdict)
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
            verdict.problems.append(f"the manifest is not one monitor wrote: {exc!r}")
    return verdict


def _load_manifest(path: Path, verdict: Verdict) -> dict[str, Any] | None:
    where = manifest_path(path)
    if not where.exists():
        verdict.notes.append(
            f"no manifest ({where.name}): the records' own digests were checked, "
            "but not that no record is missing"
        )
        return None
    try:
        data: dict[str, Any] = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        verdict.problems.append(f"the manifest {where.name} cannot be read: {exc}")
        return None
    return data


@dataclass
class _Seen:
    """A record as read back: where it is and what it is."""

    offset: int
    id: str
    type: str
    uri: str


def _check_records(path: Path, verdict: Verdict) -> list[_Seen]:
    """Every record's WARC digests; each version's text re-extracted."""
    seen: list[_Seen] = []
    bodies = _LastBody()
    with path.open("rb") as stream:
        records = ArchiveIterator(stream, check_digests=True)
        try:
            for record in records:
                item = _read_record(record, records, bodies, verdict)
                seen.append(item)
        # The file is untrusted input to warcio: whatever it raises on damage (a wrong
        # gzip CRC, a digest name that is not one, a cut-off header) is a finding.
        except Exception as exc:
            at = seen[-1].offset if seen else 0
            verdict.problems.append(f"the archive cannot be read after offset {at}: {exc}")
    verdict.records = len(seen)
    return seen


@dataclass
class _LastBody:
    """The body of the last response or resource record: a version's metadata record
    follows its snapshot's, so one body at a time is held."""

    id: str = ""
    body: bytes = b""


def _read_record(record: Any, records: Any, bodies: _LastBody, verdict: Verdict) -> _Seen:
    headers = record.rec_headers
    kind = headers.get_header("WARC-Type")
    body = _drain(record.raw_stream, keep=kind in ("response", "resource", "metadata"))
    item = _Seen(
        records.get_record_offset(),
        headers.get_header("WARC-Record-ID"),
        kind,
        headers.get_header("WARC-Target-URI") or "",
    )
    name = f"record {item.id} ({kind} {item.uri or 'warcinfo'}, offset {item.offset})"
    for problem in record.digest_checker.problems:
        verdict.problems.append(f"{name}: {problem}")
    if kind != "warcinfo" and not headers.get_header("WARC-Block-Digest"):
        verdict.problems.append(f"{name}: no WARC-Block-Digest")
    if kind in ("response", "resource"):
        bodies.id, bodies.body = item.id, body
    elif kind == "metadata":
        _check_metadata(name, headers.get_header("WARC-Refers-To"), body, bodies, verdict)
    return item


def _drain(stream: Any, *, keep: bool) -> bytes:
    """Read a record to its end (which completes warcio's digest checks)."""
    pieces = []
    while piece := stream.read(_CHUNK):
        if keep:
            pieces.append(piece)
    return b"".join(pieces)


def _check_metadata(
    name: str, refers_to: str | None, body: bytes, bodies: _LastBody, verdict: Verdict
) -> None:
    try:
        data = json.loads(body)
    except ValueError:
        verdict.problems.append(f"{name}: its JSON cannot be read")
        return
    if not isinstance(data, dict) or data.get("type") != "version":
        return
    verdict.versions += 1
    label = f"version {data.get('version')}"
    if refers_to != bodies.id:
        verdict.problems.append(f"{name}: {label} does not follow the snapshot it refers to")
        return
    try:
        problems = list(_reproduce(data, bodies.body, verdict))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problems = [f"its record lacks what a version holds ({type(exc).__name__}: {exc})"]
    for problem in problems:
        verdict.problems.append(f"{name}: {label}: {problem}")


def _reproduce(data: dict[str, Any], body: bytes, verdict: Verdict) -> Iterator[str]:
    """Problems in re-deriving a version: its blocks, its raw body, its text."""
    blocks = tuple(Block.from_json(b) for b in data["blocks"])
    if document_hash(blocks) != data["doc_hash"]:
        yield "its blocks do not match their recorded hash"
    snap = data["snapshot"]
    if hashlib.sha256(body).hexdigest() != snap["sha256"]:
        yield "the snapshot's body does not match its recorded SHA-256"
        return
    if data["rules"] is None:
        verdict.notes.append(
            f"version {data['version']}: not re-extracted: its rules (digest "
            f"{data['rules_hash']}) are not in the export (the watch's rules changed since)"
        )
        return
    fields = {k: _frozen(v) for k, v in data["rules"].items()}
    rules = ExtractRules(**(fields | {"format": Format(fields.get("format", Format.AUTO))}))
    if rules.digest() != data["rules_hash"]:
        yield "its recorded rules do not match their recorded digest"
        return
    yield from _reextract(snap, body, rules, data["doc_hash"], verdict)


def _frozen(value: Any) -> Any:
    """A rule read back from JSON as the frozen value it was: lists become tuples."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def _reextract(
    snap: dict[str, Any], body: bytes, rules: ExtractRules, doc_hash: str, verdict: Verdict
) -> Iterator[str]:
    snapshot = Snapshot(
        url=snap["url"],
        final_url=snap["final_url"],
        status=snap["status"],
        headers=tuple((k, v) for k, v in snap["headers"]),
        body=body,
        encoding=snap["encoding"],
        fetched_at=datetime.fromisoformat(snap["fetched_at"]),
        elapsed=0.0,
        rendered=snap["rendered"],
    )
    try:
        document = read(snapshot, rules)
    except ExtractError as exc:
        yield f"its raw body cannot be extracted again: {exc}"
        return
    if document_hash(document) != doc_hash:
        yield "its text does not re-extract from its raw body with the recorded rules"
        return
    verdict.reextracted += 1


def _check_manifest(
    path: Path, manifest: dict[str, Any], seen: list[_Seen], verdict: Verdict
) -> None:
    """The file's and each record's SHA-256, and that the records are the ones listed."""
    whole = manifest.get("warc_file", {})
    with path.open("rb") as stream:
        size, sha = _hash(stream, None)
        if (size, sha) != (whole.get("size"), whole.get("sha256")):
            verdict.problems.append(f"{path.name}: its SHA-256 is not the manifest's")
        for line in manifest.get("records", []):
            stream.seek(line["offset"])
            if _hash(stream, line["length"])[1] != line["sha256"]:
                verdict.problems.append(
                    f"record {line['id']} ({line['type']} {line['uri'] or 'warcinfo'}, offset "
                    f"{line['offset']}): its bytes are not the manifest's (SHA-256)"
                )
    listed = [(r["offset"], r["id"]) for r in manifest.get("records", [])]
    found = [(s.offset, s.id) for s in seen]
    for offset, record_id in sorted(set(listed) ^ set(found)):
        where = (
            "in the manifest but not the archive"
            if (offset, record_id) in listed
            else ("in the archive but not the manifest")
        )
        verdict.problems.append(f"record {record_id} at offset {offset}: {where}")


def _hash(stream: IO[bytes], length: int | None) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while length is None or size < length:
        piece = stream.read(_CHUNK if length is None else min(_CHUNK, length - size))
        if not piece:
            break
        digest.update(piece)
        size += len(piece)
    return size, digest.hexdigest()
