"""What several workers over one database agree on through it: one order's steps at a
time, one leader for the background duties, and word of a changed order.

On SQLite (one process) these are plain threading locks and a direct call; on
PostgreSQL they are advisory locks and ``LISTEN/NOTIFY``, so they hold across processes
and machines, and a worker that dies releases what it held with its connections.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("epay_tui.server")

LEADER_KEY = 1701863802
"""The advisory lock whose holder runs the background duties (expiry, notify retries)."""
CHANGES_CHANNEL = "epay_order_changed"
"""The ``NOTIFY`` channel: its payload is the number of an order that changed."""
LISTEN_POLL_SECONDS = 0.25
"""How often the listener looks up from waiting to see whether it should stop."""


def lock_key(key: str) -> int:
    """A stable 63-bit advisory-lock number for ``key`` (the same in every worker)."""
    return (zlib.crc32(key.encode()) << 20) | (zlib.adler32(key.encode()) & 0xFFFFF)


class KeyedLocks:
    """One re-entrant lock per key (an order number) within this process."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.RLock] = defaultdict(threading.RLock)
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks[key]
        with lock:
            yield


class SharedLocks(KeyedLocks):
    """Keyed locks that hold across workers: this process's lock first (one connection
    per key waits at the database, not one per thread), then a PostgreSQL session
    advisory lock on a connection of its own, released when the step ends or the worker
    dies. Re-entrant within a thread, like :class:`KeyedLocks`."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        super().__init__()
        self._connect = connect
        self._held = threading.local()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        held: set[str] = self._held.__dict__.setdefault("keys", set())
        if key in held:
            yield
            return
        with super().hold(key):
            connection = self._connect()
            try:
                connection.execute("SELECT pg_advisory_lock(%s)", (lock_key(key),))
                held.add(key)
                try:
                    yield
                finally:
                    held.discard(key)
                    connection.execute("SELECT pg_advisory_unlock(%s)", (lock_key(key),))
            finally:
                connection.close()


class Leadership:
    """Whether this worker runs the background duties: on PostgreSQL the one holding
    :data:`LEADER_KEY` on a connection kept for it; when that worker dies its connection
    closes, the lock is free, and the next worker to ask takes it over. The others keep
    their connection too and ask on it (no new connection per tick)."""

    def __init__(self, connect: Callable[[], Any] | None) -> None:
        self._connect = connect
        self._connection: Any = None
        self._leading = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """True while this worker leads (always, with one process on SQLite)."""
        if self._connect is None:
            return True
        import psycopg  # only on PostgreSQL

        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                if self._leading:
                    self._connection.execute("SELECT 1")  # connected, so still holding it
                    return True
                asked = "SELECT pg_try_advisory_lock(%s)"
                self._leading = self._connection.execute(asked, (LEADER_KEY,)).fetchone()[0]
            except psycopg.Error as exc:  # the database went away: the lock with it
                log.warning("could not ask for the background duties: %s", exc)
                self._drop()
                return False
            if self._leading:
                log.info("this worker runs the background duties")
            return self._leading

    def _drop(self) -> None:
        connection, self._connection, self._leading = self._connection, None, False
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def resign(self) -> None:
        with self._lock:
            self._drop()


class ChangeFeed:
    """Word that an order changed, to every worker: ``NOTIFY`` in the transaction that
    changed it (so it is heard only once committed), and a listener thread per worker
    that hands each order number to ``heard``. If the listening connection breaks,
    ``heard_all`` is called once it is back (a change may have gone unheard)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        heard: Callable[[str], None],
        heard_all: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._heard, self._heard_all = heard, heard_all
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="epay-changes", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        self._listening.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()

    def _listen(self) -> None:
        import psycopg

        missed = False
        while not self._stopping.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {CHANGES_CHANNEL}")
                    self._listening.set()
                    if missed:
                        self._heard_all()
                    while not self._stopping.is_set():
                        for note in connection.notifies(timeout=LISTEN_POLL_SECONDS):
                            self._heard(note.payload)
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    return
                log.warning("listening for order changes failed, again in 1 s: %s", exc)
                missed = True
                self._stopping.wait(1.0)
