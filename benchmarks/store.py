"""What the store's layer costs on SQLite: a short transaction and one statement through
``Store`` (SQLAlchemy underneath) next to the same through bare ``sqlite3``, and the
import of the store in a fresh interpreter. The statement three ways: a ``Query``
(compiled once, how the backend's queries run), a SQLAlchemy statement built and
compiled on every call, and SQL text handed to the driver. Prints one table per round.

    python benchmarks/store.py [--n 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import bindparam, literal, select

from epay_tui.server.store import Store
from epay_tui.server.store.engine import Query
from epay_tui.server.store.schema import users

QUERY = "SELECT 1 FROM users WHERE username=?"
COMPILED = Query(select(literal(1)).where(users.c.username == bindparam("username")))


def per_call(n: int, call) -> float:
    """Microseconds per call, the median of five batches of ``n // 5``."""
    batch = max(n // 5, 1)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(batch):
            call()
        times.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(times)


def store_figures(path: Path, n: int) -> tuple[float, dict[str, float]]:
    """The write transaction (with one ``Query``), and the statement each way."""
    store = Store(path)
    try:

        def transaction() -> None:
            with store.write() as tx:
                tx.execute(COMPILED, {"username": "nobody"}).fetchone()

        def built_per_call(tx) -> None:
            statement = select(literal(1)).where(users.c.username == "nobody")
            tx.execute(statement).fetchone()

        transaction()  # this thread's connection opened before timing
        with store.read() as tx:
            statements = {
                "Query": per_call(n, lambda: tx.execute(COMPILED, {"username": "x"}).fetchone()),
                "built per call": per_call(n, lambda: built_per_call(tx)),
                "SQL text": per_call(n, lambda: tx.execute(QUERY, ("nobody",)).fetchone()),
            }
        return per_call(n, transaction), statements
    finally:
        store.close()


def sqlite_figures(path: Path, n: int) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:

        def transaction() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(QUERY, ("nobody",)).fetchone()
            conn.execute("COMMIT")

        conn.execute("BEGIN")
        statement = per_call(n, lambda: conn.execute(QUERY, ("nobody",)).fetchone())
        conn.execute("COMMIT")
        return per_call(n, transaction), statement
    finally:
        conn.close()


def import_ms() -> float:
    """Milliseconds to import the store in a fresh interpreter, over a bare one."""

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    bare = statistics.median(run("pass") for _ in range(3))
    store = statistics.median(run("import epay_tui.server.store") for _ in range(3))
    return (store - bare) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, WAL file")
    for round_no in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "backend.sqlite3"
            store_tx, store_stmt = store_figures(path, args.n)
            bare_tx, bare_stmt = sqlite_figures(path, args.n)
        print(f"\nround {round_no}\n")
        print("| | write transaction µs | statement µs |\n|---|---:|---:|")
        print(f"| Store, a Query | {store_tx:.1f} | {store_stmt['Query']:.1f} |")
        print(f"| Store, a statement built per call | | {store_stmt['built per call']:.1f} |")
        print(f"| Store, SQL text | | {store_stmt['SQL text']:.1f} |")
        print(f"| sqlite3 | {bare_tx:.1f} | {bare_stmt:.1f} |")
        print(f"\nimport of epay_tui.server.store: {import_ms():.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
