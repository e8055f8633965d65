"""Reaching the database: URLs, engines, and SQLAlchemy errors turned into StoreError.

A plain path means a SQLite file. SQLite creates a file on first connect, so a
command that only reads asks `connect(url, create=False)` and gets a StoreError
for a store that does not exist, instead of an empty `monitor.db` left behind.

A new SQLite store is created readable by its owner only (0600, whatever the umask;
SQLite gives its -wal and -shm files the mode of the database file). An existing
store that others may read is left as it is, since an operator may share it on
purpose, and said so in a warning each time it is opened.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from monitor.errors import StoreError

log = logging.getLogger("monitor.store")
PRIVATE = 0o600  # a store's mode: its owner reads and writes, no one else


def database_url(value: str) -> str:
    """Accept a SQLAlchemy URL, or a plain path meaning a SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def redact_db(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def reason(exc: Exception) -> str:
    """The driver's own message, without SQLAlchemy's statement dump and links."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


def connect(url: str, *, create: bool) -> Engine:
    """An engine for `url`; with `create=False` a missing SQLite file is an error."""
    full = database_url(url)
    if not create:
        _require_file(full, url)
    _private_file(full, create=create)
    engine = _engine(full)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas if create else _sqlite_read_pragmas)
    return engine


def _engine(full: str) -> Engine:
    """The engine; a database driver that is not installed is a StoreError saying what to do."""
    url = make_url(full)
    if url.drivername == "postgresql":  # SQLAlchemy 2.0 would pick psycopg2; we ship psycopg 3
        url = url.set(drivername="postgresql+psycopg")
    try:
        return create_engine(url)
    except ImportError as exc:
        if url.get_backend_name() == "postgresql":
            raise StoreError(
                "the PostgreSQL driver is not installed: pip install 'monitor[postgres]'"
            ) from exc
        raise StoreError(f"the database driver {exc.name or ''} is not installed") from exc


class MissingStore(StoreError):
    """A command that only reads was pointed at a store nothing has written yet."""

    def __init__(self, url: str) -> None:
        super().__init__(f"no store at {redact_db(url)}: nothing has run with this --db yet")


def _require_file(full: str, url: str) -> None:
    path = _sqlite_path(full)
    if path is not None and not Path(path).exists():
        raise MissingStore(url)


def _private_file(full: str, *, create: bool) -> None:
    """Create a new SQLite store 0600 before SQLite does (it would honour the umask),
    and warn about an existing one, or its -wal/-shm files, that others may read."""
    path = _sqlite_path(full)
    if path is None:
        return
    if create:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(exc.strerror or str(exc)) from exc
        else:
            os.fchmod(fd, PRIVATE)  # the umask may have taken the owner's bits too
            os.close(fd)
    for name in (path, f"{path}-wal", f"{path}-shm"):
        _warn_if_shared(Path(name))


def _warn_if_shared(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "the store file %s can be read by other users (mode %04o): chmod 600 %s",
            path,
            mode,
            path,
        )


def _sqlite_path(full: str) -> str | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(full)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    return None if path.startswith("file:") else path


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")  # first: another process may be creating it
    _write_ahead(cursor)
    cursor.close()
    _sqlite_read_pragmas(dbapi_connection, _record)


WAL_WAIT = 10.0  # seconds a new store's first openers wait for one of them to switch it
_WAL_RETRY = 0.01  # seconds between two tries


def _write_ahead(cursor: Any) -> None:
    """Put the store in WAL mode (persistent: set once, by whoever creates it).

    Switching takes the file for itself, and SQLite does not wait for that (its busy
    handler is not asked): processes opening a new store at once find it locked. They
    try again until one of them has switched it; a store in WAL mode already is only
    asked. Storage that cannot do WAL (an in-memory database, a file system without
    shared memory) answers with the mode it keeps, which is used as it is."""
    import sqlite3  # the driver SQLAlchemy loaded for this SQLite store

    deadline = time.monotonic() + WAL_WAIT
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise StoreError("the store could not be put in WAL mode: another process holds it")
        time.sleep(_WAL_RETRY)


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection settings; setting WAL would write to a file that is not a store."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
