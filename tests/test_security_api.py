"""The guarantees of api.md's *Security* section, each as an attacker would try it.

Over real HTTP against a live backend (a database file where the attack needs one);
``server.backend`` is read only for what an attacker holding a copy of the files
would read, or to check the store. Each test was seen failing before its fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from epay_tui.api import rules
from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.server import payments
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from epay_tui.server.store import Store
from tests.api_helpers import error_of, post_notify
from tests.conftest import (
    STAFF,
    TEN_AM,
    ZHANG,
    backend_config,
    latest_captcha_answer,
    sign,
    solve_login,
)
from tests.invariants import rows

API = "/api/v1"
FINANCE = ("finance01", "Finance2026")
NEW_ZHANG = "Zhangwei2026x"
ZHANG_IDENTITY = {"name": "张伟", "id_card_no": "320402200603152018"}
HEX64 = re.compile(rb"[0-9a-f]{64}")


# ---------------------------------------------------------------------------- helpers
async def captchas(http: httpx.AsyncClient, n: int) -> list[tuple[str, str]]:
    """``n`` fresh captchas with their answers (each read from the dev hook in turn)."""
    found = []
    for _ in range(n):
        assert (await http.post(f"{API}/captcha")).status_code == 200
        latest = (await http.get("/sandbox/captcha/latest")).json()
        found.append((latest["captcha_id"], latest["answer"]))
    return found


async def login_burst(server, username: str, passwords: list[str]) -> list[httpx.Response]:
    """All at once, each on its own connection with its own captcha."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        solved = await captchas(http, len(passwords))

    async def one(password: str, captcha: tuple[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as own:
            return await own.post(
                f"{API}/auth/login",
                json={
                    "username": username,
                    "password": password,
                    "captcha_id": captcha[0],
                    "captcha_answer": captcha[1],
                },
            )

    return list(await asyncio.gather(*(one(p, c) for p, c in zip(passwords, solved, strict=True))))


def audited(server, action: str, target: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT actor, action, target FROM audit WHERE action=?"
    found = rows(server, sql + " ORDER BY id", action)
    return [r for r in found if target is None or r["target"] == target]


async def paying_order(api: ApiClient, channel: str = "wechat"):
    """张伟's 学费 in an order with a QR issued: (order, qr)."""
    fees = await api.fees()
    tuition = next(i for i in fees.tags[0].items if i.name == "学费")
    order = await api.create_order([tuition.id], new_idempotency_key())
    return order, await api.pay_order(order.order_no, channel)


def trade_of(server, order_no: str) -> dict[str, Any]:
    (trade,) = rows(server, "SELECT * FROM gw_trades WHERE order_no=?", order_no)
    return trade


def forged_notify(trade: dict[str, Any], **changes: Any) -> bytes:
    """A notify as the gateway would send it for ``trade``, claiming it paid."""
    body = {
        "trade_no": trade["trade_no"],
        "order_no": trade["order_no"],
        "channel": trade["channel"],
        "amount": trade["amount"],
        "trade_state": "SUCCESS",
        "transaction_id": "4200" + "7" * 24,
        "paid_at": TEN_AM.isoformat(),
    }
    body.update(changes)
    return json.dumps(body, ensure_ascii=False).encode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def file_bytes(db: Path) -> bytes:
    """Everything a copy of the database would hold: the file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in (db, *db.parent.glob(db.name + "-*")) if p.exists())


@pytest.fixture
async def zhang(server):
    """张伟 logged in (his forced change done), on the live backend."""
    async with ApiClient(server.url) as api:
        await solve_login(api, *ZHANG)
        await api.change_password(ZHANG[1], NEW_ZHANG)
        yield api


async def paid_without_notify(api: ApiClient, channel: str = "wechat"):
    """An order the phone paid whose notify the gateway dropped: (order, qr)."""
    order, qr = await paying_order(api, channel)
    await api.sandbox_pay(qr.qr_url, "success", notify="drop")
    return order, qr


@pytest.fixture
def file_server_config(tmp_path) -> ServerConfig:
    return backend_config(db_path=str(tmp_path / "data" / "backend.sqlite3"))


@pytest.fixture
def file_server(file_server_config, clock):
    with BackgroundServer(file_server_config, clock) as running:
        yield running


# ============================================================================ 1. keys and files
async def test_a_notify_signed_with_a_key_from_a_copy_of_the_database_pays_nothing(
    file_server, tmp_path
):
    db = Path(file_server.config.db_path)
    async with ApiClient(file_server.url) as api:
        await solve_login(api, *ZHANG)
        await api.change_password(ZHANG[1], NEW_ZHANG)
        order, _ = await paying_order(api)
        trade = trade_of(file_server, order.order_no)
        copy = tmp_path / "stolen.sqlite3"
        copy.write_bytes(file_bytes(db))  # the attacker's copy, WAL included
        candidates = set(HEX64.findall(copy.read_bytes()))
        with sqlite3.connect(copy) as conn:  # and every long value of every table
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                for row in conn.execute(f"SELECT * FROM {table}"):
                    candidates.update(str(v).encode() for v in row if len(str(v)) >= 32)
        keys = candidates | {bytes.fromhex(c.decode()) for c in candidates if HEX64.fullmatch(c)}
        body = forged_notify(trade)
        for key in keys:
            answer = await post_notify(file_server, body, sign(key, body))
            error_of(answer, 401, "BAD_SIGNATURE")  # no value in the copy is the key
        now = await api.get_order(order.order_no)
        assert (now.status, now.transaction_id) == ("open", None)


def test_the_keys_live_in_a_key_file_readable_by_its_owner_only(file_server):
    db = Path(file_server.config.db_path)
    keys = db.with_name("backend.keys")
    assert keys.exists(), sorted(p.name for p in db.parent.iterdir())
    assert mode(keys) == 0o600
    held = file_bytes(db)
    for secret in (file_server.backend.notify_secret, file_server.backend.code_secret):
        assert secret.hex().encode() not in held and secret not in held
    names = {r["key"] for r in rows(file_server, "SELECT key FROM settings")}
    assert not {n for n in names if "secret" in n or "key" in n}, names


def test_the_keys_survive_a_restart_on_the_same_database(file_server_config, clock):
    with BackgroundServer(file_server_config, clock) as first:
        before = (first.backend.notify_secret, first.backend.code_secret)
    with BackgroundServer(file_server_config, clock) as second:
        assert (second.backend.notify_secret, second.backend.code_secret) == before


def test_keys_from_the_environment_write_no_key_file(file_server_config, clock):
    config = replace(file_server_config, notify_key="11" * 32, reset_code_key="22" * 32)
    with BackgroundServer(config, clock) as running:
        assert running.backend.notify_secret == bytes.fromhex("11" * 32)
        assert running.backend.code_secret == bytes.fromhex("22" * 32)
        assert not Path(config.db_path).with_name("backend.keys").exists()


def test_keys_kept_in_an_existing_database_move_to_the_key_file(file_server_config, clock):
    db = Path(file_server_config.db_path)
    db.parent.mkdir()
    legacy = {"gateway_notify_secret": "ab" * 32, "reset_code_secret": "cd" * 32}
    old = Store(db)  # a database made by an earlier version: keys in its settings
    with old.write() as conn:
        for key, value in legacy.items():
            conn.execute("INSERT INTO settings(key, value) VALUES (?, ?)", (key, value))
    old.close()
    assert legacy["gateway_notify_secret"].encode() in file_bytes(db)
    with BackgroundServer(file_server_config, clock) as running:
        assert running.backend.notify_secret == bytes.fromhex(legacy["gateway_notify_secret"])
        assert running.backend.code_secret == bytes.fromhex(legacy["reset_code_secret"])
        assert rows(running, "SELECT key FROM settings WHERE key LIKE '%secret%'") == []
    held = file_bytes(db)
    for value in legacy.values():
        assert value.encode() not in held  # gone from the file, its free pages and WAL
    assert json.loads(db.with_name("backend.keys").read_text()) == {
        "notify": legacy["gateway_notify_secret"],
        "reset_code": legacy["reset_code_secret"],
    }


def test_a_key_file_others_can_read_is_refused(file_server_config, clock):
    with BackgroundServer(file_server_config, clock):
        pass
    keys = Path(file_server_config.db_path).with_name("backend.keys")
    keys.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        BackgroundServer(file_server_config, clock)


@pytest.fixture
def loose_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


async def test_every_file_the_backend_writes_is_its_owners_only_whatever_the_umask(
    loose_umask, file_server_config, clock
):
    db = Path(file_server_config.db_path)
    with BackgroundServer(file_server_config, clock) as running:
        async with ApiClient(running.url) as api:  # a write or two: the WAL fills
            await solve_login(api, *ZHANG)
        written = [db, *db.parent.glob("backend.sqlite3-*"), db.with_name("backend.keys")]
        assert {p.name for p in written} >= {
            "backend.sqlite3",
            "backend.sqlite3-wal",
            "backend.sqlite3-shm",
            "backend.keys",
        }
        assert {p.name: oct(mode(p)) for p in written} == {p.name: "0o600" for p in written}
    assert oct(mode(db.parent)) == "0o700"


def test_a_database_made_world_readable_before_is_tightened(file_server_config, clock):
    db = Path(file_server_config.db_path)
    db.parent.mkdir()
    Store(db).close()
    db.chmod(0o644)
    with BackgroundServer(file_server_config, clock):
        assert oct(mode(db)) == "0o600"


def test_the_clients_log_file_and_folder_are_its_owners_only(loose_umask, tmp_path, monkeypatch):
    import logging

    from epay_tui import cli

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "fresh" / "share"))
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        cli.log_to_file()
        logging.getLogger("epay_tui").warning("a line")
    finally:
        for handler in set(root.handlers) - set(before):
            handler.close()
            root.removeHandler(handler)
    log = tmp_path / "fresh" / "share" / "epay-tui" / "epay-tui.log"
    assert log.read_text(encoding="utf-8").endswith("a line\n")
    assert oct(mode(log)) == "0o600"
    assert oct(mode(log.parent)) == "0o700"


async def test_a_reset_code_is_nowhere_in_the_database_without_dev_hooks(
    tmp_path, clock, monkeypatch
):
    from epay_tui.server import security

    monkeypatch.setattr(security, "new_code", lambda: "482913")
    config = backend_config(db_path=str(tmp_path / "b.sqlite3"), dev_hooks=False)
    with BackgroundServer(config, clock) as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as http:
            assert (await http.post(f"{API}/captcha")).status_code == 200
            started = await http.post(
                f"{API}/password-reset/start",
                json={
                    "username": ZHANG[0],
                    "captcha_id": latest_captcha_id(running),
                    "captcha_answer": latest_captcha_answer(running),
                    **ZHANG_IDENTITY,
                },
            )
            send = {"reset_id": started.json()["reset_id"], "channel": "sms"}
            assert (await http.post(f"{API}/password-reset/send", json=send)).status_code == 204
        (sent,) = rows(running, "SELECT body FROM outbox")
        assert "验证码 ******" in sent["body"], sent  # the record of the send, code masked
        assert b"482913" not in file_bytes(Path(config.db_path))


def latest_captcha_id(server) -> str:
    (row,) = rows(server, "SELECT captcha_id FROM captchas ORDER BY seq DESC LIMIT 1")
    return row["captcha_id"]


# ============================================================================ 2. notify trust
async def test_a_correctly_signed_notify_the_gateway_does_not_confirm_pays_nothing(server, zhang):
    order, _ = await paying_order(zhang)  # nobody paid
    body = forged_notify(trade_of(server, order.order_no))
    answer = await post_notify(server, body, sign(server.backend.notify_secret, body))
    error_of(answer, 409, "NOTIFY_UNCONFIRMED")
    now = await zhang.get_order(order.order_no)
    assert (now.status, now.transaction_id, now.receipt_no) == ("open", None, None)
    assert [r["target"] for r in audited(server, "notify.unconfirmed")] == [order.order_no]


async def test_a_notify_with_another_transaction_than_the_gateways_pays_nothing(server, zhang):
    order, _ = await paid_without_notify(zhang)
    body = forged_notify(trade_of(server, order.order_no))  # its own transaction id
    answer = await post_notify(server, body, sign(server.backend.notify_secret, body))
    error_of(answer, 409, "NOTIFY_UNCONFIRMED")
    assert (await zhang.get_order(order.order_no)).transaction_id is None


async def test_a_notify_resent_to_another_channels_path_adds_no_discrepancy(server, zhang):
    order, _ = await paid_without_notify(zhang, "wechat")
    body = server.backend.sandbox.notify_body(trade_of(server, order.order_no))
    signature = sign(server.backend.notify_secret, body)
    for channel in ("alipay", "ccb", "alipay", "ccb"):
        answer = await post_notify(server, body, signature, channel)
        details = error_of(answer, 422, "VALIDATION_ERROR")
        assert "channel" in details["fields"]
    assert rows(server, "SELECT * FROM discrepancies") == []
    assert (await zhang.get_order(order.order_no)).status == "open"
    right = await post_notify(server, body, signature, "wechat")
    assert right.status_code == 200, right.text
    assert (await zhang.get_order(order.order_no)).status == "paid"


async def test_a_mismatched_amount_notify_sent_again_is_one_discrepancy(server, zhang):
    order, _ = await paid_without_notify(zhang)
    trade = trade_of(server, order.order_no)
    body = forged_notify(trade, amount=1, transaction_id=trade["transaction_id"])
    for _ in range(3):
        answer = await post_notify(server, body, sign(server.backend.notify_secret, body))
        error_of(answer, 400, "AMOUNT_MISMATCH")
    assert len(rows(server, "SELECT * FROM discrepancies")) == 1


async def test_reconciliation_lists_a_payment_recorded_but_not_on_the_statement(server, zhang):
    order, _ = await paying_order(zhang)
    trade = trade_of(server, order.order_no)
    # as a forged notify recorded it before notifies were confirmed
    with server.backend.order_locks.hold(order.order_no):
        payments.record_payment(
            server.backend,
            order.order_no,
            trade["trade_no"],
            "4200" + "9" * 24,
            TEN_AM.timestamp(),
            trade["amount"],
            "notify",
        )
    assert (await zhang.get_order(order.order_no)).status == "paid"
    async with ApiClient(server.url) as staff:
        await solve_login(staff, *STAFF)
        result = await staff.staff_reconcile(TEN_AM.date())
    listed = [(d.order_no, d.kind) for d in result.discrepancies]
    assert listed == [(order.order_no, "not_on_statement")]
    assert result.matched == 0


# ============================================================================ 3. lockout
@pytest.mark.parametrize("username", [ZHANG[0], "2024019999"], ids=["known", "unknown"])
async def test_thirty_parallel_wrong_passwords_get_at_most_five_checks(server, username):
    answers = await login_burst(server, username, [f"Wrong-pass-{i}" for i in range(30)])
    codes = Counter(a.json()["error"]["code"] for a in answers)
    assert codes["BAD_CREDENTIALS"] <= 4, codes
    assert codes["ACCOUNT_LOCKED"] >= 26, codes
    assert set(codes) == {"BAD_CREDENTIALS", "ACCOUNT_LOCKED"}, codes
    left = sorted(
        a.json()["error"]["details"]["attempts_left"] for a in answers if a.status_code == 401
    )
    assert left == sorted(set(left)), left  # each check counted once
    checks = len(audited(server, "password.failed")) + len(audited(server, "account.locked"))
    assert checks == 5


async def test_no_token_once_locked_even_for_the_right_password_in_a_burst(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for captcha in await captchas(http, 5):
            await http.post(
                f"{API}/auth/login",
                json={
                    "username": ZHANG[0],
                    "password": "Wrong-pass-9",
                    "captcha_id": captcha[0],
                    "captcha_answer": captcha[1],
                },
            )
    answers = await login_burst(server, ZHANG[0], [ZHANG[1]] * 10 + ["Wrong-1"] * 10)
    assert {a.status_code for a in answers} == {423}
    assert not any("token" in a.json() for a in answers)


# ============================================================================ 4. reset codes
async def _reset(http: httpx.AsyncClient) -> httpx.Response:
    (captcha,) = await captchas(http, 1)
    return await http.post(
        f"{API}/password-reset/start",
        json={
            "username": ZHANG[0],
            "captcha_id": captcha[0],
            "captcha_answer": captcha[1],
            **ZHANG_IDENTITY,
        },
    )


async def test_at_most_five_reset_codes_an_hour_across_resets(server, clock):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        reset_ids = []
        for _ in range(5):
            started = await _reset(http)
            assert started.status_code == 200, started.text
            reset_ids.append(started.json()["reset_id"])
            send = {"reset_id": reset_ids[-1], "channel": "sms"}
            assert (await http.post(f"{API}/password-reset/send", json=send)).status_code == 204
            clock.advance(61)
        details = error_of(await _reset(http), 429, "RATE_LIMITED")
        assert 0 < details["retry_after"] <= 3600 - 5 * 61 + 61
        resend = {"reset_id": reset_ids[-1], "channel": "email"}
        error_of(await http.post(f"{API}/password-reset/send", json=resend), 429, "RATE_LIMITED")
        outbox = (await http.get("/sandbox/outbox")).json()["messages"]
        assert len([m for m in outbox if "验证码" in m["body"]]) == 5
        clock.advance(details["retry_after"])
        assert (await _reset(http)).status_code == 200


async def test_the_reset_code_cap_says_nothing_to_a_wrong_identity(server, clock):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for _ in range(5):
            reset_id = (await _reset(http)).json()["reset_id"]
            send = {"reset_id": reset_id, "channel": "sms"}
            assert (await http.post(f"{API}/password-reset/send", json=send)).status_code == 204
        (captcha,) = await captchas(http, 1)
        wrong = await http.post(
            f"{API}/password-reset/start",
            json={
                "username": ZHANG[0],
                "name": "李四",
                "id_card_no": "320402200603152018",
                "captcha_id": captcha[0],
                "captcha_answer": captcha[1],
            },
        )
        error_of(wrong, 400, "RESET_IDENTITY_MISMATCH")


# ============================================================================ 5. staff accounts
async def test_another_staff_member_unlocks_a_locked_staff_account(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for captcha in await captchas(http, 5):
            last = await http.post(
                f"{API}/auth/login",
                json={
                    "username": STAFF[0],
                    "password": "Wrong-pass-9",
                    "captcha_id": captcha[0],
                    "captcha_answer": captcha[1],
                },
            )
        error_of(last, 423, "ACCOUNT_LOCKED")
    async with ApiClient(server.url) as finance, ApiClient(server.url) as helpdesk:
        await solve_login(finance, *FINANCE)
        await finance.staff_unlock(STAFF[0])
        result = await solve_login(helpdesk, *STAFF)
        assert result.role == "staff"
    assert [r["target"] for r in audited(server, "account.locked")] == [STAFF[0]]
    assert audited(server, "staff.unlock") == [
        {"actor": FINANCE[0], "action": "staff.unlock", "target": STAFF[0]}
    ]


async def test_finance01_is_a_demo_staff_member(server):
    async with ApiClient(server.url) as api:
        result = await solve_login(api, *FINANCE)
        assert (result.role, result.must_change_password) == ("staff", False)
        assert (await api.me()).name == "财务处"


async def test_unlock_of_an_unknown_username_is_not_found(server):
    async with ApiClient(server.url) as staff, httpx.AsyncClient(base_url=server.url) as http:
        await solve_login(staff, *STAFF)
        answer = await http.post(
            f"{API}/staff/students/nobody99/unlock",
            headers={"Authorization": f"Bearer {staff.token}"},
        )
        error_of(answer, 404, "STUDENT_NOT_FOUND")


# ============================================================================ 6. malformed input
@pytest.mark.parametrize(
    "signature",
    ["é" * 64, "ｆ" * 64, "zz" * 32, "ab" * 31, "ab" * 33, "0x" + "ab" * 31, "AB" * 32],
    ids=["latin1", "fullwidth", "not-hex", "short", "long", "0x-prefix", "upper-case"],
)
async def test_a_malformed_signature_is_bad_signature_never_a_5xx(server, signature):
    body = b'{"trade_no": "T1"}'
    raw = signature.encode("utf-8")
    answer = await post_notify(server, body, raw)
    error_of(answer, 401, "BAD_SIGNATURE")


@pytest.mark.parametrize(
    "phone",
    ["138٠٠٠٠٠٠٠١", "１３８００００００01", "13８00000001", "138۰۰۰۰۰۰۰۱"],
    ids=["arabic-indic", "fullwidth", "one-fullwidth", "persian"],
)
async def test_a_phone_in_other_digits_is_refused(server, zhang, phone):
    assert rules.phone_problem(phone) == "PHONE_INVALID"
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.patch(
            f"{API}/me",
            json={"current_password": NEW_ZHANG, "phone": phone},
            headers={"Authorization": f"Bearer {zhang.token}"},
        )
    assert "phone" in error_of(answer, 422, "VALIDATION_ERROR")["fields"]
    assert (await zhang.me()).phone == "13800000001"


def test_payment_hours_accept_ascii_digits_only():
    with pytest.raises(ValueError):
        rules.parse_payment_hours("0８:00-22:00")


# ============================================================================ 7. connections
GUARDED = {"request_timeout_seconds": 1.0}


@pytest.fixture
def guarded_server(clock):
    with BackgroundServer(backend_config(**GUARDED), clock) as running:
        yield running


async def _open(server, first: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    if first:
        writer.write(first)
        await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent before closing, waiting at most ``within`` seconds (a reset,
    when the server closes with our bytes unread, counts as closed)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout=within)
    except ConnectionResetError:
        return b""


@pytest.mark.parametrize(
    "first",
    [
        b"",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username":',
    ],
    ids=["silent", "half-headers", "half-body"],
)
async def test_a_stalled_request_is_dropped_while_others_are_answered(guarded_server, first):
    stalled = [await _open(guarded_server, first) for _ in range(10)]
    async with httpx.AsyncClient(base_url=guarded_server.url, timeout=5) as http:
        for _ in range(5):
            assert (await http.get("/healthz")).status_code == 200
    for reader, writer in stalled:
        await _closed_by_server(reader, within=5)  # 1 s timeout; EOF, not a timeout error
        writer.close()


async def test_a_slow_but_steady_request_is_dropped_at_the_deadline(guarded_server):
    reader, writer = await _open(guarded_server, b"GET /healthz HTTP/1.1\r\n")
    lines = 0
    try:
        while not reader.at_eof() and lines < 50:  # a header line every 0.1 s, never done
            writer.write(b"X-a: b\r\n")
            await writer.drain()
            lines += 1
            await asyncio.sleep(0.1)
        assert await _closed_by_server(reader, within=5) == b""
    except ConnectionError:
        pass  # closed while writing: dropped too
    assert lines < 50, "a request still coming after 5 s was never dropped"


async def test_a_long_poll_is_not_a_stalled_request(guarded_server):
    async with ApiClient(guarded_server.url) as api:
        await solve_login(api, *ZHANG)
        await api.change_password(ZHANG[1], NEW_ZHANG)
        order, _ = await paying_order(api)
        waited = await api.get_order(order.order_no, wait=2, status="open")
        assert waited.status == "open"  # answered after 2 s, past the 1 s request deadline


@pytest.fixture
def capped_server(clock):
    with BackgroundServer(backend_config(max_connections=20), clock) as running:
        yield running


async def test_connections_over_the_cap_are_closed_and_a_slot_freed_serves_again(capped_server):
    held = [await _open(capped_server) for _ in range(20)]
    over_reader, over_writer = await _open(capped_server, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert await _closed_by_server(over_reader, within=10) == b""  # closed, not answered
    over_writer.close()
    for reader, writer in held:  # hang up and wait until the server has seen it
        writer.write_eof()
        await _closed_by_server(reader, within=10)
        writer.close()
    async with httpx.AsyncClient(base_url=capped_server.url, timeout=5) as http:
        assert (await http.get("/healthz")).status_code == 200


def test_the_guard_defaults_are_thirty_seconds_and_a_cap():
    config = ServerConfig()
    assert config.request_timeout_seconds == 30
    assert 256 <= config.max_connections <= 10000


async def test_a_request_sent_at_once_is_answered_over_a_raw_socket(guarded_server):
    reader, writer = await _open(guarded_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


# ========================================================================= 8. pay page, statement
def _assert_locked_page(answer: httpx.Response) -> None:
    policy = answer.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in policy.split(";") if d.strip()}
    assert "default-src" in directives, policy
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", policy
    assert "'unsafe-inline'" not in policy, policy
    assert answer.headers.get("x-frame-options") == "DENY"
    assert "no-store" in answer.headers.get("cache-control", "")
    assert answer.headers.get("referrer-policy") == "no-referrer"  # the token is in the URL


async def test_the_pay_page_cannot_be_framed_cached_or_run_foreign_script(server, zhang):
    _, qr = await paying_order(zhang)
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get(httpx.URL(qr.qr_url).path)
        again = await http.get(httpx.URL(qr.qr_url).path)
        unknown = await http.get("/sandbox/pay/unknown-token")
    assert page.status_code == 200
    _assert_locked_page(page)
    _assert_locked_page(unknown)
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"])
    assert nonce, page.headers["content-security-policy"]
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert scripts and all(f'nonce="{nonce[1]}"' in s for s in scripts), scripts
    assert not re.search(r"\son[a-z]+=", page.text), "inline handlers need unsafe-inline"
    assert nonce[1] not in again.headers["content-security-policy"]  # fresh for each page


@pytest.mark.parametrize("peer", ["192.0.2.10", "10.1.2.3", "2001:db8::1"])
async def test_the_statement_answers_only_a_loopback_peer(server, peer):
    async with httpx.AsyncClient(base_url=server.url) as http:
        own = await http.get("/sandbox/statement", params={"date": "2026-11-26"})
        assert own.status_code == 200
    outside = httpx.ASGITransport(app=server.app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=outside, base_url="http://epay.example") as http:
        answer = await http.get("/sandbox/statement", params={"date": "2026-11-26"})
        error_of(answer, 403, "FORBIDDEN")
        assert "trades" not in answer.text


async def test_checks_lost_in_a_crash_free_their_slots_after_a_minute(server, clock):
    with server.backend.store.write() as conn:  # five checks counted, never finished
        conn.execute(
            "INSERT INTO login_failures(username, count, pending, pending_since)"
            " VALUES (?, 0, 5, ?)",
            (ZHANG[0], clock.now().timestamp()),
        )
    (refused,) = await login_burst(server, ZHANG[0], [ZHANG[1]])
    error_of(refused, 423, "ACCOUNT_LOCKED")  # every slot of the window is taken
    clock.advance(61)
    (answered,) = await login_burst(server, ZHANG[0], [ZHANG[1]])
    assert answered.status_code == 200, answered.text


async def test_a_right_password_between_wrong_ones_resets_the_count(server):
    answers = await login_burst(server, ZHANG[0], ["Wrong-1"] * 4)
    assert {a.status_code for a in answers} == {401}
    (right,) = await login_burst(server, ZHANG[0], [ZHANG[1]])
    assert right.status_code == 200
    again = await login_burst(server, ZHANG[0], ["Wrong-2"])
    assert again[0].json()["error"]["details"]["attempts_left"] == 4
