"""``epay-tui serve`` as a real process: startup line, refusals, persistence across restarts.

Each server is ``python -m epay_tui serve`` on a free loopback port; the startup line is
read from its stdout with a deadline (no sleeps), and every process is killed at the end
of its test, whatever happened.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import NEW_ZHANG, ZHANG, free_port

STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 20.0
ALWAYS_OPEN = ("--payment-hours", "00:00-24:00")


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "epay_tui", "serve", *args]


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    stdout_lines: queue.Queue
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_line(self, timeout: float = STARTUP_TIMEOUT) -> str | None:
        """The next stdout line, or None at EOF; fails the test after ``timeout``."""
        try:
            return self.stdout_lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no line on stdout within {timeout} s; stderr: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=EXIT_TIMEOUT)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator:
    """``launch(*args)`` starts ``epay-tui serve --port <free> *args`` and waits for its line."""
    started: list[Served] = []

    def _launch(*args: str) -> tuple[Served, str]:
        port = free_port()
        stderr_path = tmp_path / f"stderr-{len(started)}.txt"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                serve_command("--port", str(port), *args),
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=tmp_path,
                text=True,
            )
        lines: queue.Queue = queue.Queue()

        def pump() -> None:
            for line in process.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        served = Served(process, port, lines, stderr_path)
        started.append(served)
        line = served.next_line()
        assert line is not None, f"exited {process.wait(EXIT_TIMEOUT)}: {served.stderr()}"
        return served, line

    yield _launch
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
        served.process.wait(timeout=EXIT_TIMEOUT)
        served.process.stdout.close()


def refused(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a serve command that must exit by itself (and kill it if it does not)."""
    port = free_port()
    try:
        done = subprocess.run(
            serve_command("--port", str(port), "--db", str(tmp_path / "db.sqlite3"), *args),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=EXIT_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it already
        pytest.fail(f"`serve {' '.join(args)}` did not exit: it is serving ({exc.stdout!r})")
    with socket.socket() as sock:  # nothing was left listening on the port
        sock.bind(("127.0.0.1", port))
    return done


def solved_captcha(http: httpx.Client) -> tuple[str, str]:
    issued = http.post("/api/v1/captcha")
    assert issued.status_code == 200, issued.text
    latest = http.get("/sandbox/captcha/latest")
    assert latest.status_code == 200, latest.text
    assert latest.json()["captcha_id"] == issued.json()["captcha_id"]
    return latest.json()["captcha_id"], latest.json()["answer"]


def log_in(http: httpx.Client, username: str, password: str) -> httpx.Response:
    captcha_id, answer = solved_captcha(http)
    return http.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": password,
            "captcha_id": captcha_id,
            "captcha_answer": answer,
        },
    )


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], dict)
    if code:
        assert error["code"] == code, response.text


# ---------------------------------------------------------------------------- tests
def test_startup_line_says_where_it_listens_and_health_answers(launch, tmp_path):
    served, line = launch("--db", str(tmp_path / "db.sqlite3"), "--demo-data")
    assert f"listening on http://127.0.0.1:{served.port}" in line, line
    health = httpx.get(f"{served.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    served.stop()
    assert served.next_line(timeout=EXIT_TIMEOUT) is None, "more than one line on stdout"


def test_dev_hooks_on_a_non_loopback_host_is_refused(tmp_path):
    done = refused(tmp_path, "--host", "0.0.0.0", "--dev-hooks")
    assert done.returncode != 0
    assert "listening" not in done.stdout and "http://" not in done.stdout, done.stdout
    assert "dev-hooks" in done.stderr and "loopback" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("hours", "words"),
    [("22:00-08:00", "open before they close"), ("25:00-26:00", "08:00-22:00")],
)
def test_impossible_payment_hours_are_refused_at_startup(tmp_path, hours, words):
    done = refused(tmp_path, "--payment-hours", hours)
    assert done.returncode != 0
    assert "listening" not in done.stdout, done.stdout
    assert "payment hours" in done.stderr and hours in done.stderr, done.stderr
    assert words in done.stderr, done.stderr


def test_latest_captcha_is_404_before_any_captcha(launch, tmp_path):
    served, _ = launch("--db", str(tmp_path / "db.sqlite3"), "--demo-data", "--dev-hooks")
    with httpx.Client(base_url=served.url, timeout=10) as http:
        assert_error(http.get("/sandbox/captcha/latest"), 404)
        captcha = http.post("/api/v1/captcha")
        assert captcha.status_code == 200
        latest = http.get("/sandbox/captcha/latest")
        assert latest.status_code == 200
        assert latest.json()["captcha_id"] == captcha.json()["captcha_id"]


def test_latest_captcha_is_404_without_dev_hooks(launch, tmp_path):
    served, line = launch("--db", str(tmp_path / "db.sqlite3"), "--demo-data")
    assert "dev hooks" not in line
    with httpx.Client(base_url=served.url, timeout=10) as http:
        assert http.post("/api/v1/captcha").status_code == 200
        assert_error(http.get("/sandbox/captcha/latest"), 404)
        assert_error(http.get("/sandbox/outbox"), 404)


def test_restart_on_the_same_db_keeps_orders_sessions_and_passwords(launch, tmp_path):
    db = str(tmp_path / "db.sqlite3")
    served, _ = launch("--db", db, "--demo-data", "--dev-hooks", *ALWAYS_OPEN)
    with httpx.Client(base_url=served.url, timeout=10) as http:
        login = log_in(http, *ZHANG)
        assert login.status_code == 200, login.text
        assert login.json()["password_issue"] == "initial"
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        changed = http.post(
            "/api/v1/auth/password",
            json={"old_password": ZHANG[1], "new_password": NEW_ZHANG},
            headers=auth,
        )
        assert changed.status_code == 204, changed.text
        fees = http.get("/api/v1/fees", headers=auth)
        assert fees.status_code == 200, fees.text
        fiscal = [i["id"] for i in fees.json()["tags"][0]["items"] if i["receipt_type"] == "fiscal"]
        created = http.post(
            "/api/v1/orders",
            json={"item_ids": fiscal},
            headers={**auth, "Idempotency-Key": "restart-1"},
        )
        assert created.status_code == 201, created.text
        order = created.json()
    # uvicorn shuts down gracefully on SIGTERM, then exits by re-raising the signal.
    assert served.stop() in (0, -signal.SIGTERM), f"crashed on SIGTERM: {served.stderr()}"

    again, _ = launch("--db", db, "--demo-data", "--dev-hooks", *ALWAYS_OPEN)
    with httpx.Client(base_url=again.url, timeout=10) as http:
        me = http.get("/api/v1/me", headers=auth)
        assert me.status_code == 200, f"the session did not survive the restart: {me.text}"
        assert me.json()["username"] == ZHANG[0]
        kept = http.get(f"/api/v1/orders/{order['order_no']}", headers=auth)
        assert kept.status_code == 200, kept.text
        assert kept.json()["status"] == "open"
        assert sorted(i["id"] for i in kept.json()["items"]) == sorted(fiscal)
        assert kept.json()["total"] == order["total"]
        listed = http.get("/api/v1/orders", headers=auth).json()["orders"]
        assert [o["order_no"] for o in listed] == [order["order_no"]]
        # Not re-seeded: the changed password still works, the initial one does not.
        relogin = log_in(http, ZHANG[0], NEW_ZHANG)
        assert relogin.status_code == 200, relogin.text
        assert relogin.json()["must_change_password"] is False
        assert_error(log_in(http, *ZHANG), 401, "BAD_CREDENTIALS")
        # The same key leads back to the same order after the restart.
        replay = http.post(
            "/api/v1/orders",
            json={"item_ids": fiscal},
            headers={**auth, "Idempotency-Key": "restart-1"},
        )
        assert replay.status_code == 201, replay.text
        assert replay.json()["order_no"] == order["order_no"]


# ---------------------------------------------------------------------------- keys, connections
KEY_HEX = "5a" * 32


def test_one_key_from_the_environment_without_the_other_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EPAY_NOTIFY_KEY", KEY_HEX)
    monkeypatch.delenv("EPAY_RESET_CODE_KEY", raising=False)
    done = refused(tmp_path)
    assert done.returncode == 2
    assert "EPAY_RESET_CODE_KEY" in done.stderr, done.stderr
    assert KEY_HEX not in done.stderr + done.stdout  # a key is never echoed


def test_keys_from_the_environment_leave_no_key_file(launch, tmp_path, monkeypatch):
    monkeypatch.setenv("EPAY_NOTIFY_KEY", KEY_HEX)
    monkeypatch.setenv("EPAY_RESET_CODE_KEY", "a5" * 32)
    served, line = launch("--db", str(tmp_path / "db.sqlite3"))
    assert KEY_HEX not in line
    assert sorted(p.name for p in tmp_path.glob("*.keys")) == []
    assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200


def test_a_key_file_others_can_read_stops_the_start(tmp_path):
    keys = tmp_path / "db.keys"
    keys.write_text(f'{{"notify": "{KEY_HEX}", "reset_code": "{KEY_HEX}"}}')
    keys.chmod(0o644)
    done = refused(tmp_path)
    assert done.returncode == 2
    assert "chmod 600" in done.stderr and str(keys) in done.stderr, done.stderr


def test_a_key_file_elsewhere_is_used_and_made_private(launch, tmp_path):
    keys = tmp_path / "secrets" / "epay.keys"
    launch("--db", str(tmp_path / "db.sqlite3"), "--key-file", str(keys))
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    assert oct(keys.parent.stat().st_mode & 0o777) == "0o700"
    assert not (tmp_path / "db.keys").exists()


def test_a_connection_cap_below_one_is_refused(tmp_path):
    done = refused(tmp_path, "--max-connections", "0")
    assert done.returncode == 2
    assert "--max-connections" in done.stderr, done.stderr


# ---------------------------------------------------------------------------- stopping
def test_stopping_waits_for_the_sweep_in_progress_before_closing_the_database(monkeypatch, clock):
    """The database is closed only after a sweep running in its worker thread ends:
    closing it under a sweep crashed the test process (a segfault in sqlite3)."""
    from epay_tui.server import payments
    from epay_tui.server.runner import BackgroundServer
    from tests.conftest import backend_config

    in_sweep, closed = threading.Event(), threading.Event()
    closed_during_sweep: list[bool] = []

    def slow_sweep(backend) -> None:
        if not in_sweep.is_set():
            in_sweep.set()
            closed_during_sweep.append(closed.wait(1.0))  # long enough to be caught

    monkeypatch.setattr(payments, "sweep_all", slow_sweep)
    running = BackgroundServer(backend_config(), clock).start()
    store = running.backend.store
    real_close = store.close

    def close() -> None:
        closed.set()
        real_close()

    monkeypatch.setattr(store, "close", close)
    assert in_sweep.wait(5)
    running.stop()
    assert closed.is_set()
    assert closed_during_sweep == [False]


# ---------------------------------------------------------------------------- schema versions
def legacy_database(path: Path) -> None:
    """A database as releases before schema versions made it: no version table, and
    without the columns and tables added since (a notify's attempts, running password
    checks, the order of a student's orders and of an order's items, the gateway's
    refunds, receipts' check codes, the money after payment), holding two orders."""
    from sqlalchemy import create_engine

    from epay_tui.server.store.schema import metadata

    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(path) as conn:
        for table, column in (
            ("gw_notifies", "attempts"),
            ("login_failures", "pending"),
            ("login_failures", "pending_since"),
            ("order_items", "position"),
        ):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("DROP TABLE gw_refunds")  # version 0003's
        conn.execute("DROP INDEX discrepancies_trade")  # version 0005's, from here on
        for table, column in (
            ("fee_items", "refunded"),
            ("discrepancies", "trade_no"),
            ("discrepancies", "amount"),
        ):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        for table in ("refunds", "refund_items", "refund_claims", "staff_requests"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP TABLE receipt_resends")
        later = ("seq", "check_code", "cashier", "reference", "refunded")
        kept = [c.name for c in metadata.tables["orders"].columns if c.name not in later]
        conn.execute(f"CREATE TABLE old_orders AS SELECT {', '.join(kept)} FROM orders")
        conn.execute("DROP TABLE orders")
        conn.execute("ALTER TABLE old_orders RENAME TO orders")
        conn.execute("INSERT INTO gw_notifies(trade_no, due_at) VALUES ('T1', 0)")
        for number in ("B-second-made-first", "A-made-second"):
            conn.execute(
                "INSERT INTO orders(order_no, username, status, receipt_type, total, payee,"
                " created_at, expires_at) VALUES (?, 'u1', 'closed', 'fiscal', 1, 'p', 5, 9)",
                (number,),
            )
        for item in ("z-first", "a-second"):
            conn.execute(
                "INSERT INTO order_items(order_no, item_id, name, amount)"
                " VALUES ('A-made-second', ?, 'n', 1)",
                (item,),
            )


def db_upgrade(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "epay_tui", "db", "upgrade", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
    )


def test_serve_refuses_an_older_schema_until_db_upgrade_brings_it_on(launch, tmp_path):
    db = tmp_path / "db.sqlite3"
    legacy_database(db)
    done = refused(tmp_path)
    assert done.returncode == 2
    assert "from before versions" in done.stderr and "epay-tui db upgrade" in done.stderr

    upgraded = db_upgrade(db)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (
        upgraded.stdout.strip()
        == "schema version 0005 (found none (empty, or from before versions))"
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT trade_no, attempts FROM gw_notifies").fetchall() == [("T1", 0)]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(login_failures)")}
        assert {"pending", "pending_since"} <= columns
        made = "SELECT order_no, seq FROM orders ORDER BY seq"
        assert conn.execute(made).fetchall() == [("B-second-made-first", 1), ("A-made-second", 2)]
        chosen = "SELECT item_id FROM order_items ORDER BY position"
        assert conn.execute(chosen).fetchall() == [("z-first",), ("a-second",)]
        assert conn.execute("SELECT COUNT(*) FROM gw_refunds").fetchone() == (0,)
        codes = "SELECT check_code FROM orders"  # paid before versions: none here
        assert conn.execute(codes).fetchall() == [(None,), (None,)]
        refunded = "SELECT refunded, cashier FROM orders"  # version 0005: nothing given back
        assert conn.execute(refunded).fetchall() == [(0, None), (0, None)]
        assert conn.execute("SELECT COUNT(*) FROM refunds").fetchone() == (0,)
    again = db_upgrade(db)
    assert again.stdout.strip() == "schema version 0005 (found 0005)"

    served, line = launch("--db", str(db), "--demo-data")
    assert "listening on" in line
    assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200


def test_a_postgresql_database_needs_its_keys_given(tmp_path):
    done = subprocess.run(
        serve_command("--db", "postgresql://nobody@127.0.0.1:9/epay"),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("EPAY_")},
    )
    assert done.returncode == 2
    assert "--key-file" in done.stderr and "EPAY_NOTIFY_KEY" in done.stderr


def test_several_workers_on_a_sqlite_file_are_refused_in_words(tmp_path):
    done = refused(tmp_path, "--workers", "2")
    assert done.returncode == 2
    assert "listening" not in done.stdout, done.stdout
    assert "--workers above 1 needs a PostgreSQL --db" in done.stderr, done.stderr


def test_the_newest_version_named_in_code_is_alembics_head():
    from alembic.script import ScriptDirectory

    from epay_tui.server.store import migrations

    scripts = ScriptDirectory.from_config(migrations.alembic_config(None))
    assert scripts.get_current_head() == migrations.NEWEST


def test_orders_paid_before_check_codes_get_one_when_upgraded(tmp_path):
    """Version 0004: a receipt's check code is drawn at payment; an order paid before it
    existed gets one in the upgrade (a receipt without one could not be shown)."""
    from alembic import command

    from epay_tui.server.store import Store, migrations

    store = Store(tmp_path / "db.sqlite3")  # newest version
    with store.engine.begin() as connection:
        command.downgrade(migrations.alembic_config(connection), "0003")
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        for seq, (number, status) in enumerate((("P1", "paid"), ("C1", "closed")), 1):
            conn.execute(
                "INSERT INTO orders(order_no, username, seq, status, receipt_type, total, payee,"
                " created_at, expires_at) VALUES (?, 'u1', ?, ?, 'fiscal', 1, 'p', 5, 9)",
                (number, seq, status),
            )
    store.close()
    assert db_upgrade(tmp_path / "db.sqlite3").returncode == 0
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        codes = dict(conn.execute("SELECT order_no, check_code FROM orders").fetchall())
    assert len(codes["P1"]) == 6 and codes["P1"].isdigit()
    assert codes["C1"] is None


def test_version_0005_down_and_up_leaves_the_schema_the_code_defines(tmp_path):
    """The money tables and columns come and go without recreating a table: SQLite keeps
    the fee items' CHECK constraints (a recreated table would lose them, unnamed)."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from epay_tui.server.store import Store, migrations
    from epay_tui.server.store.schema import metadata

    store = Store(tmp_path / "db.sqlite3")
    for target in ("0004", "head"):
        with store.engine.begin() as connection:
            step = command.downgrade if target == "0004" else command.upgrade
            step(migrations.alembic_config(connection), target)
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    store.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        made = conn.execute("SELECT sql FROM sqlite_master WHERE name='fee_items'").fetchone()[0]
    assert "CHECK (amount_due >= 0)" in made and "CHECK (amount_paid >= 0)" in made
