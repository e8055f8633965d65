"""Atom feeds of change alerts, written by feedgen (on lxml, as the extractor is).

feedgen refuses a feed or entry without its required elements (id, title, updated)
and escapes every text it is given, so a page's `<script>` arrives in a reader as text.
One entry per change alert: its id is a tag: URI made from the alert's id, stable
across restarts and renders; its content is the alert's message as sent by e-mail
(the findings, their verbatim quotes, the proof), and its link the change's page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from feedgen.feed import FeedGenerator

from monitor.messages import Message
from monitor.model import AlertKind
from monitor.store import AlertRow

TAG = "tag:monitor,2026:"  # RFC 4151: authority, date; then the alert's number
FEED_ENTRIES = 50  # the newest change alerts in a feed
SCAN = 1000  # alerts read to fill a filtered feed (a jurisdiction's)


def entry_id(row: AlertRow) -> str:
    return f"{TAG}alert/{row.id}"


def change_alerts(
    rows: Sequence[AlertRow], keep: Callable[[AlertRow], bool] = lambda _row: True
) -> list[AlertRow]:
    """The change alerts among `rows` that `keep` keeps, at most FEED_ENTRIES."""
    return [r for r in rows if r.kind is AlertKind.CHANGE and keep(r)][:FEED_ENTRIES]


def _content(row: AlertRow) -> str:
    try:
        return Message.from_json(row.message).html
    except (ValueError, KeyError, TypeError):  # an alert stored without its parts
        return ""


def atom(
    rows: Sequence[AlertRow],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    site_url: str,
    link: Callable[[AlertRow], str],
    now: datetime,
) -> bytes:
    """An Atom document: one entry per alert, newest first; `updated` is the newest
    entry's time (`now` for an empty feed)."""
    feed = FeedGenerator()
    feed.id(f"{TAG}{feed_id}")
    feed.title(title)
    feed.author({"name": "monitor"})
    feed.link(href=self_url, rel="self", type="application/atom+xml")
    feed.link(href=site_url, rel="alternate", type="text/html")
    feed.updated(max((r.created_at for r in rows), default=now).astimezone(UTC))
    feed.generator("monitor")
    for row in rows:
        entry = feed.add_entry(order="append")
        entry.id(entry_id(row))
        entry.title(row.title)
        entry.updated(row.created_at.astimezone(UTC))
        entry.published(row.created_at.astimezone(UTC))
        entry.link(href=link(row), rel="alternate", type="text/html")
        for code in row.jurisdictions:
            entry.category(term=code)
        content = _content(row)
        if content:
            entry.content(content, type="html")
        else:
            entry.summary(row.title)
    data: bytes = feed.atom_str(pretty=True)
    return data
