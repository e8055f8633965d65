"""Turns: what one process at a time may do with a store (deliver its ledger).

A turn is a lock the operating system or the database drops when its holder dies, so
a process killed mid-send never keeps the others waiting: on SQLite an exclusive
`flock` on a file beside the store (`monitor.db-deliver.lock`, mode 0600), on
PostgreSQL a session advisory lock held on a connection of its own. A turn is only
ever tried, never waited for inside a call, so an event loop can poll for it without
blocking.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.store.connection import PRIVATE

_TURNS = 0x7475726E  # "turn": the advisory locks of turns are (this, a hash of the name)


class Turn:
    """One process's turn at `name` on a store: `take()` it, then `release()` it."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self._fd: int | None = None
        self._conn: Connection | None = None

    def take(self) -> bool:
        """Take the turn if no other process has it; False (at once) if one does."""
        try:
            if self.engine.dialect.name == "sqlite":
                return self._take_file()
            return self._take_lock()
        except (OSError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot take the {self.name} turn: {exc}") from exc

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops its lock
            self._fd = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:  # a pooled connection outlives the turn: its session lock must go
                conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), self._key)
                conn.commit()
            except SQLAlchemyError:
                conn.invalidate()  # a connection that is thrown away drops its locks too
            finally:
                conn.close()

    @property
    def _key(self) -> dict[str, int]:
        return {"a": _TURNS, "b": zlib.crc32(self.name.encode()) & 0x7FFFFFFF}

    def _take_lock(self) -> bool:
        conn = self.engine.connect()
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), self._key).scalar()
        conn.commit()
        if taken:
            self._conn = conn
            return True
        conn.close()
        return False

    def _take_file(self) -> bool:
        database = make_url(str(self.engine.url)).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return True  # a store only this process sees
        fd = os.open(Path(f"{database}-{self.name}.lock"), os.O_RDONLY | os.O_CREAT, PRIVATE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True
