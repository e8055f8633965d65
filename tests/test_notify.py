"""Delivery through apprise to real local servers: SMTP (aiosmtpd) and HTTP webhooks.

Nothing leaves 127.0.0.1. Failures must raise NotifyError quickly and never show a
password or token.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import apprise
import pytest

from monitor.errors import NotifyError
from monitor.messages import Message, Proof, Subject, change_message
from monitor.model import Change, Finding
from monitor.notify import body_format, redact, send, validate
from tests.conftest import PASSWORD, Mailbox, Receiver, free_port, mailto, parts

T = TypeVar("T")
TOKEN = "hooktoken0123456789abcdef"
SUBJECT = Subject(
    "Meta",
    "Government requests for user data",
    "https://transparency.meta.com/reports/government-data-requests/country/HK/",
    "meta-gov-requests-hk",
)
PROOF = Proof(datetime(2024, 5, 1, 8, 0, tzinfo=UTC), "a" * 64, "b" * 64, 9, 12)
NAMES = {"HK": "Hong Kong", "CN": "China"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def modified(
    sentence_tail: str = " respond to <script>alert(1)</script> Hong Kong requests.",
) -> Finding:
    change = Change(
        "modified",
        "paragraph",
        before=f"We do not{sentence_tail}",
        after=f"We now{sentence_tail}",
        path_before=("Requests", "Hong Kong"),
        path_after=("Requests", "Hong Kong"),
        segments=(("=", "We "), ("-", "do not"), ("+", "now"), ("=", sentence_tail)),
    )
    return Finding("HK", "sentence_modified", "sentence", ("Hong Kong",), change)


def alert(*findings: Finding) -> Message:
    return change_message(SUBJECT, findings or (modified(),), PROOF, jurisdiction_names=NAMES)


def removed(n: int) -> Finding:
    sentence = f"Sentence number {n} about Hong Kong authorities, " + "long words " * 30 + "end."
    change = Change("removed", "paragraph", before=sentence, path_before=("Requests",))
    return Finding("HK", "sentence_removed", "sentence", ("Hong Kong",), change)


# ------------------------------------------------------------------------ SMTP server


def test_email_arrives_with_subject_text_and_html_parts(mailbox: Mailbox) -> None:
    message = alert()
    run(send(mailto(mailbox.port), message, timeout=10))
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["Subject"] == message.title
    assert mail["Subject"] == (
        "Meta · Government requests for user data · Hong Kong: sentence modified"
    )
    assert mailbox.envelopes[0].rcpt_tos == ["desk@example.org"]
    assert mail.get_content_type() == "multipart/alternative"
    body = parts(mail)
    assert set(body) == {"text/plain", "text/html"}
    html, text = body["text/html"], body["text/plain"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Hong Kong" in html
    assert "<script" not in html
    assert "<del" in html and "<ins" in html
    assert 'href="https://transparency.meta.com/reports/government-data-requests/country/HK/"' in (
        html
    )
    # The text alternative keeps the edit markers of the hidden spans.
    assert "We [-do not-] respond to" in text
    assert "We {+now+} respond to" in text
    assert "Section: Requests › Hong Kong" in text
    assert "b" * 64 in text


def test_email_with_a_wrong_password_fails_without_showing_it(mailbox: Mailbox) -> None:
    wrong = "Wr0ng-Pa55word-xyz"
    with pytest.raises(NotifyError) as caught:
        run(send(mailto(mailbox.port, wrong), alert(), timeout=10))
    assert wrong not in str(caught.value)
    assert "mailto://monitor:****@127.0.0.1" in str(caught.value)
    assert mailbox.messages == []


# ---------------------------------------------------------------------- HTTP receiver


def test_json_webhook_gets_title_and_finding_as_text(receiver: Receiver) -> None:
    message = alert()
    run(send(f"json://127.0.0.1:{receiver.port}/hooks/monitor", message, timeout=10))
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post.path == "/hooks/monitor"
    payload = post.json()
    assert payload["title"] == message.title
    assert payload["type"] == "warning"
    assert payload["message"] == message.text
    assert (
        "Before: We [-do not-] respond to <script>alert(1)</script> Hong Kong"
        in (payload["message"])
    )


def test_mattermost_webhook_gets_markdown_with_the_title_first(receiver: Receiver) -> None:
    message = alert()
    run(send(f"mmost://127.0.0.1:{receiver.port}/{TOKEN}", message, timeout=10))
    assert [p.path for p in receiver.posts] == [f"/hooks/{TOKEN}"]
    text = receiver.posts[0].json()["text"]
    assert text.startswith(
        "**Meta · Government requests for user data · Hong Kong: sentence modified**\n"
    )
    assert "Before: We ~~do not~~ respond to \\<script\\>alert(1)\\</script\\> Hong Kong" in text
    assert "After: We **now** respond to" in text
    assert text.count("Government requests for user data") == 1  # the title is not repeated


def test_a_long_alert_is_split_between_findings_within_the_service_limit(
    receiver: Receiver,
) -> None:
    message = alert(*(removed(n) for n in range(30)))
    run(send(f"mmost://127.0.0.1:{receiver.port}/{TOKEN}", message, timeout=20))
    texts = [p.json()["text"] for p in receiver.posts]
    total = len(texts)
    assert total > 1
    for number, text in enumerate(texts, 1):
        assert len(text) <= 4000  # Mattermost's limit, as apprise declares it
        assert f"({number}/{total})" in text.splitlines()[0]
    joined = "\n".join(texts)
    for n in range(30):
        assert joined.count(f"Sentence number {n} about") == 1
    assert "Checked: 2024-05-01 08:00 UTC" in texts[0]
    assert "b" * 64 in texts[-1]


def test_a_server_error_is_a_notify_error_without_the_secret(receiver: Receiver) -> None:
    receiver.status = 500
    url = f"json://monitor:{PASSWORD}@127.0.0.1:{receiver.port}/hook"
    with pytest.raises(NotifyError) as caught:
        run(send(url, alert(), timeout=10))
    error = str(caught.value)
    assert PASSWORD not in error
    assert error.startswith(f"json://monitor:****@127.0.0.1:{receiver.port}/hook: ")
    assert "500" in error
    assert len(receiver.posts) == 1  # sent once: apprise does not retry on its own


@pytest.mark.parametrize("options", ["?optional=yes", "?retry=3", "?optional=yes&retry=2&wait=0"])
def test_url_options_cannot_hide_a_failure_or_repeat_a_send(
    receiver: Receiver, options: str
) -> None:
    receiver.status = 500
    with pytest.raises(NotifyError):
        run(send(f"json://127.0.0.1:{receiver.port}/hook{options}", alert(), timeout=10))
    assert len(receiver.posts) == 1


def test_a_mattermost_error_never_shows_the_token(receiver: Receiver) -> None:
    receiver.status = 500
    with pytest.raises(NotifyError) as caught:
        run(send(f"mmost://127.0.0.1:{receiver.port}/{TOKEN}", alert(), timeout=10))
    assert TOKEN not in str(caught.value)
    assert len(receiver.posts) == 1


def test_connection_refused_fails_at_once_instead_of_waiting_out_the_timeout() -> None:
    port = free_port()  # nothing listens there any more
    with pytest.raises(NotifyError, match="delivery failed") as caught:
        run(send(f"json://127.0.0.1:{port}/hook", alert(), timeout=60))
    assert "Connection error" in str(caught.value)  # refused, said so: no timeout waited
    assert "timed out" not in str(caught.value) and "no answer" not in str(caught.value)


HANG_GUARD = 60  # seconds: far above the timeout, only there to turn a hang into a failure


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        delivery = send(f"json://127.0.0.1:{port}/hook", alert(), timeout=1)
        with pytest.raises(NotifyError, match=re.escape(f"json://127.0.0.1:{port}/hook: ")):
            run(asyncio.wait_for(delivery, HANG_GUARD))  # gives up by itself, not by the guard


def test_an_invalid_url_is_a_notify_error() -> None:
    with pytest.raises(NotifyError, match="apprise does not accept this URL"):
        run(send("nosuchservice://token-abcdef@example.org", alert()))
    assert not validate("nosuchservice://token-abcdef@example.org")
    assert redact("nosuchservice://token-abcdef@example.org") == "nosuchservice://***"
    assert redact("not a url at all") == "***"


def test_redact_uses_apprise_privacy_form() -> None:
    url = mailto(2525)
    assert validate(url)
    assert redact(url) == "mailto://monitor:****@127.0.0.1:2525/desk%40example.org"
    assert TOKEN not in redact(f"mmost://mattermost.example.org/{TOKEN}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mailto://user:pass@mail.example.org?to=desk@example.org", "html"),
        ("mailto://user:pass@mail.example.org?to=desk@example.org&format=text", "text"),
        ("json://hooks.example.org/alerts", "text"),
        ("json://hooks.example.org/alerts?format=markdown", "markdown"),
        (f"mmost://mattermost.example.org/{TOKEN}", "markdown"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "markdown"),
        ("discord://1234567890/abcdefghijklmnop", "markdown"),
        ("tgram://123456789:abcdefg_hijklmnop/12315544/", "markdown"),
        ("ntfy://ntfy.example.org/topic", "text"),
    ],
)
def test_each_service_gets_the_format_it_reads(url: str, expected: str) -> None:
    service = apprise.Apprise.instantiate(url)
    assert service is not None
    assert body_format(service, url) == expected
