"""Passwords, tokens and reset codes never in any log (the logs these tests wrote are scanned).

Every logger (root, epay_tui.*, uvicorn, uvicorn.access, httpx, httpcore) runs at DEBUG
into a file under tmp_path, next to the client's own log file (``cli.log_to_file``), and
the records are kept too. The runner's ``access_log=False`` only leaves uvicorn.access
without handlers: with ours attached, uvicorn writes its access lines as well. Account
flows run over the API and through the UI (Pilot): a wrong then a right login, the forced
password change, a full reset with the code read from the dev hooks' outbox, a profile
change with the password, a staff login and a staff reset, an order paid in the sandbox
(the gateway's signed notify), validation errors with a password in the body, bad bearer
tokens, and the kiosk's staff PIN. Every secret used is searched for (raw, URL-encoded,
JSON- and repr-escaped) in every file under tmp_path (the XDG dirs included), every record,
every URL the test clients requested and error body they got, and the audit log. A canary
logged at DEBUG, and expected lines, show that the scan is not vacuous.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from textual._xterm_parser import XTermParser
from textual.pilot import Pilot
from textual.widgets import ContentSwitcher, DataTable, Input

from epay_tui.api import errors
from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.kdf import hash_password
from epay_tui.cli import log_to_file
from epay_tui.screens.change_password import ChangePasswordScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.kiosk import StaffPin
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.profile import ProfileScreen
from epay_tui.screens.reset_password import ResetPasswordScreen
from epay_tui.screens.staff_login import StaffLoginScreen
from epay_tui.screens.student_page import StudentPage
from epay_tui.server import security
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.texts import Tr
from tests.conftest import CHEN, LI, STAFF, WANG, ZHANG, backend_config, solve_captcha, solve_login
from tests.pilot_helpers import answer_for, settle_workers, until

SIZE = (80, 24)
ZHANG_ID_CARD = "320402200603152018"
WANG_INITIAL = "221573Czgc"
LOGGERS = ("", "epay_tui", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CODE_LIKE = re.compile(r"\d{4,8}")


def new_password(tag: str) -> str:
    """A password the policy accepts, unique to this run, with characters that encode."""
    return f"{tag}#{secrets.token_hex(4)}@Pw9"


# ---------------------------------------------------------------------------- secrets
@dataclass
class Secrets:
    """Every secret a flow used: label -> value."""

    found: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, value: str | None) -> str:
        assert value and len(value) >= 6, f"{label} is too short to search for: {value!r}"
        self.found.setdefault(label, value)
        return value

    def token(self, label: str, api: ApiClient | None) -> None:
        assert api is not None and api.token, f"no token for {label}"
        self.add(label, api.token)

    def leaks(self, text: str) -> list[str]:
        """Labels of the secrets in ``text``, in any of their written forms."""
        out = []
        for label, value in self.found.items():
            for form in written_forms(value):
                if CODE_LIKE.fullmatch(form):  # a code: a whole number, not part of one
                    hit = re.search(rf"(?<!\d){form}(?!\d)", text)
                else:
                    hit = form in text
                if hit:
                    out.append(f"{label} ({form[:24]!r})")
                    break
        return out


def written_forms(value: str) -> set[str]:
    return {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }


# ---------------------------------------------------------------------------- logs
class Keep(logging.Handler):
    """Keeps every record, formatted (message, exception and all), and its raw args."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.setFormatter(logging.Formatter(FORMAT))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.format(record)} {record.args!r}")


@dataclass
class Logs:
    debug_file: Path
    client_file: Path
    kept: Keep

    def flush(self) -> None:
        for name in LOGGERS:
            for handler in logging.getLogger(name).handlers:
                handler.flush()


@pytest.fixture
def server_config() -> ServerConfig:
    """conftest's backend with a slow sweep (the notify goes out with the payment): an idle
    process lets Pilot's waits end early."""
    return backend_config(tick_seconds=5)


@pytest.fixture
def ui_server(server: BackgroundServer) -> BackgroundServer:
    """The UI flows use the same backend as the API flows (and its logs)."""
    return server


@pytest.fixture
def logs(server: BackgroundServer, tmp_path: Path) -> Iterator[Logs]:
    """Every logger at DEBUG into tmp_path/debug.log, the client's own log file, and memory.

    Set up after the backend: uvicorn configures its loggers (non-propagating) when built.
    """
    root = logging.getLogger()
    before = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
        for name in LOGGERS
    }
    log_to_file()  # the client's file in XDG_DATA_HOME (tmp_path), as the CLI sets it up
    (client,) = [h for h in root.handlers if h not in before[""][1]]
    assert isinstance(client, logging.FileHandler)
    client_file = Path(client.baseFilename)
    assert tmp_path in client_file.parents
    debug_file = tmp_path / "debug.log"
    to_file = logging.FileHandler(debug_file, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(FORMAT))
    kept = Keep()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        if name in ("", "uvicorn", "uvicorn.access"):  # where records end up
            logger.addHandler(to_file)
            logger.addHandler(kept)
    for name in ("uvicorn", "uvicorn.access"):  # these do not propagate: their records too
        logging.getLogger(name).addHandler(client)
    yield Logs(debug_file, client_file, kept)
    for name, (level, handlers) in before.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
                if handler is not kept:
                    handler.close()
        logger.setLevel(level)


class Tap(httpx.AsyncBaseTransport):
    """A test client's transport: every URL it requested (what an access log would hold)
    and every error body it got, appended to ``lines``."""

    def __init__(self, lines: list[str]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lines = lines

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        line = f"{request.method} {request.url} {response.status_code}"
        self.lines.append(line if response.status_code < 400 else f"{line} {body.decode()}")
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def watched(url: str, wire: list[str]) -> ApiClient:
    return ApiClient(url, transport=Tap(wire))


def scan(found: Secrets, logs: Logs, tmp_path: Path, *extra: tuple[str, str]) -> list[str]:
    """Where any secret was found: files under tmp_path, kept records, ``extra`` texts."""
    logs.flush()
    places = [
        (str(path.relative_to(tmp_path)), path.read_bytes().decode("utf-8", "replace"))
        for path in sorted(tmp_path.rglob("*"))
        if path.is_file()
    ]
    places.append(("log records", "\n".join(logs.kept.lines)))
    places += extra
    return [f"{label} in {where}" for where, text in places for label in found.leaks(text)]


def assert_logs_were_written(logs: Logs, *expected: str) -> None:
    """The scan is not vacuous: a DEBUG canary and the expected lines are in the files."""
    canary = f"canary-{secrets.token_hex(8)}"
    logging.getLogger("epay_tui.tests").debug("log canary %s", canary)
    logs.flush()
    debug_text = logs.debug_file.read_text(encoding="utf-8")
    client_text = logs.client_file.read_text(encoding="utf-8")
    assert canary in "\n".join(logs.kept.lines)
    for name, text in (("debug.log", debug_text), ("epay-tui.log", client_text)):
        assert f"DEBUG epay_tui.tests log canary {canary}" in text, f"{name} misses DEBUG"
    for line in expected:
        assert line in debug_text, f"{line!r} not in debug.log"
        assert line in client_text, f"{line!r} not in the client's log file"


# ---------------------------------------------------------------------------- API flows
async def test_api_flows_leave_no_secret_in_any_log(server, logs, tmp_path, monkeypatch):
    found, wire = Secrets(), []
    signatures: list[str] = []
    real_sign = security.sign

    def sign(key: bytes, body: bytes) -> str:
        signatures.append(real_sign(key, body))
        return signatures[-1]

    monkeypatch.setattr(security, "sign", sign)
    found.add("notify secret", server.backend.notify_secret.hex())
    found.add("reset code secret", server.backend.code_secret.hex())
    url = server.url

    # a wrong password, then the right one
    async with watched(url, wire) as chen:
        wrong = found.add("CHEN wrong password", new_password("Wrong"))
        with pytest.raises(errors.BadCredentials):
            await solve_login(chen, CHEN[0], wrong)
        await solve_login(chen, *found_pair(found, "CHEN", CHEN))
        found.token("CHEN token", chen)

        # an order paid in the sandbox: the gateway's notify is signed
        items = [i for tag in (await chen.fees()).tags for i in tag.items if i.state == "unpaid"]
        order = await chen.create_order([items[-1].id], new_idempotency_key())
        qr = await chen.pay_order(order.order_no, "wechat")
        async with watched(url, wire) as phone:
            await phone.sandbox_pay(qr.qr_url, "success")
        paid = await chen.get_order(order.order_no, wait=5, status="open")
        assert paid.status == "paid"
        assert signatures, "the gateway signed no notify"
        for n, signature in enumerate(signatures):
            found.add(f"notify signature {n}", signature)

        # a profile change needs the password (a wrong one first)
        with pytest.raises(errors.BadCredentials):
            await chen.update_me(
                found.add("CHEN wrong current", new_password("Cur")), phone="13900000004"
            )
        await chen.update_me(CHEN[1], phone="13900000004")

        # validation errors with a password in the body: refused, and not echoed
        long_password = found.add("200-char password", secrets.token_urlsafe(150)[:200])
        with pytest.raises(errors.ValidationFailed) as refused:
            await chen.change_password(long_password, found.add("new (422)", new_password("V")))
        assert long_password not in json.dumps(refused.value.details)
        with pytest.raises(errors.ValidationFailed):
            await chen.update_me(long_password, phone="13900000005")
        captcha_id, answer = await solve_captcha(chen)
        with pytest.raises(errors.ValidationFailed):
            await chen.login(CHEN[0], long_password, captcha_id, answer)

        # bad bearer tokens: made up, and a real one after logout
        revoked = chen.token
        await chen.logout()
        for label, token in (
            ("made-up token", secrets.token_urlsafe(32)),
            ("revoked token", revoked),
            ("token with a space", f"{secrets.token_urlsafe(12)} {secrets.token_urlsafe(12)}"),
        ):
            chen.token = found.add(label, token)
            with pytest.raises(errors.Unauthenticated):
                await chen.me()
        chen.token = None

    # the forced change after an initial password
    async with watched(url, wire) as zhang:
        await solve_login(zhang, *found_pair(found, "ZHANG initial", ZHANG))
        found.token("ZHANG token", zhang)
        changed = found.add("ZHANG changed", new_password("Zh"))
        with pytest.raises(errors.WeakPassword):
            await zhang.change_password(ZHANG[1], found.add("ZHANG weak try", "zhangwei123"))
        await zhang.change_password(ZHANG[1], changed)

    # a full reset: start, code by SMS, read from the outbox, complete
    async with watched(url, wire) as anon:
        captcha_id, answer = await solve_captcha(anon)
        started = await anon.reset_start(ZHANG[0], "张伟", ZHANG_ID_CARD, captcha_id, answer)
        await anon.reset_send(started.reset_id, "sms")
        outbox = await anon.outbox()
        body = next(m.body for m in outbox.messages if m.to == "13800000001")
        code = found.add("reset code", re.findall(r"\d{6}", body)[0])
        assert found.leaks(body) == [f"reset code ({code!r})"]  # the scan does see a code
        wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
        with pytest.raises(errors.ResetCodeInvalid):
            await anon.reset_complete(started.reset_id, found.add("wrong code", wrong_code), "x")
        reset_to = found.add("ZHANG reset", new_password("Rs"))
        await anon.reset_complete(started.reset_id, code, reset_to)
        with pytest.raises(errors.ValidationFailed):
            await anon.reset_complete(started.reset_id, code, long_password)
        await solve_login(anon, ZHANG[0], reset_to)
        found.token("ZHANG token after reset", anon)

    # LI fixes the profile; the staff resets WANG, who logs in with the initial password
    async with watched(url, wire) as li:
        await solve_login(li, *found_pair(found, "LI", LI))
        found.token("LI token", li)
        await li.update_me(LI[1], phone="13900000002", email="lina@example.edu.cn")
    async with watched(url, wire) as staff:
        with pytest.raises(errors.BadCredentials):
            await solve_login(staff, STAFF[0], found.add("staff wrong", new_password("St")))
        await solve_login(staff, *found_pair(found, "staff", STAFF))
        found.token("staff token", staff)
        await staff.staff_reset_password(WANG[0])
        async with watched(url, wire) as wang:
            await solve_login(wang, WANG[0], found.add("WANG initial", WANG_INITIAL))
            found.token("WANG token", wang)
        audit = await staff.staff_audit(limit=1000)
    audit_text = audit.model_dump_json()

    assert {"login", "password.failed", "reset.completed", "staff.reset_password"} <= {
        e.action for e in audit.entries
    }
    leaks = scan(
        found,
        logs,
        tmp_path,
        ("the URLs and error bodies", "\n".join(wire)),
        ("the audit log", audit_text),
    )
    assert not leaks, "\n".join(leaks)
    assert_logs_were_written(
        logs,
        f"HTTP Request: POST {url}/api/v1/auth/login",  # httpx, a request path
        "DEBUG epay_tui.server audit login",  # the backend at DEBUG
        "DEBUG httpcore.http11 receive_response_headers.complete",
        '"POST /api/v1/auth/login HTTP/1.1" 401',  # uvicorn's access log
    )


def found_pair(found: Secrets, label: str, account: tuple[str, str]) -> tuple[str, str]:
    """``(username, password)`` with the password recorded as a secret."""
    return account[0], found.add(f"{label} password", account[1])


# ---------------------------------------------------------------------------- UI flows
def _focused(app) -> str | None:
    return getattr(app.focused, "id", None)


def _message_key(app) -> str:
    return app.screen.query_one("#message", Tr).key


async def type_in(pilot: Pilot, *parts: str) -> None:
    """Type each text as a burst of keys (as a terminal sends them, through Textual's own
    parser); ``tab`` and ``enter`` are pressed as keys."""
    for part in parts:
        if part in ("tab", "enter"):
            await pilot.press(part)
            continue
        for event in XTermParser().feed(part):
            event.set_sender(pilot.app)
            pilot.app.post_message(event)
        await pilot.pause()


async def typed_login(pilot: Pilot, server: BackgroundServer, user: str, password: str) -> None:
    """学号/账号 → 密码 → 验证码 from the keyboard on a fresh login form, then enter."""
    app = pilot.app
    cls = StaffLoginScreen if app.settings.helpdesk else LoginScreen
    await until(
        pilot,
        lambda: isinstance(app.screen, cls) and app.screen.captcha_id is not None,
        "a login form with a captcha",
    )
    await settle_workers(pilot)
    for name in ("username", "password", "captcha"):
        app.screen.query_one(f"#{name}", Input).value = ""
    app.screen.query_one("#username", Input).focus()
    await pilot.pause()
    answer = answer_for(server, app.screen.captcha_id)
    await type_in(pilot, user, "tab", password, "tab", answer, "enter")
    await settle_workers(pilot)


async def test_ui_flows_leave_no_secret_in_any_log(make_ui_app, server, logs, tmp_path):
    found, wire = Secrets(), []

    # the student's client: wrong then right login, profile with the password, logout
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        wrong = found.add("CHEN wrong password (UI)", new_password("Wrong"))
        await typed_login(pilot, server, CHEN[0], wrong)
        assert _message_key(app) == "error.BAD_CREDENTIALS"
        await typed_login(pilot, server, CHEN[0], found.add("CHEN password", CHEN[1]))
        await until(pilot, lambda: isinstance(app.screen, MenuScreen), "menu")
        found.token("CHEN token (UI)", app.api)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, ProfileScreen), "profile")
        await settle_workers(pilot)
        phone = app.screen.query_one("#phone", Input)
        phone.value = ""
        phone.focus()
        await type_in(pilot, "13900000004", "tab", "tab", CHEN[1], "enter")
        await until(pilot, lambda: _message_key(app) == "profile.saved", "saved")
        await pilot.press("escape", "5")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "logged out")

        # ZHANG: the forced change, typed
        await typed_login(pilot, server, ZHANG[0], found.add("ZHANG initial", ZHANG[1]))
        await until(pilot, lambda: isinstance(app.screen, ChangePasswordScreen), "修改密码")
        found.token("ZHANG token (UI)", app.api)
        changed = found.add("ZHANG changed (UI)", new_password("Zh"))
        await type_in(pilot, changed, "tab", changed, "enter")
        await until(pilot, lambda: isinstance(app.screen, MenuScreen), "menu")
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "logged out")

        # a full reset through the screens, the code read from the outbox over the dev hook
        await settle_workers(pilot)
        app.screen.query_one("#username", Input).value = ZHANG[0]
        app.screen.query_one("#forgot").press()
        await until(
            pilot,
            lambda: isinstance(app.screen, ResetPasswordScreen) and app.screen.captcha_id,
            "忘记密码",
        )
        await settle_workers(pilot)
        answer = answer_for(server, app.screen.captcha_id)
        await type_in(pilot, "张伟", "enter", ZHANG_ID_CARD, "enter", answer, "enter")
        switcher = app.screen.query_one(ContentSwitcher)
        await until(pilot, lambda: switcher.current == "channels", "第二步")
        await until(pilot, lambda: _focused(app) == "channel", "the channels")
        await pilot.press("tab", "enter")
        await until(pilot, lambda: switcher.current == "complete", "第三步")
        async with watched(server.url, wire) as dev:
            outbox = await dev.outbox()
        body = [m.body for m in outbox.messages if m.to == "13800000001"][-1]
        code = found.add("reset code (UI)", re.findall(r"\d{6}", body)[0])
        reset_to = found.add("ZHANG reset (UI)", new_password("Rs"))
        await type_in(pilot, code, "enter", reset_to, "enter", reset_to, "enter")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "back on login")
        await until(pilot, lambda: _message_key(app) == "reset.done", "reset done")
        await typed_login(pilot, server, ZHANG[0], reset_to)
        await until(pilot, lambda: isinstance(app.screen, MenuScreen), "menu")
        found.token("ZHANG token after reset (UI)", app.api)

    # the helpdesk: a wrong then a right staff login, a reset of WANG, the audit screen
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await typed_login(pilot, server, STAFF[0], found.add("staff wrong (UI)", new_password("S")))
        assert _message_key(app) == "error.BAD_CREDENTIALS"
        await typed_login(pilot, server, STAFF[0], found.add("staff password", STAFF[1]))
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "服务台")
        found.token("staff token (UI)", app.api)
        await until(pilot, lambda: _focused(app) == "search", "search")
        await type_in(pilot, WANG[0], "enter")
        await until(pilot, lambda: isinstance(app.focused, DataTable), "results")
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, StudentPage) and app.screen.detail, "page"
        )
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, Choice), "the question")
        await pilot.press("enter")
        await until(
            pilot, lambda: app.screen.query_one("#result", Tr).key == "staff.reset_done", "done"
        )
        await pilot.press("escape", "f6")
        await until(pilot, lambda: type(app.screen).__name__ == "AuditScreen", "审计日志")
        await settle_workers(pilot)
        audit_screen = "\n".join(
            str(cell)
            for table in app.screen.query(DataTable)
            for row in range(table.row_count)
            for cell in table.get_row_at(row)
        )
        assert WANG[0] in audit_screen

    # the kiosk's staff PIN: a wrong one, then the right one quits
    pin = found.add("kiosk PIN", f"Pin{secrets.token_hex(3)}")
    app = make_ui_app(kiosk=True, staff_pin_hash=hash_password(pin))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, StaffPin), "the PIN")
        await type_in(pilot, found.add("wrong PIN", f"Pin{secrets.token_hex(3)}"), "enter")
        await until(
            pilot,
            lambda: app.screen.query_one("#pin-message", Tr).key == "kiosk.pin_wrong",
            "wrong",
        )
        await type_in(pilot, pin, "enter")
        await until(pilot, lambda: not app.is_running, "quit")

    async with watched(server.url, wire) as staff:
        await solve_login(staff, *STAFF)
        audit = await staff.staff_audit(limit=1000)
    leaks = scan(
        found,
        logs,
        tmp_path,
        ("the URLs and error bodies", "\n".join(wire)),
        ("the audit log", audit.model_dump_json()),
        ("the audit screen", audit_screen),
    )
    assert not leaks, "\n".join(leaks)
    assert_logs_were_written(
        logs,
        "INFO epay_tui.screens login answered BAD_CREDENTIALS",  # the client's own line
        f"HTTP Request: POST {server.url}/api/v1/auth/login",
        "DEBUG epay_tui.server audit password.changed",
        '"POST /api/v1/password-reset/complete HTTP/1.1" 204',
    )


# ---------------------------------------------------------------------------- typos
async def test_a_password_typed_as_the_username_is_not_kept(server, logs, tmp_path):
    """The classic slip: the password typed into 学号. The backend counts the failure (and
    audits it) under what was typed; that must not keep the password readable."""
    found, wire = Secrets(), []
    slip = found.add("password typed as the username", new_password("Slip"))
    async with watched(server.url, wire) as api:
        with pytest.raises(errors.BadCredentials):
            await solve_login(api, slip, slip)
        await solve_login(api, *STAFF)
        audit = await api.staff_audit(limit=1000)
    assert "password.failed" in {e.action for e in audit.entries}
    leaks = scan(found, logs, tmp_path, ("the audit log", audit.model_dump_json()))
    assert not leaks, "\n".join(leaks)
