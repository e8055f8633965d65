"""Tests of the fetch stage against fake HTTP (httpx.MockTransport and respx), no network.

Sleeps are recorded instead of waited for; only the deadline test uses real time.
"""

from __future__ import annotations

import asyncio
import codecs
import gzip
import ipaddress
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import FailureKind, FetchError
from monitor.fetch import (
    CHALLENGE_MARKERS,
    DEFAULT_USER_AGENT,
    detect_encoding,
    fetch,
    make_client,
)
from monitor.limits import HostLimiter
from monitor.model import FetchRequest, Format, NotModified, Snapshot, Validators
from monitor.netpolicy import IPAddress
from tests.conftest import LocalSite, Page

T = TypeVar("T")
URL = "https://policy.example.com/law-enforcement"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HTML = "text/html; charset=utf-8"
PAGE = (
    "<!doctype html><html><head><title>Government requests</title></head><body>"
    "<main><h1>Hong Kong</h1><p>We review every request from 香港 authorities.</p></main>"
    "</body></html>"
).encode()
Handler = Callable[[httpx.Request], httpx.Response]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Sleeps:
    """A fake sleep: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Chunks(httpx.AsyncByteStream):
    """A streamed body that records how many chunks the client pulled."""

    def __init__(self, chunks: Iterable[bytes], pause: float = 0.0) -> None:
        self.chunks = chunks
        self.pause = pause
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.pause:
                await asyncio.sleep(self.pause)
            self.pulled += 1
            yield chunk


async def public(host: str, port: int) -> tuple[IPAddress, ...]:
    """A resolver for respx's fake hosts: every name is one public address."""
    return (ipaddress.ip_address("93.184.215.14"),)


def fetch_with(
    handler: Handler, request: FetchRequest | None = None, sleep: Sleeps | None = None
) -> Snapshot | NotModified:
    """Run fetch against a MockTransport handler, with recorded sleeps and a fixed clock."""

    async def go() -> Snapshot | NotModified:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            return await fetch(
                client, request or FetchRequest(url=URL), sleep=sleep or Sleeps(), now=lambda: NOW
            )

    return run(go())


def fetch_error(
    handler: Handler, request: FetchRequest | None = None, sleep: Sleeps | None = None
) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch_with(handler, request, sleep)
    return caught.value


def respond(
    status: int = 200, body: bytes = PAGE, content_type: str | None = HTML, **headers: str
) -> Handler:
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["content-type"] = content_type

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=all_headers)

    return handler


def sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering with each response (or raising each exception) in turn."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        item = responses[min(len(seen), len(responses) - 1)]
        seen.append(request)
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def ok(body: bytes = PAGE) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": HTML})


# --- success, conditional requests, redirects ------------------------------------------


def test_html_page_becomes_a_snapshot() -> None:
    snapshot = fetch_with(respond())

    assert isinstance(snapshot, Snapshot)
    assert snapshot.url == snapshot.final_url == URL
    assert snapshot.status == 200
    assert snapshot.body == PAGE
    assert snapshot.encoding == "utf-8"
    assert snapshot.fetched_at == NOW
    assert snapshot.elapsed >= 0
    assert snapshot.content_type == HTML
    assert "香港" in snapshot.text()


def test_headers_are_kept_lowercased_with_duplicates() -> None:
    response = httpx.Response(
        200,
        content=PAGE,
        headers=[("Content-Type", HTML), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
    )
    snapshot = fetch_with(lambda request: response)

    assert isinstance(snapshot, Snapshot)
    assert ("set-cookie", "a=1") in snapshot.headers
    assert ("set-cookie", "b=2") in snapshot.headers
    assert all(name == name.lower() for name, _ in snapshot.headers)


@respx.mock
def test_conditional_headers_are_sent_and_304_is_not_modified() -> None:
    route = respx.get(URL).respond(304)
    request = FetchRequest(
        url=URL,
        headers=(("Accept-Language", "en"),),
        validators=Validators(etag='"v1"', last_modified="Wed, 01 May 2024 10:00:00 GMT"),
    )

    async def go() -> Snapshot | NotModified:
        async with make_client(resolver=public) as client:
            return await fetch(client, request, now=lambda: NOW)

    result = run(go())

    assert isinstance(result, NotModified)
    assert result.url == URL
    assert result.fetched_at == NOW
    sent = route.calls.last.request.headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Wed, 01 May 2024 10:00:00 GMT"
    assert sent["accept-language"] == "en"


def test_checks_answered_304_share_one_connection() -> None:
    """A 304 has no body: read to its end, its connection serves the host's next
    check (a new TCP connection for each was a quarter of a 304 fetch's CPU)."""
    tag = Validators(etag='"v1"')
    with LocalSite(keep_alive=True) as site:
        site["/p"] = Page(PAGE, headers={"Content-Type": HTML, "ETag": '"v1"'})

        async def go() -> list[str]:
            async with make_client() as client:
                first = await fetch(client, FetchRequest(url=site.url("/p")))
                site["/p"] = Page(b"", 304, {"ETag": '"v1"'})
                then = [await fetch(client, FetchRequest(url=site.url("/p"), validators=tag))]
                then += [await fetch(client, FetchRequest(url=site.url("/p"), validators=tag))]
                site["/p"] = Page(PAGE, headers={"Content-Type": HTML, "ETag": '"v2"'})
                then += [await fetch(client, FetchRequest(url=site.url("/p"), validators=tag))]
                return [type(r).__name__ for r in (first, *then)]

        kinds = run(go())
    assert kinds == ["Snapshot", "NotModified", "NotModified", "Snapshot"]
    assert len(site.connections) == 4 and len(set(site.connections)) == 1


def test_no_conditional_headers_without_validators() -> None:
    handler, seen = sequence(ok())
    fetch_with(handler)

    assert "if-none-match" not in seen[0].headers
    assert "if-modified-since" not in seen[0].headers


@respx.mock
def test_redirect_is_followed_and_final_url_recorded() -> None:
    moved = "https://policy.example.com/new-home"
    respx.get(URL).respond(301, headers={"location": moved})
    respx.get(moved).respond(200, content=PAGE, headers={"content-type": HTML})

    async def go() -> Snapshot | NotModified:
        async with make_client(resolver=public) as client:
            return await fetch(client, FetchRequest(url=URL))

    snapshot = run(go())

    assert isinstance(snapshot, Snapshot)
    assert snapshot.url == URL
    assert snapshot.final_url == moved


def test_redirect_loop_is_permanent() -> None:
    handler, seen = sequence(httpx.Response(302, headers={"location": URL}))
    error = fetch_error(handler)

    assert error.kind is FailureKind.PERMANENT
    assert "redirect" in str(error)
    assert len(seen) == 6  # the first request and max_redirects=5 follow-ups, no retries


def test_redirect_to_a_non_http_scheme_is_permanent() -> None:
    handler, _ = sequence(
        httpx.Response(302, headers={"location": "ftp://files.example.com/policy"}), ok()
    )
    assert fetch_error(handler).kind is FailureKind.PERMANENT


@pytest.mark.parametrize("url", ["ftp://example.com/policy", "not a url", "https://"])
def test_invalid_url_or_scheme_is_permanent_without_a_request(url: str) -> None:
    handler, seen = sequence(ok())
    error = fetch_error(handler, FetchRequest(url=url))

    assert error.kind is FailureKind.PERMANENT
    assert error.url == url
    assert seen == []


# --- size cap --------------------------------------------------------------------------


def test_oversize_content_length_is_refused_before_reading() -> None:
    body = Chunks([b"<html>" + b"x" * 100])
    response = httpx.Response(
        200, headers={"content-type": HTML, "content-length": "5000000"}, stream=body
    )
    error = fetch_error(lambda request: response, FetchRequest(url=URL, max_bytes=1000))

    assert error.kind is FailureKind.TOO_LARGE
    assert "Content-Length" in str(error)
    assert body.pulled == 0


def test_streamed_body_over_the_cap_is_stopped_early() -> None:
    body = Chunks(b"<p>" + b"x" * 1021 for _ in range(1000))  # ~1 MB, no Content-Length
    response = httpx.Response(200, headers={"content-type": HTML}, stream=body)
    error = fetch_error(lambda request: response, FetchRequest(url=URL, max_bytes=10_000))

    assert error.kind is FailureKind.TOO_LARGE
    assert error.status == 200
    assert body.pulled <= 11


def test_body_exactly_at_the_cap_is_accepted() -> None:
    page = b"<html><body>" + b"x" * 988
    assert len(page) == 1000
    snapshot = fetch_with(respond(body=page), FetchRequest(url=URL, max_bytes=1000))
    assert isinstance(snapshot, Snapshot)


def gzip_of_zeros(megabytes: int) -> bytes:
    """Gzip of many zeros, compressed piecewise so the test never holds them itself."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(megabytes)]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_gzip_bomb_is_too_large_without_inflating_it() -> None:
    bomb = gzip_of_zeros(50)
    assert len(bomb) < 100_000
    response = httpx.Response(
        200,
        headers={"content-type": HTML, "content-encoding": "gzip"},
        stream=httpx.ByteStream(bomb),  # one raw chunk: the worst case for memory
    )
    tracemalloc.start()
    try:
        error = fetch_error(lambda request: response, FetchRequest(url=URL, max_bytes=1_000_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.kind is FailureKind.TOO_LARGE
    assert peak < 3_000_000  # the 1 MB cap plus a piece; inflating it all takes 50 MB


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw deflate
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
def test_compressed_bodies_are_decoded(encoding: str, encode: Callable[[bytes], bytes]) -> None:
    compressed = encode(PAGE)
    response = httpx.Response(
        200,
        headers={"content-type": HTML, "content-encoding": encoding},
        stream=Chunks([compressed[:10], compressed[10:]]),
    )
    snapshot = fetch_with(lambda request: response)

    assert isinstance(snapshot, Snapshot)
    assert snapshot.body == PAGE


def test_unsupported_content_encoding_is_wrong_type() -> None:
    response = httpx.Response(
        200, headers={"content-type": HTML, "content-encoding": "br"}, stream=Chunks([b"\x1b"])
    )
    assert fetch_error(lambda request: response).kind is FailureKind.WRONG_TYPE


def test_corrupt_gzip_is_transient() -> None:
    response = httpx.Response(
        200,
        headers={"content-type": HTML, "content-encoding": "gzip"},
        stream=Chunks([b"definitely not gzip"]),
    )
    error = fetch_error(lambda request: response, FetchRequest(url=URL, retries=0))
    assert error.kind is FailureKind.TRANSIENT


# --- content types and sniffing --------------------------------------------------------


@pytest.mark.parametrize("content_type", ["image/png", "video/mp4", "application/x-msdownload"])
def test_wrong_content_type_is_refused_without_downloading(content_type: str) -> None:
    body = Chunks([b"\x89PNG\r\n..."])
    response = httpx.Response(200, headers={"content-type": content_type}, stream=body)
    error = fetch_error(lambda request: response)

    assert error.kind is FailureKind.WRONG_TYPE
    assert content_type in str(error)
    assert body.pulled == 0


@pytest.mark.parametrize(
    "content_type", ["text/html", "application/xhtml+xml; charset=utf-8", "text/plain"]
)
def test_text_content_types_are_accepted(content_type: str) -> None:
    assert isinstance(fetch_with(respond(content_type=content_type)), Snapshot)


def test_missing_content_type_is_accepted_if_the_body_is_html() -> None:
    assert isinstance(fetch_with(respond(content_type=None)), Snapshot)


def test_missing_content_type_is_refused_if_the_body_is_not_html() -> None:
    error = fetch_error(respond(body=b'{"policy": "json"}', content_type=None))
    assert error.kind is FailureKind.WRONG_TYPE


def test_binary_body_under_an_html_type_is_wrong_type() -> None:
    error = fetch_error(respond(body=b"<html>\x00\x01\x02binary"))
    assert error.kind is FailureKind.WRONG_TYPE


# --- data formats: what formats.decide names is accepted ---------------------------------

PDF_BODY = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj"
ZIP_BODY = b"PK\x05\x06" + bytes(18)  # an empty archive


@pytest.mark.parametrize(
    ("content_type", "body", "url"),
    [
        ("text/csv", b"Country,Requests\nHong Kong,241\n", URL),
        ("text/tab-separated-values", b"Country\tRequests\nHong Kong\t241\n", URL),
        ("application/json", b'{"requests": 241}', URL),
        ("application/vnd.api+json", b'{"requests": 241}', URL),
        ("application/zip", ZIP_BODY, URL),
        ("application/x-zip-compressed", ZIP_BODY, URL),
        ("application/octet-stream", ZIP_BODY, URL),  # known by its magic bytes
        ("application/pdf", PDF_BODY, URL),
        ("text/html", PDF_BODY, URL),  # a PDF served as HTML is still a PDF
        ("text/plain", b"Country,Requests\nHong Kong,241\n", "https://example.org/a.csv"),
        ("application/octet-stream", b"Country,Requests\n", "https://example.org/a.csv"),
    ],
    ids=[
        "csv", "tsv", "json", "json-suffix", "zip", "x-zip", "zip-magic", "pdf",
        "pdf-as-html", "csv-as-text", "csv-as-octets",
    ],
)  # fmt: skip
def test_data_responses_are_accepted(content_type: str, body: bytes, url: str) -> None:
    request = FetchRequest(url=url)
    snapshot = fetch_with(respond(body=body, content_type=content_type), request)
    assert isinstance(snapshot, Snapshot)
    assert snapshot.body == body


def test_octet_stream_is_read_as_csv_when_the_watch_says_so() -> None:
    handler = respond(body=b"Country;Requests\n", content_type="application/octet-stream")
    assert fetch_error(handler).kind is FailureKind.WRONG_TYPE
    request = FetchRequest(url=URL, format=Format.CSV)
    assert isinstance(fetch_with(handler, request), Snapshot)


@pytest.mark.parametrize(
    ("content_type", "declared", "said"),
    [
        ("application/zip", Format.AUTO, "content type application/zip, but the body is no ZIP"),
        ("text/html", Format.ZIP, "the body is no ZIP (format: zip"),
        ("application/pdf", Format.AUTO, "content type application/pdf, but the body is no PDF"),
    ],
)
def test_a_body_without_the_magic_bytes_its_type_promises_is_refused(
    content_type: str, declared: Format, said: str
) -> None:
    handler = respond(body=b"<html><p>Error</p></html>", content_type=content_type)
    error = fetch_error(handler, FetchRequest(url=URL, format=declared))
    assert error.kind is FailureKind.WRONG_TYPE
    assert said in str(error)


def test_a_csv_with_binary_bytes_is_refused() -> None:
    handler = respond(body=b"a,b\n\x00\x01\x02\x03\x04", content_type="text/csv")
    assert fetch_error(handler).kind is FailureKind.WRONG_TYPE
    assert fetch_error(respond(body=b"<html>\x00\x01\x02binary")).kind is FailureKind.WRONG_TYPE


@pytest.mark.parametrize("content_type", ["application/pdf", "text/html", None])
def test_a_pdf_is_accepted_whatever_its_content_type(content_type: str | None) -> None:
    """The PDF extractor reads it (pipeline.read sniffs %PDF, as fetch does)."""
    body = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj"
    snapshot = fetch_with(respond(body=body, content_type=content_type))
    assert isinstance(snapshot, Snapshot) and snapshot.body == body


@pytest.mark.parametrize("content_type", ["text/markdown; charset=utf-8", "text/x-markdown"])
def test_markdown_is_accepted(content_type: str) -> None:
    snapshot = fetch_with(respond(body=b"# Notice\n\nHong Kong", content_type=content_type))
    assert isinstance(snapshot, Snapshot)


def test_utf16_html_with_bom_is_not_mistaken_for_binary() -> None:
    body = "<html><body><p>Hong Kong</p></body></html>".encode("utf-16")
    snapshot = fetch_with(respond(body=body, content_type="text/html"))

    assert isinstance(snapshot, Snapshot)
    assert snapshot.encoding == "utf-16"
    assert "Hong Kong" in snapshot.text()


# --- character encodings ---------------------------------------------------------------

FRENCH = (
    "<html><body><p>Nous examinons chaque demande d\N{RIGHT SINGLE QUOTATION MARK}une "
    "autorité gouvernementale avec soin. Lorsque la loi l\N{RIGHT SINGLE QUOTATION MARK}"
    "exige, nous informons l\N{RIGHT SINGLE QUOTATION MARK}utilisateur concerné "
    "avant de divulguer ses données. Les demandes émanant de pays étrangers "
    "sont traitées selon les traités d\N{RIGHT SINGLE QUOTATION MARK}entraide judiciaire "
    "en vigueur.</p></body></html>"
)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"<p>plain</p>", "text/html; charset=UTF-8", "utf-8"),
        ("<p>Größe</p>".encode("cp1252"), "text/html; charset=windows-1252", "cp1252"),
        ("<p>Größe</p>".encode("cp1252"), 'text/html; charset="ISO-8859-1"', "cp1252"),
        ("<p>日本語</p>".encode("euc_jp"), "text/html; charset=euc-jp", "euc-jp"),
        (
            '<meta charset="big5"><p>香港特別行政區</p>'.encode("big5"),
            "text/html",
            "big5hkscs",
        ),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
            + "<p>日本</p>".encode("shift_jis"),
            "text/html",
            "cp932",
        ),
        (codecs.BOM_UTF8 + "<p>Größe</p>".encode(), "text/html", "utf-8"),
        (codecs.BOM_UTF16_LE + "<p>Größe</p>".encode("utf-16-le"), "text/html", "utf-16"),
        (b"<p>ascii only</p>", "text/html", "utf-8"),
        (b"", "text/html", "utf-8"),
        (b"<p>x</p>", "text/html; charset=no-such-codec", "utf-8"),
        (b"<p>x</p>", "text/html; charset=base64", "utf-8"),  # not a text codec
        (b"<p>x\\u0041</p>", "text/html; charset=unicode_escape", "utf-8"),  # no charset
        (b"<p>+ADw-script+AD4-</p>", "text/html; charset=utf-7", "utf-8"),  # refused
        (b'<meta charset="utf-16"><p>x</p>', "text/html", "utf-8"),  # impossible in ASCII
    ],
    ids=[
        "header",
        "header-cp1252",
        "header-latin1-superset",
        "header-hyphenated",
        "meta-charset-big5",
        "meta-http-equiv",
        "bom-utf8",
        "bom-utf16",
        "ascii",
        "empty",
        "unknown-label",
        "bytes-codec-label",
        "python-only-codec",
        "utf-7",
        "meta-utf16",
    ],
)
def test_detect_encoding(body: bytes, content_type: str, expected: str) -> None:
    assert detect_encoding(body, content_type) == expected


def test_header_wins_over_meta() -> None:
    body = b'<meta charset="utf-8"><p>' + "Größe".encode("cp1252") + b"</p>"
    assert detect_encoding(body, "text/html; charset=cp1252") == "cp1252"


@pytest.mark.parametrize("declared", ["text/html; charset=utf-8", "text/html; charset=ascii"])
def test_lying_header_falls_back_to_detection(declared: str) -> None:
    body = FRENCH.encode("cp1252")
    encoding = detect_encoding(body, declared)

    assert encoding != "utf-8"
    assert body.decode(encoding) == FRENCH


def test_lying_meta_falls_back_to_detection() -> None:
    body = b'<meta charset="utf-8">' + FRENCH.encode("cp1252")
    assert body.decode(detect_encoding(body, "text/html")).endswith(FRENCH)


def test_no_label_detects_a_legacy_encoding() -> None:
    text = "<p>香港特別行政區政府要求提供用戶資料。我們會審查每一項政府要求。</p>"
    body = text.encode("big5")
    assert body.decode(detect_encoding(body, "text/html")) == text


def test_snapshot_encoding_comes_from_meta() -> None:
    body = '<html><head><meta charset="gb2312"></head><body>香港</body></html>'.encode("gbk")
    snapshot = fetch_with(respond(body=body, content_type="text/html"))

    assert isinstance(snapshot, Snapshot)
    assert snapshot.encoding == "gb18030"
    assert "香港" in snapshot.text()


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=2000), content_type=st.text(max_size=60))
def test_detect_encoding_always_names_a_text_codec(body: bytes, content_type: str) -> None:
    encoding = detect_encoding(body, content_type)
    body.decode(encoding, errors="replace")  # raises LookupError for a bad name


# --- retries ---------------------------------------------------------------------------


def test_503_then_200_is_retried_after_a_jittered_backoff() -> None:
    handler, seen = sequence(httpx.Response(503), ok())
    sleeps = Sleeps()
    snapshot = fetch_with(handler, sleep=sleeps)

    assert isinstance(snapshot, Snapshot)
    assert len(seen) == 2
    assert len(sleeps.calls) == 1
    assert 0 <= sleeps.calls[0] <= 1.0  # full jitter over base 1s


def test_backoff_grows_exponentially() -> None:
    handler, _ = sequence(httpx.Response(500))
    sleeps = Sleeps()
    fetch_error(handler, FetchRequest(url=URL, retries=4, deadline=600), sleeps)

    assert len(sleeps.calls) == 4
    assert all(0 <= delay <= 2**n for n, delay in enumerate(sleeps.calls))


@pytest.mark.parametrize(
    "retry_after", ["7", format_datetime(NOW + timedelta(seconds=7), usegmt=True)]
)
def test_429_retry_after_is_honoured(retry_after: str) -> None:
    handler, _ = sequence(httpx.Response(429, headers={"retry-after": retry_after}), ok())
    sleeps = Sleeps()
    snapshot = fetch_with(handler, sleep=sleeps)

    assert isinstance(snapshot, Snapshot)
    assert sleeps.calls == [7.0]


def test_retry_after_beyond_the_deadline_gives_up_at_once() -> None:
    handler, seen = sequence(httpx.Response(503, headers={"retry-after": "3600"}), ok())
    sleeps = Sleeps()
    error = fetch_error(handler, FetchRequest(url=URL, deadline=60), sleeps)

    assert error.kind is FailureKind.TRANSIENT
    assert error.status == 503
    assert sleeps.calls == []
    assert len(seen) == 1


def test_retries_exhausted_is_transient_with_status() -> None:
    handler, seen = sequence(httpx.Response(502))
    sleeps = Sleeps()
    error = fetch_error(handler, FetchRequest(url=URL, retries=2), sleeps)

    assert error.kind is FailureKind.TRANSIENT
    assert error.status == 502
    assert "502" in str(error)
    assert len(seen) == 3
    assert len(sleeps.calls) == 2


def test_timeout_is_transient_and_retried() -> None:
    handler, seen = sequence(httpx.ReadTimeout("timed out"))
    error = fetch_error(handler, FetchRequest(url=URL, retries=1))

    assert error.kind is FailureKind.TRANSIENT
    assert "timed out" in str(error)
    assert len(seen) == 2


def test_connection_refused_is_transient() -> None:
    handler, _ = sequence(httpx.ConnectError("[Errno 111] Connection refused"))
    error = fetch_error(handler, FetchRequest(url=URL, retries=0))

    assert error.kind is FailureKind.TRANSIENT
    assert "Connection refused" in str(error)


@pytest.mark.parametrize(
    "message",
    [
        "[Errno -2] Name or service not known",
        "[Errno 8] nodename nor servname provided, or not known",
        "[Errno 11001] getaddrinfo failed",
        "[Errno -5] No address associated with hostname",
    ],
)
def test_dns_failure_is_permanent_and_not_retried(message: str) -> None:
    handler, seen = sequence(httpx.ConnectError(message))
    error = fetch_error(handler)

    assert error.kind is FailureKind.PERMANENT
    assert "DNS" in str(error)
    assert len(seen) == 1


def test_temporary_dns_failure_is_transient() -> None:
    handler, _ = sequence(httpx.ConnectError("[Errno -3] Temporary failure in name resolution"))
    assert fetch_error(handler, FetchRequest(url=URL, retries=0)).kind is FailureKind.TRANSIENT


def test_slow_body_hits_the_overall_deadline() -> None:
    drip = Chunks((b"<p>a</p>" for _ in range(1000)), pause=0.05)  # would take 50 s
    response = httpx.Response(200, headers={"content-type": HTML}, stream=drip)
    error = fetch_error(lambda request: response, FetchRequest(url=URL, deadline=0.3))

    assert error.kind is FailureKind.TRANSIENT
    assert "deadline" in str(error)
    assert 0 < drip.pulled < 100  # it hung up early instead of reading the 1,000 chunks


# --- status classification -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, FailureKind.PERMANENT),
        (410, FailureKind.PERMANENT),
        (400, FailureKind.PERMANENT),
        (401, FailureKind.BLOCKED),
        (403, FailureKind.BLOCKED),
        (451, FailureKind.BLOCKED),
        (500, FailureKind.TRANSIENT),
        (429, FailureKind.TRANSIENT),
    ],
)
def test_status_is_classified(status: int, kind: FailureKind) -> None:
    handler, seen = sequence(httpx.Response(status, text="<html><body>error</body></html>"))
    error = fetch_error(handler, FetchRequest(url=URL, retries=1))

    assert error.kind is kind
    assert error.status == status
    assert str(status) in str(error)
    assert error.url == URL
    assert len(seen) == (2 if kind is FailureKind.TRANSIENT else 1)


# --- bot walls -------------------------------------------------------------------------

CLOUDFLARE = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head><body>
<div class="main-wrapper"><noscript>Enable JavaScript and cookies to continue</noscript>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "policy.example.com"};})();
</script></div></body></html>"""
AKAMAI = b"""<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY><H1>Access Denied</H1>
You don't have permission to access this page on this server.<P>
Reference&#32;#18.2d351ab8.1715600000.1a2b3c4d</BODY></HTML>""".replace(b"&#32;", b" ")
PERIMETERX = b"""<html><head><title>Access to this page has been denied</title></head>
<body><div id="px-captcha"></div><p>Press &amp; Hold to confirm you are a human.</p>
</body></html>"""
DATADOME = b"""<html><head><title>policy.example.com</title></head><body>
<script>var dd={'rt':'c','host':'geo.captcha-delivery.com'}</script>
<script src="https://ct.captcha-delivery.com/c.js"></script></body></html>"""
INCAPSULA = b"""<html><head><META NAME="robots" CONTENT="noindex,nofollow"></head><body>
<iframe src="/_Incapsula_Resource?CWUDNSAI=1">Request unsuccessful. Incapsula incident ID:
0-123</iframe></body></html>"""
CAPTCHA_TITLE = b"""<html><head><title>Security CAPTCHA</title></head><body>
<form><img src="/captcha.png"><input name="answer"></form></body></html>"""


@pytest.mark.parametrize(
    "page",
    [CLOUDFLARE, AKAMAI, PERIMETERX, DATADOME, INCAPSULA, CAPTCHA_TITLE],
    ids=["cloudflare", "akamai", "perimeterx", "datadome", "incapsula", "captcha-title"],
)
def test_challenge_page_with_200_is_blocked(page: bytes) -> None:
    error = fetch_error(respond(body=page))

    assert error.kind is FailureKind.BLOCKED
    assert error.status == 200
    assert "challenge" in str(error)


def test_cloudflare_challenge_on_503_is_blocked_and_not_retried() -> None:
    handler, seen = sequence(
        httpx.Response(503, content=CLOUDFLARE, headers={"content-type": "text/html"})
    )
    error = fetch_error(handler)

    assert error.kind is FailureKind.BLOCKED
    assert error.status == 503
    assert len(seen) == 1


def test_long_policy_page_mentioning_captcha_is_not_blocked() -> None:
    paragraph = (
        "<p>We may ask you to complete a captcha or to verify you are human when we "
        "detect automated access. Access denied requests are logged with a reference # "
        "so that our law enforcement response team can review them.</p>"
    )
    page = f"<html><head><title>Privacy Policy</title></head><body>{paragraph * 30}</body></html>"
    snapshot = fetch_with(respond(body=page.encode()))

    assert isinstance(snapshot, Snapshot)


def test_long_policy_page_about_captchas_in_its_title_is_not_blocked() -> None:
    paragraph = "<p>These terms govern your use of the reCAPTCHA service and its data.</p>"
    page = f"<html><head><title>reCAPTCHA Terms of Service</title></head><body>{paragraph * 40}"
    assert isinstance(fetch_with(respond(body=page.encode())), Snapshot)


def test_long_page_with_a_strong_marker_in_its_title_is_blocked() -> None:
    page = b"<html><head><title>Just a moment...</title></head><body>" + b"<p>wait</p>" * 500
    assert fetch_error(respond(body=page)).kind is FailureKind.BLOCKED


def test_every_marker_is_lowercase() -> None:
    assert all(word == word.lower() for m in CHALLENGE_MARKERS for word in m.words)


# --- client and host limiter -------------------------------------------------------------


@pytest.mark.parametrize("user_agent", [None, "research-desk/1.0 (+mailto:desk@example.org)"])
def test_make_client_sets_the_user_agent(user_agent: str | None) -> None:
    handler, seen = sequence(ok())

    async def go() -> None:
        transport = httpx.MockTransport(handler)
        if user_agent is None:
            client = make_client(transport=transport)
        else:
            client = make_client(user_agent=user_agent, transport=transport)
        async with client:
            await fetch(client, FetchRequest(url=URL))
            assert not client.follow_redirects  # fetch follows them, hop by hop
            assert client.max_redirects == 5

    run(go())

    assert seen[0].headers["user-agent"] == (user_agent or DEFAULT_USER_AGENT)
    assert seen[0].headers["accept-encoding"] == "gzip, deflate"
    assert DEFAULT_USER_AGENT.startswith("monitor/")


class FakeTime:
    """A clock that only moves when someone sleeps on it; records when sleepers wake."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.wakes: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wakes.append(self.now + seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_host_limiter_spaces_out_request_starts_per_host() -> None:
    fake = FakeTime()
    limiter = HostLimiter(per_host=1, delay=1.5, clock=fake.clock, sleep=fake.sleep)
    starts: list[tuple[str, float]] = []

    async def go() -> None:
        for host in ["a.example", "a.example", "b.example", "A.EXAMPLE"]:
            async with limiter.slot(host):
                starts.append((host.lower(), fake.now))

    run(go())

    assert starts == [
        ("a.example", 100.0),
        ("a.example", 101.5),
        ("b.example", 101.5),  # another host does not wait
        ("a.example", 103.0),
    ]


def test_host_limiter_bounds_concurrency_per_host() -> None:
    limiter = HostLimiter(per_host=2, delay=0)
    active = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}

    async def visit(host: str) -> None:
        async with limiter.slot(host):
            active[host] += 1
            most[host] = max(most[host], active[host])
            await asyncio.sleep(0.001)
            active[host] -= 1

    async def go() -> None:
        await asyncio.gather(*(visit(host) for host in "aaaaaabbb"))

    run(go())

    assert most == {"a": 2, "b": 2}


def test_concurrent_waiters_queue_one_delay_apart() -> None:
    fake = FakeTime()
    limiter = HostLimiter(per_host=3, delay=2.0, clock=fake.clock, sleep=fake.sleep)

    async def visit() -> None:
        async with limiter.slot("a.example"):
            pass

    async def go() -> None:
        await asyncio.gather(visit(), visit(), visit())

    run(go())

    assert sorted(fake.wakes) == [102.0, 104.0]  # the first starts at once, at 100


def test_fetch_goes_through_the_limiter() -> None:
    fake = FakeTime()
    limiter = HostLimiter(per_host=1, delay=5.0, clock=fake.clock, sleep=fake.sleep)
    handler, seen = sequence(ok())

    async def go() -> None:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            for _ in range(2):
                await fetch(client, FetchRequest(url=URL), limiter=limiter)

    run(go())

    assert len(seen) == 2
    assert fake.sleeps == [5.0]


def test_waiting_for_the_hosts_turn_is_no_part_of_the_deadline() -> None:
    """Watches of one site queue behind each other; none of them fails for it."""
    limiter = HostLimiter(per_host=1, delay=0.3)  # real time: the deadline is real time
    handler, seen = sequence(ok())

    async def go() -> list[Snapshot | NotModified]:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            request = FetchRequest(url=URL, deadline=0.2)
            return await asyncio.gather(*(fetch(client, request, limiter=limiter) for _ in "abc"))

    assert all(isinstance(result, Snapshot) for result in run(go()))
    assert len(seen) == 3


def test_host_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        HostLimiter(per_host=0)


def test_a_stray_nul_in_a_real_page_is_still_text() -> None:
    body = b"<html><body><p>Hong Kong requests\x00 are reviewed.</p>" + b"<p>More text.</p>" * 20
    assert isinstance(fetch_with(respond(body=body)), Snapshot)


class CutOff(httpx.AsyncByteStream):
    """A body that breaks off after its first piece, as a dying server's does."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield PAGE[:100]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def test_a_body_cut_off_keeps_the_status_the_server_answered_with() -> None:
    """A server that answered is reachable: this is no sign of the monitor being offline."""
    error = fetch_error(
        lambda request: httpx.Response(200, headers={"content-type": HTML}, stream=CutOff())
    )
    assert error.kind is FailureKind.TRANSIENT and error.status == 200
    assert str(error).startswith("HTTP 200: connection failed: peer closed")
