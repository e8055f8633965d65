"""The 21 real pairs of ../shared/corpus: exactly the jurisdictions whose wording changed.

Each version is Markdown as Open Terms Archive recorded it; it is rendered to HTML
inside a platform-like page shell (navigation, cookie banner, footer with a
timestamp), extracted with the main-content heuristics, compared, and assessed for
HK, MO and CN. The monitor must report exactly each pair's `changed_jurisdictions`.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

import markdown
import pytest

from monitor.extract import extract
from monitor.jurisdictions import Watching, catalog, matcher_for
from monitor.model import Document, ExtractRules
from monitor.pipeline import detect

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "real"
PAIRS = json.loads((CORPUS / "pairs.json").read_text()) if CORPUS.exists() else []
WATCHED = ("HK", "MO", "CN")
WORDING = {"sentence_added", "sentence_removed", "sentence_modified", "table_row"}

SHELL = """<!doctype html><html lang="en"><head><title>{title}</title>
<script>window.__csrf = "{stamp}";</script><style>main {{ max-width: 60em; }}</style></head>
<body><header><nav><a href="/">Home</a> <a href="/legal">Legal</a> <a href="/hk">Hong Kong</a>
<a href="/cn">China mainland</a></nav></header>
<div id="onetrust-banner-sdk" class="cookie-banner">We use cookies. <button>Accept</button></div>
<main>{body}</main>
<footer>© Platform. Available in: Hong Kong, Macao, Mainland China. Generated {stamp}.</footer>
</body></html>"""


@cache
def document(relative: str) -> Document:
    text = (CORPUS / relative).read_text(encoding="utf-8")
    page = SHELL.format(title=relative, body=markdown.markdown(text), stamp=relative[-20:])
    return extract(page, ExtractRules())


@cache
def matcher() -> Watching:
    return matcher_for(WATCHED, catalog())


def reported(pair: dict[str, object]) -> set[str]:
    before, after = document(str(pair["before"])), document(str(pair["after"]))
    findings = detect(before, after, matcher(), about=None).findings
    return {f.jurisdiction for f in findings if f.kind in WORDING}


pytestmark = pytest.mark.skipif(not PAIRS, reason="../shared/corpus is not beside the project")


@pytest.mark.parametrize(
    "pair", PAIRS, ids=[f"{p['id']}-{p['platform']}-{p['after'][-17:-3]}" for p in PAIRS]
)
def test_pair_reports_exactly_the_changed_jurisdictions(pair: dict[str, object]) -> None:
    assert reported(pair) == set(pair["changed_jurisdictions"]), pair["note"]  # type: ignore[arg-type]


def test_confusion_counts() -> None:
    """Per (pair, jurisdiction): printed with -s; every count off the diagonal is zero."""
    counts: Counter[str] = Counter()
    for pair in PAIRS:
        truth, found = set(pair["changed_jurisdictions"]), reported(pair)
        for jid in WATCHED:
            counts[
                ("t" if (jid in found) == (jid in truth) else "f") + ("p" if jid in found else "n")
            ] += 1
    print(
        f"\npairs: {len(PAIRS)}, decisions: {sum(counts.values())}, {dict(sorted(counts.items()))}"
    )
    assert counts["fp"] == 0 and counts["fn"] == 0
