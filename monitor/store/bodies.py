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

Documents of versions use the same zstd frames (`pack` / `unpack`); versions written
by schema 1 and 2 are zlib, which `unpack` still reads.
"""

from __future__ import annotations

import zlib
from functools import partial
from urllib.parse import urlsplit

import zstandard
from sqlalchemy import Connection, insert, select
from sqlalchemy import update as sa_update

from monitor.errors import NotKept, StoreError
from monitor.model import Snapshot
from monitor.store.schema import bodies, get_meta, set_meta

KEYFRAME_RATIO = 0.5  # a delta larger than this share of a full encoding starts a new keyframe
DELTA_SHARE = 0.05  # a delta this small (share of the raw body) is kept without comparing
LEVEL = 3  # zstd level: 4x faster than 10 for ~10 % more bytes; deltas make the rest
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DROPPED = "dropped"  # codec of a body not kept: an unchanged check's, far from its keyframe
PRUNED = "pruned"  # codec of a body removed by retention
NOT_KEPT = {
    DROPPED: "an unchanged check's body, far from its keyframe; the version's body is kept",
    PRUNED: "removed by retention: defaults.keep.raw",
}


def pack(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=LEVEL).compress(data)


def unpack(blob: bytes) -> bytes:
    """zstd frames (current), or zlib (versions written by schema 1 and 2)."""
    if blob[:4] == _ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().decompress(blob)
    return zlib.decompress(blob)


def store_body(
    conn: Connection, snap: Snapshot, keyframe: str | None, *, optional: bool = False
) -> str | None:
    """Store a body once, compressed against a keyframe: the watch's own, or for its
    first body the latest of the same site (pages of a site share their template).
    Return the keyframe the watch keeps: a first body stored against its site's
    becomes the watch's own, since its next bodies differ from it by a timestamp and
    from the other page by a whole text (140 bytes against 10 KB a check).

    An `optional` body (an unchanged check's) that would need a keyframe of its own
    is not kept: only its size and hash are (`dropped`)."""
    body, sha = snap.body, snap.sha256
    held = conn.execute(select(bodies.c.codec).where(bodies.c.sha256 == sha)).scalar()
    if held is not None and (optional or held not in NOT_KEPT):
        return keyframe  # stored already (a body not kept is kept now if a version needs it)
    put = partial(_put_body, conn, sha, len(body), update=held is not None)
    site = "keyframe:" + (urlsplit(snap.final_url).hostname or "")
    base_sha = keyframe or get_meta(conn, site)
    if base_sha is not None:
        delta = _compressor(read_body(conn, base_sha)).compress(body)
        good = len(delta) <= DELTA_SHARE * len(body)
        if good or len(delta) <= KEYFRAME_RATIO * len(pack(body)):
            put("zstd-dict", base_sha, delta)
            return keyframe or sha
    if optional and keyframe is not None:
        put(DROPPED, None, b"")
        return keyframe
    put("zstd", None, pack(body))
    set_meta(conn, site, sha)
    return sha


def read_body(conn: Connection, sha: str) -> bytes:
    """The exact bytes of a body, following its keyframe (at most two hops)."""
    row = conn.execute(select(bodies).where(bodies.c.sha256 == sha)).first()
    if row is None:
        raise StoreError(f"missing body {sha}")
    m = row._mapping
    if m["codec"] in NOT_KEPT:
        raise NotKept(f"the raw body {sha[:12]} is not kept ({NOT_KEPT[m['codec']]})")
    if m["codec"] == "zstd":
        return zstandard.ZstdDecompressor().decompress(m["data"])
    base = read_body(conn, m["base"])
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(m["data"])


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
        conn.execute(insert(bodies).values(sha256=sha, **values))


def _compressor(base: bytes) -> zstandard.ZstdCompressor:
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary)
