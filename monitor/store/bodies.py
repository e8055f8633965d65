"""Raw bodies: compressed, deduplicated by SHA-256, delta-encoded against keyframes.

Raw bodies are the proof of what a page said, so every one is kept. Consecutive
bodies of one page differ in a timestamp or a token, so each body is compressed with
zstd against the watch's last *keyframe* body as a dictionary: an unchanged page
costs a few hundred bytes per check. A watch's first body is compressed against a
full body of the same site (remembered in `meta` as `keyframe:<host>`) and is then
the watch's keyframe, so reading any body needs at most two others (no long chains).

A body that only an unchanged check saw (its text is the latest version's) is kept
only as a small delta. One that differs from its keyframe in much more than the
text (a page that carries megabytes of random markup or comments each time) is not
kept at all: its row says its size and SHA-256 (`dropped`), so the check still
names what was served, but the store does not grow by a whole page per check. The
proof of the text is the body the version was extracted from, which is kept. A
body removed by retention (`monitor prune`) is `pruned` the same way.

A version's document is compressed with the raw body it was extracted from as its
dictionary (`pack_document`): the body holds the document's text, so a version costs
its structure, not its text again. Reading it takes that body (at most three blobs
in all). Documents written before are one zstd frame each (`pack` / `unpack`), and
versions written by schema 1 and 2 zlib, which `unpack` still reads.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import zstandard
from sqlalchemy import Connection, Select, bindparam, insert, select
from sqlalchemy import update as sa_update

from monitor.errors import NotKept, StoreError
from monitor.model import Snapshot
from monitor.store.schema import bodies, meta

KEYFRAME_SHARE = 0.1  # a delta from the watch's keyframe above this share of the raw body
# starts a new keyframe (about half of what the whole body compresses to)
SITE_SHARE = 0.125  # a first body's delta from its site's keyframe up to this share of the
# raw body is kept as it is; above it, the whole body is compressed too and the smaller kept
LEVEL = 3  # zstd level: 4x faster than 10 for ~10 % more bytes; deltas make the rest
DICTIONARY_LIMIT = 4_000_000  # a larger body is not a document's dictionary (indexing it costs)
RECENT_KEPT = 4_000_000  # bytes of bodies remembered in the process (see read_body)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_AGAINST_BODY = b"\x00zb"  # a document compressed with its snapshot's body as dictionary
DROPPED = "dropped"  # codec of a body not kept: an unchanged check's, far from its keyframe
PRUNED = "pruned"  # codec of a body removed by retention
NOT_KEPT = {
    DROPPED: "an unchanged check's body, far from its keyframe; the version's body is kept",
    PRUNED: "removed by retention: defaults.keep.raw",
}


@dataclass(frozen=True)
class Held:
    """What the store holds for a body about to be stored, read with the watch's state
    in the check's one query: the codec of a row with the body's hash (None: no row)
    and the site's keyframe (None: the site has none yet)."""

    codec: str | None
    site_keyframe: str | None


def site_key(snap: Snapshot) -> str:
    """The `meta` key of the keyframe of the snapshot's site (its final host)."""
    return "keyframe:" + (urlsplit(snap.final_url).hostname or "")


def pack(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=LEVEL).compress(data)


def unpack(blob: bytes) -> bytes:
    """zstd frames (current), or zlib (versions written by schema 1 and 2)."""
    if blob[:4] == _ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().decompress(blob)
    return zlib.decompress(blob)


def pack_document(document: bytes, body: bytes) -> bytes:
    """A version's document, compressed with the raw body it was extracted from as
    dictionary: the body holds its text, so what is left is the structure (a 150 KB
    document of a 180 KB page: about 9 KB instead of 30 KB). Reading it needs that
    body, which is kept with the version (retention re-packs it before pruning)."""
    if len(body) > DICTIONARY_LIMIT:
        return pack(document)
    return _AGAINST_BODY + _compressor(_dictionary(body)).compress(document)


def needs_body(blob: bytes) -> bool:
    """Whether a stored document is read with its snapshot's body (`pack_document`)."""
    return blob[: len(_AGAINST_BODY)] == _AGAINST_BODY


def unpack_document(blob: bytes, body: Callable[[], bytes]) -> bytes:
    """A stored document's JSON; `body` reads its snapshot's raw body, asked only when
    the document was compressed against it."""
    if not needs_body(blob):
        return unpack(blob)
    return _decompress(blob[len(_AGAINST_BODY) :], body())


def store_body(
    conn: Connection, snap: Snapshot, keyframe: str | None, held: Held, *, optional: bool = False
) -> str | None:
    """Store a body once, compressed against a keyframe: the watch's own, or for its
    first body its site's (pages of a site share their template).
    Return the keyframe the watch keeps: a first body stored against its site's
    becomes the watch's own, since its next bodies differ from it by a timestamp and
    from the other page by a whole text (140 bytes against 10 KB a check).

    Each body is compressed once, against its keyframe, and kept as that delta when
    the delta is small against the raw body; only a first body whose delta is not
    small is compressed whole too, to keep the smaller. An `optional` body (an
    unchanged check's) that would need a keyframe of its own is not kept: only its
    size and hash are (`dropped`)."""
    body, sha = snap.body, snap.sha256
    if held.codec is not None and (optional or held.codec not in NOT_KEPT):
        return keyframe  # stored already (a body not kept is kept now if a version needs it)
    put = partial(_put_body, conn, sha, len(body), update=held.codec is not None)
    base_sha = keyframe or held.site_keyframe
    if base_sha is not None:
        delta = _compressor(_keyframe(conn, base_sha)).compress(body)
        if len(delta) <= (KEYFRAME_SHARE if keyframe else SITE_SHARE) * len(body):
            put("zstd-dict", base_sha, delta)
            return keyframe or _remember(sha, body)
        if optional and keyframe is not None:
            put(DROPPED, None, b"")
            return keyframe
        whole = pack(body)
        if keyframe is None and len(delta) < len(whole):
            put("zstd-dict", base_sha, delta)
            return _remember(sha, body)
    else:
        whole = pack(body)
    put("zstd", None, whole)
    _set_site_keyframe(conn, site_key(snap), sha, exists=held.site_keyframe is not None)
    return _remember(sha, body)


def read_body(conn: Connection, sha: str, *, recent: bool = False) -> bytes:
    """The exact bytes of a body, following its keyframes (at most two hops), read
    with them in one query. `recent`: taken from (and kept in) the bodies the process
    read or wrote last, for a body that serves as a dictionary: a check reads the
    latest version's body with its document, then compresses the next body against
    the watch's keyframe, often the same one. `monitor verify` reads the store."""
    if recent and (hit := _recall(sha)) is not None:
        return hit
    chain = conn.execute(_CHAIN, {"chain_sha": sha}).first()
    if chain is None:
        raise StoreError(f"missing body {sha}")
    links = [chain[i : i + 3] for i in range(0, len(chain), 3)]  # (codec, base, data) each
    data = _decoded(conn, sha, links)
    if recent:
        _keep(sha, data)
    return data


def _decoded(conn: Connection, sha: str, links: list[Any]) -> bytes:
    codec, base, data = links[0]
    if codec in NOT_KEPT:
        raise NotKept(f"the raw body {sha[:12]} is not kept ({NOT_KEPT[codec]})")
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompress(data)
    if len(links) == 1 or links[1][0] is None:  # deeper than the query reads (or missing)
        return _decompress(data, read_body(conn, base))
    return _decompress(data, _decoded(conn, base, links[1:]))


def _chain() -> Select[Any]:
    """A body with its keyframe and that one's keyframe: (codec, base, data) x 3."""
    own, first, second = (bodies.alias(name) for name in ("own", "first", "second"))
    links = [c for t in (own, first, second) for c in (t.c.codec, t.c.base, t.c.data)]
    joined = own.outerjoin(first, first.c.sha256 == own.c.base).outerjoin(
        second, second.c.sha256 == first.c.base
    )
    return select(*links).select_from(joined).where(own.c.sha256 == bindparam("chain_sha"))


_CHAIN = _chain()


def _put_body(
    conn: Connection,
    sha: str,
    size: int,
    codec: str,
    base: str | None,
    data: bytes,
    *,
    update: bool,
) -> None:
    values = {"size": size, "codec": codec, "base": base, "data": data}
    if update:
        conn.execute(sa_update(bodies).where(bodies.c.sha256 == sha).values(**values))
    else:
        conn.execute(_INSERT_BODY, {"sha256": sha, **values})


_INSERT_BODY = insert(bodies)


def _set_site_keyframe(conn: Connection, key: str, sha: str, *, exists: bool) -> None:
    if exists:
        conn.execute(sa_update(meta).where(meta.c.key == key).values(value=sha))
    else:
        conn.execute(insert(meta).values(key=key, value=sha))


_recent: OrderedDict[str, bytes] = OrderedDict()  # body by hash, least recent first
_recent_held = [0]  # their bytes
_recent_lock = threading.Lock()


def _keyframe(conn: Connection, sha: str) -> zstandard.ZstdCompressionDict:
    """A keyframe as a dictionary, from the bodies the process used last when it is
    one of them: the first bodies of a site's pages compress against the same one,
    and a watch's keyframe is often its latest version's body, read just before."""
    return _dictionary(read_body(conn, sha, recent=True))


def _remember(sha: str, body: bytes) -> str:
    """Keep a body that just became a keyframe among the recent ones; return its hash."""
    _keep(sha, body)
    return sha


def _recall(sha: str) -> bytes | None:
    """A recently used body. A body never changes under its hash, so it is right."""
    with _recent_lock:
        if (hit := _recent.get(sha)) is not None:
            _recent.move_to_end(sha)
        return hit


def _keep(sha: str, data: bytes) -> None:
    if len(data) > RECENT_KEPT // 8:
        return
    with _recent_lock:
        if (old := _recent.pop(sha, None)) is not None:
            _recent_held[0] -= len(old)
        _recent[sha] = data
        _recent_held[0] += len(data)
        while _recent_held[0] > RECENT_KEPT:
            _recent_held[0] -= len(_recent.popitem(last=False)[1])


def _dictionary(data: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def _compressor(dictionary: zstandard.ZstdCompressionDict) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary)


def _decompress(data: bytes, base: bytes) -> bytes:
    """A zstd frame compressed with `base` as its (raw content) dictionary."""
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(data)
