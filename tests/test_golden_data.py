"""Golden data pairs: two versions of a data file and the findings they must give.

Each tests/golden/data/NAME/ is one case, run through the production path: a
`Snapshot` as fetch makes it, `pipeline.read` (the one reader, which picks the
extractor from the content type and magic bytes), then `pipeline.detect`.

- before.EXT and after.EXT: the two versions (.csv, .tsv or .json), served with
  that type; with `zip:` in expected.yaml, each is served inside a ZIP archive as
  the member of that name, among an unrelated README member;
- expected.yaml: `description`, `watch` (the data keys: format, member, query, key,
  rows, and jurisdictions), `zip`, `changes` and `findings`, as in
  tests/test_golden_pairs.py, whose `verify` (and `UPDATE_GOLDEN=1`) it shares.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import Watch, loads
from monitor.model import Snapshot
from monitor.pipeline import Detection, Matchers, detect, read
from tests.test_golden_pairs import verify

DATA = Path(__file__).parent / "golden" / "data"
NAMES = sorted(path.name for path in DATA.iterdir() if path.is_dir())
TYPES = {".csv": "text/csv", ".tsv": "text/tab-separated-values", ".json": "application/json"}
WATCH_KEYS = {"format", "member", "query", "key", "rows", "jurisdictions"}
CASE_KEYS = {"description", "watch", "zip", "changes", "findings"}
URL = "https://example.org/transparency/data"


def load(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((DATA / name / "expected.yaml").read_text("utf-8"))
    return spec


@cache
def _watch(watch_yaml: str) -> tuple[Watch, Matchers]:
    watch = yaml.safe_load(watch_yaml)
    assert not set(watch) - WATCH_KEYS, f"unknown watch keys {set(watch) - WATCH_KEYS}"
    jurisdictions = watch.pop("jurisdictions", ["HK", "MO", "CN"])
    spec = {
        "defaults": {"jurisdictions": jurisdictions},
        "watches": [{"id": "golden", "url": URL, **watch}],
    }
    watchlist = loads(yaml.safe_dump(spec), "golden.yaml")
    return watchlist.watches[0], Matchers(watchlist)


def _served(name: str, side: str, member: str | None) -> Snapshot:
    """One version as fetch would have made it: the file, or a ZIP holding it."""
    (path,) = (DATA / name).glob(f"{side}.*")
    body, content_type = path.read_bytes(), TYPES[path.suffix]
    if member is not None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.txt", b"About this data")
            archive.writestr(member, body)
        body, content_type = buffer.getvalue(), "application/zip"
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return Snapshot(URL, URL, 200, (("content-type", content_type),), body, "utf-8", when, 0.1)


def run(name: str, spec: dict[str, Any]) -> Detection:
    watch, matchers = _watch(yaml.safe_dump(spec.get("watch") or {}, sort_keys=True))
    before, after = (
        read(_served(name, side, spec.get("zip")), watch.rules, max_bytes=watch.max_size)
        for side in ("before", "after")
    )
    return detect(before, after, matchers.for_watch(watch), watch.about)


def test_there_are_cases_for_csv_tsv_json_and_zip() -> None:
    files = {path.suffix for path in DATA.glob("*/before.*")}
    assert files == set(TYPES)
    assert any(load(name).get("zip") for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_golden_data(name: str) -> None:
    spec = load(name)
    assert set(spec) <= CASE_KEYS, f"unknown keys {set(spec) - CASE_KEYS}"
    verify(DATA / name, spec, run(name, spec))
