"""The database behind the backend: SQLite (the embedded default, one worker) or
PostgreSQL, through one SQLAlchemy engine; transactions, and the schema's version.

On SQLite a write transaction starts with ``BEGIN IMMEDIATE``: writers take turns at the
database (WAL lets readers go on meanwhile). On PostgreSQL writers run side by side,
READ COMMITTED; a write that depends on what it read locks those rows first
(``SELECT ... FOR UPDATE`` in the query modules: the student's row for all a student
pays, an order's row for its status, a trade's row at the gateway), and unique keys
hold what a lock does not (an item in one unfinished order, an idempotency key).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, func, insert, select
from sqlalchemy.engine import CursorResult

from epay_tui.api.rules import has_nul
from epay_tui.files import private_file
from epay_tui.server.config import is_database_url
from epay_tui.server.store import migrations
from epay_tui.server.store.coordination import (
    CHANGES_CHANNEL,
    ChangeFeed,
    KeyedLocks,
    Leadership,
    SharedLocks,
)
from epay_tui.server.store.schema import settings, users

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the write lock before giving up."""
POOL = {"pool_size": 8, "max_overflow": 8}
"""PostgreSQL connections for transactions, per worker (more requests wait for one)."""
LOCK_POOL = {"pool_size": 4, "max_overflow": 8}
"""PostgreSQL connections holding per-order locks between transactions, per worker."""
CONNECTIONS_PER_WORKER = sum(POOL.values()) + sum(LOCK_POOL.values()) + 2
"""At most this many PostgreSQL connections per worker: both pools, the leader's, the
listener's."""


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL for ``--db``: a PostgreSQL URL as given (psycopg 3), else a
    SQLite file path."""
    given = str(db)
    if is_database_url(given):
        return "postgresql+psycopg://" + given.split("://", 1)[1]
    return f"sqlite:///{given}"


class Record(Mapping[str, Any]):
    """A row read by name (``row["username"]``) or by position (``row[0]``), like
    ``sqlite3.Row``, and as a dict (``dict(row)``)."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: Sequence[str], values: Sequence[Any]) -> None:
        self._keys, self._values = keys, values

    def __getitem__(self, key: str | int) -> Any:  # type: ignore[override]
        if isinstance(key, int):
            return self._values[key]
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class Result:
    """What a statement gave: rows as :class:`Record`, and how many rows it changed.
    Wraps a SQLAlchemy result or a driver's cursor."""

    def __init__(self, result: Any) -> None:
        self._result = result
        if isinstance(result, CursorResult):
            self._keys = list(result.keys()) if result.returns_rows else []
        else:  # a DB-API cursor
            self._keys = [column[0] for column in result.description or ()]
        self.rowcount = result.rowcount

    def fetchone(self) -> Record | None:
        row = self._result.fetchone()
        return None if row is None else Record(self._keys, tuple(row))

    def fetchall(self) -> list[Record]:
        return [Record(self._keys, tuple(row)) for row in self._result.fetchall()]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.fetchall())


@lru_cache(maxsize=1024)
def _for_driver(sql: str, paramstyle: str) -> str:
    """``?`` placeholders in the driver's own style (psycopg: ``%s``)."""
    if paramstyle == "qmark":
        return sql
    return sql.replace("%", "%%").replace("?", "%s")


class _Fetched:
    """A cursor's answer taken at once (the cursor serves the next statement); none: no
    rows."""

    def __init__(self, cursor: Any) -> None:
        self.description = cursor.description if cursor else ()
        self.rowcount = cursor.rowcount if cursor else 0
        self._rows = cursor.fetchall() if cursor and cursor.description else []

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows


class Query:
    """A SQLAlchemy statement written once (its variable parts ``bindparam("name")``),
    compiled once per kind of database and then run on the driver's cursor with the
    values by name. Building and compiling a statement on every call costs about 64 µs;
    a compiled one runs in about 4 µs, near SQL text's 2.5 (``benchmarks/store.py``)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self.is_select = bool(getattr(statement, "is_select", False))
        """A lookup: one by a text holding a NUL finds nothing, on either database, without
        asking (requests refuse such texts, so none is stored; PostgreSQL would refuse
        the question itself)."""
        self._compiled: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    def compiled(self, dialect: Any) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """The SQL in ``dialect``'s own placeholders, the values' names in order, and
        the values fixed in the statement (its literals)."""
        found = self._compiled.get(dialect.name)
        if found is None:
            done = self.statement.compile(dialect=dialect)
            names = tuple(done.positiontup or ())
            found = self._compiled[dialect.name] = (done.string, names, dict(done.params))
        return found


def inserting(table: Any, *columns: str, **fixed: Any) -> Query:
    """``INSERT INTO table`` as a :class:`Query`: each of ``columns`` takes the value given
    under its own name, each of ``fixed`` the expression given here."""
    return Query(insert(table).values({**{c: bindparam(c) for c in columns}, **fixed}))


class Tx:
    """One transaction's connection. ``execute`` takes a :class:`Query` and its values by
    name, a SQLAlchemy statement, or SQL text with ``?`` placeholders and a tuple of
    values, sent to the driver as it is (the tests and the benchmarks read the store
    this way; the backend's own queries are in the query modules)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._paramstyle = connection.dialect.paramstyle
        self._cursor: Any = None

    def execute(self, statement: Any, values: Sequence[Any] | Mapping[str, Any] = ()) -> Result:
        if isinstance(statement, Query):
            if statement.is_select and any(has_nul(v) for v in dict(values).values()):
                return Result(_Fetched(None))  # no stored text holds a NUL (see Query)
            sql, names, fixed = statement.compiled(self.connection.dialect)
            given = {**fixed, **(values or {})}  # type: ignore[dict-item]
            if names:  # positional placeholders (SQLite's ?)
                return self._on_cursor(sql, tuple(given[name] for name in names))
            return self._on_cursor(sql, given)  # named ones (psycopg's %(name)s)
        if isinstance(statement, str):
            return self._on_cursor(_for_driver(statement, self._paramstyle), tuple(values))
        return Result(self.connection.execute(statement, values or {}))

    def _on_cursor(self, sql: str, values: tuple | dict) -> Result:
        """Run ``sql`` on the driver's own cursor, in this same transaction."""
        if self._cursor is None:
            self._cursor = self.connection.connection.driver_connection.cursor()
        if isinstance(values, dict):
            values = {k: int(v) if isinstance(v, bool) else v for k, v in values.items()}
        else:
            values = tuple(int(v) if isinstance(v, bool) else v for v in values)  # 0/1 columns
        self._cursor.execute(sql, values)
        return Result(_Fetched(self._cursor))


class _PooledDriverConnection:
    """The driver's connection of a pooled one: ``execute`` on it, ``close`` gives it back."""

    def __init__(self, pooled: Any) -> None:
        self._pooled = pooled
        self.execute = pooled.driver_connection.execute

    def close(self) -> None:
        self._pooled.close()


class Store:
    """The backend's database, shared by the server's threads."""

    def __init__(self, db: str | Path, *, upgrade: bool = True, prepare: bool = True) -> None:
        """Open ``db`` (a SQLite path, ``:memory:``, or a PostgreSQL URL). An empty
        database gets the current schema; an older one is brought on with ``upgrade``,
        else refused (:class:`SchemaTooOld`); ``prepare=False`` leaves it as it is."""
        self._scratch: tempfile.TemporaryDirectory | None = None
        if str(db) == ":memory:":  # every thread needs the same database: a scratch file
            self._scratch = tempfile.TemporaryDirectory(prefix="epay-")
            db = Path(self._scratch.name) / "backend.sqlite3"
        self.path = str(db)
        self.url = database_url(db)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            for made in (db, f"{db}-wal", f"{db}-shm"):  # SQLite gives its side files
                if made == db or Path(made).exists():  # the database file's mode
                    private_file(made)
        self.engine = self._engine()
        self._lock_engine: Engine | None = None
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._opened_lock = threading.Lock()
        if prepare:
            migrations.prepare(self.engine, upgrade=upgrade)

    def _engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, **POOL)
        engine = create_engine(
            self.url,
            pool_size=10,
            max_overflow=-1,  # as many as the server's threads: a file has no connection cap
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # transactions are begun below
            cursor = dbapi_connection.cursor()
            for pragma in (
                "journal_mode=WAL",
                "synchronous=NORMAL",
                "foreign_keys=ON",
                f"busy_timeout={BUSY_TIMEOUT_MS}",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            immediate = connection.get_execution_options().get("write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """SQLite: this thread's own connection, kept open (a checkout from a pool costs
        more than a short transaction); PostgreSQL: one from the pool."""
        if not self.is_sqlite:
            with self.engine.connect() as connection:
                yield connection
            return
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.engine.connect()
            with self._opened_lock:
                self._opened.append(connection)
        yield connection

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Tx]:
        current: Tx | None = getattr(self._local, "tx", None)
        if current is not None:
            yield current  # nested: the outer transaction decides
            return
        with self._connection() as connection:
            connection.execution_options(write=write)
            with connection.begin():
                self._local.tx = tx = Tx(connection)
                try:
                    yield tx
                finally:
                    self._local.tx = None

    def write(self) -> Any:
        """A write transaction: committed on success, rolled back on error (on SQLite
        ``BEGIN IMMEDIATE``, so writers queue at the start, never half way)."""
        return self._transaction(write=True)

    def read(self) -> Any:
        """A read transaction: one consistent snapshot for several SELECTs."""
        return self._transaction(write=False)

    # ------------------------------------------------------------ across workers
    def _connect_direct(self, role: str) -> Any:
        """A PostgreSQL connection of its own, outside the pools, named for what it does
        and which process holds it (``pg_stat_activity`` shows which worker leads)."""
        import psycopg

        url = self.url.replace("+psycopg", "", 1)
        name = f"epay-tui {role} {os.getpid()}"
        return psycopg.connect(url, autocommit=True, application_name=name)

    def _connect_for_lock(self) -> Any:
        """A pooled autocommit connection that holds advisory locks between transactions."""
        if self._lock_engine is None:
            self._lock_engine = create_engine(self.url, isolation_level="AUTOCOMMIT", **LOCK_POOL)
        return _PooledDriverConnection(self._lock_engine.raw_connection())

    def keyed_locks(self) -> KeyedLocks:
        """Locks by key (an order number) that hold in every worker over this database."""
        return KeyedLocks() if self.is_sqlite else SharedLocks(self._connect_for_lock)

    def leadership(self) -> Leadership:
        """Which worker runs the background duties."""
        return Leadership(None if self.is_sqlite else partial(self._connect_direct, "leader"))

    def change_feed(
        self, heard: Callable[[str], None], heard_all: Callable[[], None]
    ) -> ChangeFeed | None:
        """Other workers' word of changed orders (none to hear with one SQLite process)."""
        if self.is_sqlite:
            return None
        return ChangeFeed(partial(self._connect_direct, "listener"), heard, heard_all)

    def announce(self, order_no: str) -> None:
        """Tell every worker that ``order_no`` changed: within this thread's transaction
        if one is open (heard once it commits), else at once."""
        if self.is_sqlite:
            return
        with self.read() as tx:
            tx.execute(select(func.pg_notify(CHANGES_CHANNEL, order_no)))

    def connections_allowed(self) -> int:
        """How many connections the PostgreSQL server lets ordinary users open."""
        with self.read() as tx:
            rows = tx.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
            ).fetchall()
        found = {row["name"]: int(row["setting"]) for row in rows}
        return found.pop("max_connections") - sum(found.values())

    def take_settings(self, keys: tuple[str, ...]) -> dict[str, str]:
        """The stored values of ``keys`` (settings an older version kept here)."""
        with self.read() as tx:
            found = tx.execute(settings.select().where(settings.c.key.in_(keys))).fetchall()
        return {r["key"]: r["value"] for r in found}

    def erase_settings(self, keys: tuple[str, ...]) -> None:
        """Delete settings beyond recovery (on SQLite: their pages zeroed, the WAL
        emptied)."""
        if not self.is_sqlite:
            with self.write() as tx:
                tx.execute(settings.delete().where(settings.c.key.in_(keys)))
            return
        raw = self.engine.raw_connection()  # pragmas outside any transaction
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(keys))
            cursor.execute(f"DELETE FROM settings WHERE key IN ({marks})", keys)  # noqa: S608
            cursor.execute("COMMIT")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("PRAGMA secure_delete=OFF")
        finally:
            raw.close()

    def is_empty(self) -> bool:
        with self.read() as tx:
            return tx.execute(users.select().limit(1)).fetchone() is None

    def close(self) -> None:
        with self._opened_lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()
        self._local = threading.local()
        self.engine.dispose()
        if self._lock_engine is not None:
            self._lock_engine.dispose()
        if self._scratch is not None:
            self._scratch.cleanup()
