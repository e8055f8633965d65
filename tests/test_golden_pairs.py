"""Golden page pairs: the findings a researcher expects from two versions of a page.

Each tests/golden/pairs/NAME/ is one case, run through the whole detection pipeline
(the watch built by the watchlist loader, extract, then `pipeline.detect`, the detection
step a check and `monitor diff` run):

- before.html and after.html: two versions of a realistic policy page, with the chrome
  real pages have (navigation, a cookie banner, scripts, a footer whose timestamp and
  CSRF token differ between the two);
- expected.yaml:

      description: what changed on the page, and why these are the findings
      watch:                               # the watch's settings; every key optional
        jurisdictions: [HK, MO, CN]        # default [HK, MO, CN]
        about: HK
        select: [main]
        remove: [.download-link]
        ignore: ['Last updated: .*']
        terms: {HK: [national security law]}   # watchlist terms (jurisdictions.extend)
      xfail: why the code is wrong here    # optional: a known defect (strict xfail)
      changes: {modified: 1}               # optional: diff's changes counted by kind
      findings:                            # order does not matter
      - jurisdiction: HK
        kind: table_row
        where: row
        terms: [Hong Kong]                 # the names that matched, as written
        before: Hong Kong | 202 | 281 | 46%    # the sentence or row (when the finding
        after: Hong Kong | 0 | 0 | 0%          # has a change)
        cells:                             # table rows: [column, before, after, delta]
        - [User data requests, '202', '0', -202.0]

The expected findings are a reviewed statement of what a human-rights researcher
must be told, not a snapshot of the code: when the code disagrees with a case, the
case keeps the right answer and says `xfail:` with the reason. After a deliberate
change of behaviour, regenerate with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden_pairs.py

which rewrites `findings` (and `changes` where present) of every case not marked
`xfail`, then read the diff of every expected.yaml before committing.
"""

from __future__ import annotations

import difflib
import enum
import json
import os
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import Watch, loads
from monitor.extract import extract
from monitor.model import Change, Finding
from monitor.pipeline import Detection, Matchers, detect

PAIRS = Path(__file__).parent / "golden" / "pairs"
NAMES = sorted(path.name for path in PAIRS.iterdir() if path.is_dir()) if PAIRS.is_dir() else []
DEFAULT_JURISDICTIONS = ("HK", "MO", "CN")
URL = "https://example.org/policy"
WATCH_KEYS = {"jurisdictions", "about", "select", "remove", "ignore", "terms"}
CASE_KEYS = {"description", "watch", "xfail", "changes", "findings"}
FINDING_KEYS = ("jurisdiction", "kind", "where", "terms", "before", "after", "cells")


# --- reading and writing cases -------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((PAIRS / name / "expected.yaml").read_text("utf-8"))
    return spec


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values (terms, cells), which stay on a line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(not isinstance(item, list | dict) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_multi_representer(enum.Enum, lambda dumper, v: dumper.represent_str(str(v.value)))


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100, indent=2)


# --- running the pipeline ------------------------------------------------------------


@cache
def _watch(watch_yaml: str) -> tuple[Watch, Matchers]:
    """The watch and its matchers as the watchlist loader builds them."""
    watch = yaml.safe_load(watch_yaml)
    unknown = set(watch) - WATCH_KEYS
    assert not unknown, f"unknown watch keys {unknown}"
    terms = watch.pop("terms", {})
    spec = {
        "defaults": {"jurisdictions": watch.pop("jurisdictions", list(DEFAULT_JURISDICTIONS))},
        "jurisdictions": {jid: {"terms": extra} for jid, extra in terms.items()},
        "watches": [{"id": "golden", "platform": "Example", "name": "Golden", "url": URL, **watch}],
    }
    watchlist = loads(yaml.safe_dump(spec), "golden.yaml")
    return watchlist.watches[0], Matchers(watchlist)


def run(name: str, watch_spec: dict[str, Any]) -> Detection:
    """Extract both versions with the watch's rules and detect what changed."""
    watch, matchers = _watch(yaml.safe_dump(watch_spec, sort_keys=True))
    before, after = (
        extract((PAIRS / name / f"{side}.html").read_text("utf-8"), watch.rules)
        for side in ("before", "after")
    )
    return detect(before, after, matchers.for_watch(watch), watch.about)


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding as the small dict the expected files hold (empty fields left out)."""
    change = finding.change
    data: dict[str, Any] = {
        "jurisdiction": finding.jurisdiction,
        "kind": finding.kind,
        "where": finding.where,
        "terms": list(finding.terms),
        "before": change.before if change else None,
        "after": change.after if change else None,
        "cells": [[c.column, c.before, c.after, c.delta] for c in finding.cells],
    }
    return {key: value for key, value in data.items() if value not in (None, [])}


def canonical(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings in a fixed order and form: by jurisdiction, kind, then content; keys in
    FINDING_KEYS order; numeric deltas as floats (YAML reads -202 as an int)."""
    out = []
    for finding in findings:
        unknown = set(finding) - set(FINDING_KEYS)
        assert not unknown, f"unknown finding keys {unknown}"
        item = {key: finding[key] for key in FINDING_KEYS if key in finding}
        if "cells" in item:
            item["cells"] = [
                [*cell[:3], None if cell[3] is None else float(cell[3])] for cell in item["cells"]
            ]
        out.append(item)
    return sorted(
        out,
        key=lambda f: (f["jurisdiction"], f["kind"], json.dumps(f, ensure_ascii=False)),
    )


def change_counts(changes: tuple[Change, ...]) -> dict[str, int]:
    return dict(sorted(Counter(change.kind for change in changes).items()))


def _explain(name: str, expected: Any, actual: Any, changes: tuple[Change, ...]) -> str:
    """A unified diff of the YAML of both sides, then the changes diff saw."""
    lines = difflib.unified_diff(
        dump(expected).splitlines(), dump(actual).splitlines(), "expected", "actual", lineterm=""
    )
    seen = [f"  {c.kind} {c.block_kind}: {c.before!r} -> {c.after!r}" for c in changes]
    return "\n".join([f"{name}: findings differ", *lines, "changes seen by diff:", *seen])


# --- the cases -----------------------------------------------------------------------


def _param(name: str) -> Any:
    reason = load(name).get("xfail")
    marks = [pytest.mark.xfail(reason=str(reason), strict=True)] if reason else []
    return pytest.param(name, marks=marks, id=name)


def test_there_are_enough_cases() -> None:
    assert len(NAMES) >= 18, f"expected at least 18 case folders in {PAIRS}"


@pytest.mark.parametrize("name", [_param(name) for name in NAMES])
def test_golden_pair(name: str) -> None:
    spec = load(name)
    assert set(spec) <= CASE_KEYS, f"unknown keys {set(spec) - CASE_KEYS}"
    detection = run(name, spec.get("watch") or {})
    changes, findings = detection.changes, detection.findings
    actual = canonical([finding_dict(finding) for finding in findings])
    counts = change_counts(changes)
    if os.environ.get("UPDATE_GOLDEN") == "1" and not spec.get("xfail"):
        spec["findings"] = actual
        if "changes" in spec:
            spec["changes"] = counts
        (PAIRS / name / "expected.yaml").write_text(dump(spec), "utf-8")
    expected = canonical(spec.get("findings") or [])
    if actual != expected:
        pytest.fail(_explain(name, expected, actual, changes), pytrace=False)
    if "changes" in spec:
        assert counts == spec["changes"], f"{name}: diff's changes {counts}"


_FOOTER = re.compile(r"<footer\b.*?</footer>", re.DOTALL | re.IGNORECASE)


@pytest.mark.parametrize("name", NAMES)
def test_pages_carry_real_page_noise(name: str) -> None:
    """Every pair is a realistic page: navigation, scripts, and a footer that differs
    between the versions (a timestamp), so every case is also a noise test."""
    before, after = (
        (PAIRS / name / f"{side}.html").read_text("utf-8") for side in ("before", "after")
    )
    for page in (before, after):
        assert "<nav" in page and "<script" in page and "cookie" in page.lower()
    footers = [_FOOTER.search(page) for page in (before, after)]
    assert footers[0] and footers[1], "each version has a <footer>"
    assert footers[0].group() != footers[1].group(), "the footer (timestamp) differs"
