"""Evidence export: a store's proof as WARC, read back by warcio, verified byte for byte.

The stores are built by real checks of a page served on 127.0.0.1 (a baseline, then a
Hong Kong change), except the rendered snapshot, written through `Store.record` (no
browser needed to store what a browser would have rendered).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from monitor import config, export
from monitor.cli import main
from monitor.errors import FailureKind
from monitor.model import CheckRecord, Outcome, Snapshot, VersionKind
from monitor.pipeline import read
from monitor.store import Store
from tests.conftest import LocalSite, Page

PAGE = """<html><body><main><h1>Government requests</h1>
<h2>Hong Kong</h2>
<p>We review every request for user data carefully.</p>
<p>{hk}</p></main><footer>Generated {stamp}</footer></body></html>"""
HK_BEFORE = "We do not respond to requests from the Hong Kong government."
HK_AFTER = "We now respond to requests from the Hong Kong government."


def watchlist(tmp_path: Path, *watches: tuple[str, str]) -> Path:
    path = tmp_path / "w.yaml"
    lines = [f"  - {{id: {i}, platform: Meta, name: Requests, url: '{url}'}}" for i, url in watches]
    path.write_text("watches:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def check(
    capsys: pytest.CaptureFixture[str], wl: Path, db: Path, *ids: str
) -> list[dict[str, Any]]:
    code, out, _ = run(capsys, "check", "--json", "--watchlist", str(wl), "--db", str(db), *ids)
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def changed(tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """A watch checked three times: baseline, a Hong Kong change, then unchanged text."""
    wl = watchlist(tmp_path, ("meta-hk", site.url("/p")))
    db = tmp_path / "m.db"
    pages, shas = [], []
    for hk, stamp in ((HK_BEFORE, "1"), (HK_AFTER, "2"), (HK_AFTER, "3")):
        pages.append(PAGE.format(hk=hk, stamp=stamp).encode())
        site["/p"] = PAGE.format(hk=hk, stamp=stamp)
        [line] = [x for x in check(capsys, wl, db) if x["type"] == "check"]
        shas.append(line["sha256"])
    assert main(["alerts", "--json", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    [alert] = [json.loads(line) for line in out.splitlines()]
    return {"wl": wl, "db": db, "pages": pages, "shas": shas, "alert": alert["id"]}


def export_hk(
    capsys: pytest.CaptureFixture[str], changed: dict[str, Any], out: Path, *selection: str
) -> tuple[int, str, str]:
    """`monitor export meta-hk [SELECTION] --out OUT` on the `changed` store."""
    db, wl = str(changed["db"]), str(changed["wl"])
    return run(
        capsys, "export", "meta-hk", *selection, "--out", str(out), "--db", db, "--watchlist", wl
    )


def records(path: Path) -> list[dict[str, Any]]:
    """Every record read back by warcio with its digests checked: its WARC headers,
    HTTP headers, payload bytes, and whether the digests passed."""
    found = []
    with path.open("rb") as stream:
        for record in ArchiveIterator(stream, check_digests=True):
            payload = record.raw_stream.read()
            found.append(
                {
                    "type": record.rec_type,
                    "headers": dict(record.rec_headers.headers),
                    "http": record.http_headers,
                    "payload": payload,
                    "passed": record.digest_checker.passed,
                    "problems": list(record.digest_checker.problems),
                }
            )
    return found


def stored(tmp_path: Path, record: CheckRecord) -> Path:
    """A store holding what one check wrote, built without fetching anything."""
    db = tmp_path / "m.db"
    with Store.open(str(db)) as store:
        store.record(record)
    return db


def b32(sha_hex: str) -> str:
    return "sha256:" + base64.b32encode(bytes.fromhex(sha_hex)).decode()


def test_an_alerted_change_exports_as_warc_that_warcio_reads_byte_for_byte(
    tmp_path: Path, changed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hk.warc.gz"
    db, wl = str(changed["db"]), str(changed["wl"])
    args = ("export", "meta-hk", "--alert", str(changed["alert"]), "--out", str(out))
    code, said, err = run(capsys, *args, "--db", db, "--watchlist", wl)
    assert code == 0, err
    assert "records (2 snapshots, 2 versions)" in said

    found = records(out)
    assert [r["type"] for r in found] == ["warcinfo"] + ["response", "request", "metadata"] * 2 + [
        "metadata"
    ]
    assert all(r["passed"] is True and not r["problems"] for r in found)
    assert all(r["headers"]["WARC-Block-Digest"].startswith("sha256:") for r in found)

    responses = [r for r in found if r["type"] == "response"]
    for response, page, sha in zip(responses, changed["pages"], changed["shas"], strict=False):
        assert response["payload"] == page  # the page's bytes, exactly
        assert hashlib.sha256(response["payload"]).hexdigest() == sha  # as check --json said
        assert response["headers"]["WARC-Payload-Digest"] == b32(sha)
        assert response["http"].statusline == "200 OK"
        assert response["http"].get_header("content-type") == "text/html; charset=utf-8"
        assert response["headers"]["WARC-Target-URI"].endswith("/p")
    requests = [r for r in found if r["type"] == "request"]
    for request, response in zip(requests, responses, strict=True):
        assert request["headers"]["WARC-Concurrent-To"] == response["headers"]["WARC-Record-ID"]
        assert request["http"].protocol == "GET"
        assert request["http"].get_header("User-Agent").startswith("monitor")

    versions = [json.loads(r["payload"]) for r in found if r["type"] == "metadata"]
    assert [(v["type"], v["version"]) for v in versions] == [
        ("version", 1),
        ("version", 2),
        ("findings", 2),
    ]
    hk = [b for b in versions[1]["blocks"] if "Hong Kong government" in b["text"]]
    assert hk == [
        {"kind": "paragraph", "text": HK_AFTER, "path": ["Government requests", "Hong Kong"]}
    ]
    assert {f["jurisdiction"] for f in versions[2]["findings"]} == {"HK"}
    assert versions[2]["alerts"][0]["id"] == changed["alert"]
    metadata = [r for r in found if r["type"] == "metadata"]
    refers = [m["headers"]["WARC-Refers-To"] for m in metadata]
    ids = [r["headers"]["WARC-Record-ID"] for r in responses]
    assert refers == [ids[0], ids[1], ids[1]]
    assert [m["headers"]["WARC-Target-URI"] for m in metadata] == [  # never the page's URL:
        "urn:monitor:version:meta-hk:1",  # pywb would replay the JSON as the page
        "urn:monitor:version:meta-hk:2",
        "urn:monitor:findings:meta-hk:2",
    ]
    assert metadata[0]["headers"]["WARC-Date"] < metadata[1]["headers"]["WARC-Date"]

    manifest = json.loads((tmp_path / "hk.warc.gz.manifest.json").read_text())
    assert manifest["watch"]["id"] == "meta-hk" and manifest["software"].startswith("monitor ")
    assert f"--alert {changed['alert']}" in manifest["command"]
    assert len(manifest["records"]) == len(found)
    assert manifest["warc_file"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    data = out.read_bytes()
    for line in manifest["records"]:
        piece = data[line["offset"] : line["offset"] + line["length"]]
        assert hashlib.sha256(piece).hexdigest() == line["sha256"]
    assert [line["payload_sha256"] for line in manifest["records"][1:5:3]] == changed["shas"][:2]

    code, said, err = run(capsys, "verify-export", str(out))
    assert code == 0, err
    assert "sound: 8 records" in said and "2 of 2 versions re-extracted" in said


def test_the_alerts_footer_names_the_export_of_exactly_its_change(
    tmp_path: Path, changed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db, wl = str(changed["db"]), str(changed["wl"])
    code, said, _ = run(capsys, "alerts", "--show", "--db", db)
    command = "monitor export meta-hk --from 1 --to 2 --out meta-hk-1-2.warc.gz"
    assert code == 0 and f"Evidence: {command}\n" in said
    out = tmp_path / "meta-hk-1-2.warc.gz"
    args = [*shlex.split(command)[1:-1], str(out), "--db", db, "--watchlist", wl]
    assert run(capsys, *args)[0] == 0
    assert [r["type"] for r in records(out)].count("response") == 2
    code, _, err = run(capsys, *args)  # evidence is never overwritten
    assert code == 2 and "exists already" in err


def test_verify_export_names_the_record_whose_byte_was_flipped(
    tmp_path: Path, changed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hk.warc"
    assert export_hk(capsys, changed, out)[0] == 0
    [first, *_] = [r for r in records(out) if r["type"] == "response"]
    data = bytearray(out.read_bytes())
    at = data.index(b"do not respond")
    data[at] ^= 0x01  # "do" becomes "eo" in the baseline's raw body
    out.write_bytes(bytes(data))

    code, _, err = run(capsys, "verify-export", str(out))
    assert code == 1
    record_id = first["headers"]["WARC-Record-ID"]
    assert f"record {record_id} (response" in err
    assert "payload digest failed" in err and "bytes are not the manifest's" in err
    assert "version 1: the snapshot's body does not match its recorded SHA-256" in err


def test_a_flipped_byte_in_a_compressed_archive_fails_verification(
    tmp_path: Path, changed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hk.warc.gz"
    assert export_hk(capsys, changed, out)[0] == 0
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x40
    out.write_bytes(bytes(data))
    code, _, err = run(capsys, "verify-export", str(out))
    assert code == 1 and "problem(s)" in err


def test_export_selects_by_version_range_and_date(
    tmp_path: Path, changed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:

    def exported(*selection: str) -> list[str]:
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.warc"
        assert export_hk(capsys, changed, out, *selection)[0] == 0
        return [r["type"] for r in records(out)]

    three = ["response", "request", "metadata"]
    everything = exported()
    assert everything == ["warcinfo", *three, *three, "metadata", "response", "request"]
    assert exported("--version", "1") == ["warcinfo", *three]
    assert exported("--from", "2") == ["warcinfo", *three, "metadata", "response", "request"]
    assert exported("--since", "2000-01-01") == everything
    code, _, err = export_hk(capsys, changed, tmp_path / "y.warc", "--since", "2999-01-01T00:00Z")
    assert code == 2 and "no snapshot of 'meta-hk' matches the selection" in err


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (["nope"], "nothing stored for 'nope'"),
        (["meta-hk", "--version", "9"], "no version 9"),
        (["meta-hk", "--from", "2", "--to", "1"], "version 2 is newer than version 1"),
        (["meta-hk", "--to", "1"], "--to B needs --from A"),
        (["meta-hk", "--alert", "99"], "no alert 99"),
        (["meta-hk", "--all"], "export needs a WATCH_ID, or --all"),
        (["--since", "yesterday", "meta-hk"], "not an ISO 8601 date"),
    ],
    ids=["watch", "version", "range", "to-alone", "alert", "all-and-watch", "since"],
)
def test_export_of_something_not_stored_is_a_usage_error(
    tmp_path: Path,
    changed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    selection: list[str],
    message: str,
) -> None:
    out = tmp_path / "x.warc"
    args = ("--out", str(out), "--db", str(changed["db"]), "--watchlist", str(changed["wl"]))
    code, _, err = run(capsys, "export", *selection, *args)
    assert code == 2 and message in err
    assert not out.exists() and not list(tmp_path.glob("x.warc*"))


def test_export_never_creates_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wl = watchlist(tmp_path, ("w", "https://example.org/"))
    args = ("--db", str(tmp_path / "none.db"), "--watchlist", str(wl))
    code, _, err = run(capsys, "export", "w", "--out", str(tmp_path / "x.warc"), *args)
    assert code == 1 and "no store at" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.yaml"]


def test_a_rendered_snapshot_is_a_resource_record_of_its_dom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wl = watchlist(tmp_path, ("app", "https://example.org/app"))
    rules = config.load(wl).watches[0].rules
    dom = PAGE.format(hk=HK_BEFORE, stamp="rendered").encode()
    snapshot = Snapshot(
        url="https://example.org/app",
        final_url="https://example.org/app/requests",
        status=200,
        headers=(
            ("content-type", "text/html; charset=utf-8"),
            ("x-served-content-type", "text/html"),
            ("server", "nginx"),
        ),
        body=dom,
        encoding="utf-8",
        fetched_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        elapsed=2.5,
        rendered=True,
    )
    db = stored(
        tmp_path,
        CheckRecord(
            "app",
            snapshot.fetched_at,
            2.5,
            Outcome.NEW,
            snapshot=snapshot,
            document=read(snapshot, rules),
            version_kind=VersionKind.BASELINE,
            rules_hash=rules.digest(),
        ),
    )
    out = tmp_path / "app.warc.gz"
    args = ("--db", str(db), "--watchlist", str(wl))
    assert run(capsys, "export", "app", "--out", str(out), *args)[0] == 0

    warcinfo, resource, metadata = records(out)
    assert resource["type"] == "resource" and resource["payload"] == dom
    assert resource["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert resource["headers"]["WARC-Target-URI"] == "https://example.org/app/requests"
    assert resource["headers"]["WARC-Date"] == "2026-11-02T09:30:00Z"
    assert resource["headers"]["WARC-Payload-Digest"] == b32(snapshot.sha256)
    assert metadata["headers"]["WARC-Refers-To"] == resource["headers"]["WARC-Record-ID"]
    version = json.loads(metadata["payload"])
    assert version["snapshot"]["rendered"] is True
    assert ["server", "nginx"] in version["snapshot"]["headers"]  # the main document's
    assert "rendered snapshots are resource records" in warcinfo["payload"].decode()
    code, said, _ = run(capsys, "verify-export", str(out))
    assert code == 0 and "1 of 1 versions re-extracted" in said


def test_export_all_writes_one_verified_archive_per_watch(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    wl = watchlist(tmp_path, ("a", site.url("/a")), ("b", site.url("/b")))
    db = tmp_path / "m.db"
    site["/a"] = PAGE.format(hk=HK_BEFORE, stamp="a")
    site["/b"] = PAGE.format(hk=HK_AFTER, stamp="b")
    check(capsys, wl, db)
    site["/b"] = PAGE.format(hk=HK_BEFORE, stamp="b2")
    check(capsys, wl, db, "b")

    out = tmp_path / "evidence"
    args = ("--out", str(out), "--db", str(db), "--watchlist", str(wl))
    code, said, _ = run(capsys, "export", "--all", *args)
    assert code == 0 and said.count("2 versions") == 1 and said.count("1 versions") == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "a.warc.gz",
        "a.warc.gz.manifest.json",
        "b.warc.gz",
        "b.warc.gz.manifest.json",
    ]
    assert [
        len([r for r in records(out / f"{w}.warc.gz") if r["type"] == "response"]) for w in "ab"
    ] == [1, 2]
    for name in ("a", "b"):
        code, said, _ = run(capsys, "verify-export", str(out / f"{name}.warc.gz"))
        assert code == 0 and "versions re-extracted" in said and "note" not in said


def test_a_version_whose_rules_changed_since_is_noted_not_re_extracted(
    tmp_path: Path, changed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    wl = changed["wl"]
    wl.write_text(wl.read_text().replace("name: Requests,", "name: Requests, remove: [h2],"))
    out = tmp_path / "x.warc"
    args = ("--db", str(changed["db"]), "--watchlist", str(wl))
    assert run(capsys, "export", "meta-hk", "--out", str(out), *args)[0] == 0
    code, said, _ = run(capsys, "verify-export", str(out))
    assert code == 0
    assert "note: version 1: not re-extracted: its rules (digest" in said
    assert "0 of 2 versions re-extracted" in said


def test_a_body_served_compressed_is_exported_decoded_with_its_encoding_headers_renamed(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    page = PAGE.format(hk=HK_BEFORE, stamp="gz").encode()
    headers = {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
    site["/gz"] = Page(gzip.compress(page), headers=headers)
    wl = watchlist(tmp_path, ("gz", site.url("/gz")))
    db = tmp_path / "m.db"
    check(capsys, wl, db)
    out = tmp_path / "gz.warc"
    args = ("--out", str(out), "--db", str(db), "--watchlist", str(wl))
    assert run(capsys, "export", "gz", *args)[0] == 0
    [response] = [r for r in records(out) if r["type"] == "response"]
    assert response["payload"] == page  # as stored: decoded, so it replays as the page
    head = response["http"]
    assert head.get_header("content-encoding") is None
    assert head.get_header("x-archive-orig-content-encoding") == "gzip"
    assert head.get_header("x-archive-orig-content-length") == str(len(gzip.compress(page)))
    assert run(capsys, "verify-export", str(out))[0] == 0


def test_a_pdf_snapshot_is_exported_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the extractor made of it, the body is evidence as served: a failed
    check that kept what was served is exported too."""
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n"
    snapshot = Snapshot(
        url="https://example.org/report.pdf",
        final_url="https://example.org/report.pdf",
        status=200,
        headers=(("content-type", "application/pdf"), ("content-length", str(len(pdf)))),
        body=pdf,
        encoding="latin-1",
        fetched_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        elapsed=0.2,
    )
    failed = CheckRecord(
        "pdf",
        snapshot.fetched_at,
        0.2,
        Outcome.FAILED,
        snapshot=snapshot,
        failure_kind=FailureKind.EXTRACTION,
        message="no text",
    )
    db = stored(tmp_path, failed)
    wl = watchlist(tmp_path, ("pdf", "https://example.org/report.pdf"))
    out = tmp_path / "pdf.warc.gz"
    args = ("--db", str(db), "--watchlist", str(wl))
    assert run(capsys, "export", "pdf", "--out", str(out), *args)[0] == 0
    [response] = [r for r in records(out) if r["type"] == "response"]
    assert response["payload"] == pdf
    assert response["http"].get_header("content-type") == "application/pdf"
    assert response["headers"]["WARC-Payload-Digest"] == b32(snapshot.sha256)
    code, said, _ = run(capsys, "verify-export", str(out))
    assert code == 0 and "0 of 0 versions" in said


@pytest.mark.parametrize("name", ["hk.warc", "hk.warc.gz"])
def test_any_damage_is_a_listed_problem_never_a_crash(
    tmp_path: Path, changed: dict[str, Any], capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / name
    assert export_hk(capsys, changed, out)[0] == 0
    sound = out.read_bytes()
    assert not export.verify(out).problems
    for at in range(7, len(sound), len(sound) // 300):  # a flipped byte anywhere
        out.write_bytes(sound[:at] + bytes([sound[at] ^ 0x20]) + sound[at + 1 :])
        assert export.verify(out).problems, f"a flipped byte at {at} went unnoticed"
    out.write_bytes(sound[: len(sound) // 2])  # cut off
    assert export.verify(out).problems
    out.write_bytes(sound)
    export.manifest_path(out).write_text('{"records": [{"offset": "x"}]}')
    assert any("manifest" in p for p in export.verify(out).problems)
    export.manifest_path(out).unlink()
    verdict = export.verify(out)  # without a manifest: the records' own digests
    assert not verdict.problems and "no manifest" in verdict.notes[0]


def test_export_all_skips_a_watch_with_nothing_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # every check failed before an answer
    db = stored(tmp_path, CheckRecord("down", at, 0.1, Outcome.FAILED, message="refused"))
    code, _, err = run(capsys, "export", "--all", "--out", str(tmp_path / "e"), "--db", str(db))
    assert code == 0 and "skipped: nothing stored for 'down'" in err
    assert not (tmp_path / "e").exists()
