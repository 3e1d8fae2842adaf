"""The SQLite store: schema, one connection per thread, and transactions.

WAL mode lets readers go on while one writer works; every path that takes or
releases item locks runs inside ``BEGIN IMMEDIATE`` so two devices of one student
are serialised at the database, not in Python. The rest of the server speaks SQL
only through this module's connection helpers, so a PostgreSQL store can follow.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from epay_tui.files import private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
    id_card_no TEXT, password_hash TEXT NOT NULL,
    department TEXT NOT NULL DEFAULT '', major TEXT NOT NULL DEFAULT '',
    class_name TEXT NOT NULL DEFAULT '', grade TEXT NOT NULL DEFAULT '',
    phone TEXT, email TEXT
);
-- count: failures since the last right password; pending: checks running now
CREATE TABLE IF NOT EXISTS login_failures (
    username TEXT PRIMARY KEY, count INTEGER NOT NULL, locked_until REAL,
    pending INTEGER NOT NULL DEFAULT 0, pending_since REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, role TEXT NOT NULL,
    must_change INTEGER NOT NULL, created_at REAL NOT NULL, last_seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
CREATE TABLE IF NOT EXISTS captchas (
    captcha_id TEXT PRIMARY KEY, answer TEXT NOT NULL, expires_at REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS resets (
    reset_id TEXT PRIMARY KEY, username TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL, channels TEXT NOT NULL, code_digest TEXT,
    code_expires_at REAL, last_sent_at REAL, wrong_codes INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE IF NOT EXISTS reset_mismatches (username TEXT NOT NULL, at REAL NOT NULL);
-- every reset code sent, for the cap per username and hour across resets
CREATE TABLE IF NOT EXISTS reset_sends (username TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS reset_sends_user ON reset_sends(username, at);
CREATE TABLE IF NOT EXISTS fee_items (
    id TEXT PRIMARY KEY, username TEXT NOT NULL, tag TEXT NOT NULL, tag_rank INTEGER NOT NULL,
    position INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    amount_due INTEGER NOT NULL CHECK (amount_due >= 0),
    amount_paid INTEGER NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    paid_order_no TEXT
);
CREATE INDEX IF NOT EXISTS fee_items_user ON fee_items(username);
CREATE TABLE IF NOT EXISTS orders (
    order_no TEXT PRIMARY KEY, username TEXT NOT NULL, status TEXT NOT NULL,
    receipt_type TEXT NOT NULL, total INTEGER NOT NULL, payee TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL,
    pay_channel TEXT, pay_trade_no TEXT, qr_url TEXT, pay_issued_at REAL, pay_expires_at REAL,
    paid_at REAL, channel TEXT, transaction_id TEXT UNIQUE, receipt_no TEXT UNIQUE,
    close_reason TEXT, closed_at REAL
);
CREATE INDEX IF NOT EXISTS orders_user ON orders(username, created_at);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status, expires_at);
CREATE TABLE IF NOT EXISTS order_items (
    order_no TEXT NOT NULL, item_id TEXT NOT NULL, name TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (order_no, item_id)
);
-- an item is in at most one unfinished order: the primary key is the lock
CREATE TABLE IF NOT EXISTS item_locks (item_id TEXT PRIMARY KEY, order_no TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_trades (
    trade_no TEXT PRIMARY KEY, order_no TEXT NOT NULL, channel TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS order_trades_order ON order_trades(order_no);
CREATE TABLE IF NOT EXISTS idempotency (
    username TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, order_no TEXT NOT NULL,
    PRIMARY KEY (username, key)
);
CREATE TABLE IF NOT EXISTS discrepancies (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, order_no TEXT NOT NULL, kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, channel TEXT NOT NULL, to_addr TEXT NOT NULL, body TEXT NOT NULL,
    sent_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, detail TEXT NOT NULL
);
-- the payment-gateway sandbox: an outside party, kept in tables of its own
CREATE TABLE IF NOT EXISTS gw_trades (
    trade_no TEXT PRIMARY KEY, pay_token TEXT UNIQUE NOT NULL, order_no TEXT NOT NULL,
    channel TEXT NOT NULL, amount INTEGER NOT NULL, payee TEXT NOT NULL, items TEXT NOT NULL,
    state TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
    settles_at REAL, notify_mode TEXT, paid_at REAL, transaction_id TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS gw_notifies (
    id INTEGER PRIMARY KEY, trade_no TEXT NOT NULL, due_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS gw_notifies_due ON gw_notifies(state, due_at);
"""


class Store:
    """A SQLite database shared by the server's threads, one connection each."""

    def __init__(self, path: str | Path) -> None:
        self._scratch: tempfile.TemporaryDirectory | None = None
        if str(path) == ":memory:":  # each thread needs the same database: a scratch file
            self._scratch = tempfile.TemporaryDirectory(prefix="epay-")
            path = Path(self._scratch.name) / "backend.sqlite3"
        self.path = str(path)
        for made in (path, f"{path}-wal", f"{path}-shm"):  # SQLite gives its side files
            if made == path or Path(made).exists():  # the database file's mode
                private_file(made)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.conn.executescript(SCHEMA)
        self._add_missing_columns(
            "gw_notifies",
            {"attempts": "INTEGER NOT NULL DEFAULT 0"},  # before notify retries
        )
        self._add_missing_columns(  # before checks were counted ahead of the hash
            "login_failures",
            {"pending": "INTEGER NOT NULL DEFAULT 0", "pending_since": "REAL"},
        )

    def _add_missing_columns(self, table: str, columns: dict[str, str]) -> None:
        """Columns a database made by an earlier version lacks (until versioned migrations)."""
        have = {r["name"] for r in self.conn.execute(f"PRAGMA table_info({table})")}
        for name, definition in columns.items():
            if name not in have:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        with self._all_lock:
            self._all.append(conn)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error.

        Never take an order lock inside one: order locks come first, then the store.
        (A process-wide lock around writers was tried under benchmarks/load.py: no
        better p99 at the knee, and a lower throughput past it.)"""
        conn = self.conn
        if conn.in_transaction:
            yield conn  # nested: the outer transaction decides
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot for several SELECTs."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def take_settings(self, keys: tuple[str, ...]) -> dict[str, str]:
        """The stored values of ``keys`` (settings an older version kept here)."""
        marks = ",".join("?" * len(keys))
        with self.read() as conn:
            found = conn.execute(
                f"SELECT key, value FROM settings WHERE key IN ({marks})",  # noqa: S608
                keys,
            ).fetchall()
        return {r["key"]: r["value"] for r in found}

    def erase_settings(self, keys: tuple[str, ...]) -> None:
        """Delete settings beyond recovery: their pages zeroed, the WAL emptied."""
        marks = ",".join("?" * len(keys))
        conn = self.conn
        conn.execute("PRAGMA secure_delete=ON")
        try:
            with self.write() as conn:
                conn.execute(f"DELETE FROM settings WHERE key IN ({marks})", keys)  # noqa: S608
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.execute("PRAGMA secure_delete=OFF")

    def is_empty(self) -> bool:
        with self.read() as conn:
            return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
        if self._scratch is not None:
            self._scratch.cleanup()
