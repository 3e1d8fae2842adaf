"""Fuzz of the client's forms: hostile text pasted and typed into every field, then submitted.

Every text field of the login, the forced password change, the reset (steps 1 and 3), the
profile, the staff login, the helpdesk search and the kiosk staff-PIN dialog gets very
long, RTL, CJK, emoji, combining and multi-line text, and control characters: as a paste
(the event a bracketed paste becomes) and as keys (the bytes read by Textual's own
terminal parser). After each submit the app must still run and answer a key, stay on an
expected screen, show only catalog sentences, log nothing at ERROR and get no 5xx (nor an
error without the contract's body) from the live backend; a paste never submits and never
puts a line break into a field; no control character reaches a field or a request.
Findings are collected per form and reported together.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from textual import events
from textual._xterm_parser import XTermParser
from textual.pilot import Pilot
from textual.widgets import ContentSwitcher, Input
from textual.worker import Worker, WorkerState

from epay_tui.api.client import ApiClient
from epay_tui.api.kdf import hash_password
from epay_tui.app import make_app
from epay_tui.config import Settings
from epay_tui.i18n import has
from epay_tui.i18n.zh_CN import MESSAGES
from epay_tui.screens.change_password import ChangePasswordScreen
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.kiosk import StaffPin
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.profile import ProfileScreen
from epay_tui.screens.reset_password import ResetPasswordScreen
from epay_tui.screens.staff_login import StaffLoginScreen
from epay_tui.server import accounts
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.texts import Tr
from tests.conftest import CHEN, STAFF, ZHANG, ui_config
from tests.helpdesk_flows import notices
from tests.pilot_helpers import answer_for, settle_workers, until

SIZE = (80, 24)
PIN = "7391"
ZHANG_ID_CARD = "320402200603152018"
WRONG_PASSWORD = "Wrong2026pass"
MULTILINE = "2024010001\n152018Czgc\n"

# (label, text, how): "paste" is one paste, "keys" the same text typed. The values carry
# letters and digits (8-32 long) where they can, so that the password forms, which check the
# policy first, send them on.
CASES: tuple[tuple[str, str, str], ...] = (
    ("10000 chars", "Zz9" * 3333 + "Z", "paste"),
    ("RTL CJK emoji combining", "مرحبا שלום 张伟😀👨\u200d👩 e\u0301\u0323Zz2026", "paste"),
    ("multi-line", MULTILINE, "paste"),
    (
        "NUL BEL ESC DEL C1 TAB RLO CR",
        "\u202eFz2026\x00\x07\x1b[31mred\x7f\x9b\tok\r\nnext",
        "paste",
    ),
    (
        "RTL CJK emoji combining NUL BEL ESC RLO",
        "שלום张😀e\u0301Zz2026\x00\x07\x1b[31m\u202eok",
        "keys",
    ),
)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
CATALOG_KEY = re.compile(rf"\b(?:{'|'.join(sorted({k.split('.')[0] for k in MESSAGES}))})\.\w+")
NOT_A_SENTENCE = {"error.INTERNAL_ERROR", "error.UNKNOWN", "error.BAD_RESPONSE", "app.busy"}


def controls_in(text: str) -> list[str]:
    """The control characters (C0, DEL, C1) and bidi overrides in ``text``."""
    return [c for c in text if unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS]


# ---------------------------------------------------------------------------- the wire
@dataclass
class Exchange:
    method: str
    url: str
    body: bytes
    status: int
    answer: bytes

    def sent_strings(self) -> Iterator[str]:
        """Every string this request carried: query values and JSON body strings."""
        yield from (v for _, v in parse_qsl(urlsplit(self.url).query, keep_blank_values=True))
        if not self.body:
            return
        stack = [json.loads(self.body)]
        while stack:
            value = stack.pop()
            if isinstance(value, str):
                yield value
            elif isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)

    def code(self) -> str:
        try:
            return json.loads(self.answer)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return "-"

    def __str__(self) -> str:
        return f"{self.method} {urlsplit(self.url).path} -> {self.status} {self.code()}"


class Recorder(httpx.AsyncBaseTransport):
    """The client's real transport, keeping every request and answer it carried; and every
    worker the app started (a failed worker is a traceback nobody saw)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []
        self.submits_sent = 0
        self.workers: list[Worker] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        answer = await response.aread()
        await response.aclose()
        self.exchanges.append(
            Exchange(
                request.method, str(request.url), request.content, response.status_code, answer
            )
        )
        return httpx.Response(
            response.status_code, headers=response.headers, content=answer, request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()

    def watch_workers(self, app) -> None:
        """Keep every worker the app starts (Textual forgets them when they end)."""
        add = app.workers.add_worker

        def add_worker(worker: Worker, start: bool = True, exclusive: bool = True) -> None:
            self.workers.append(worker)
            add(worker, start=start, exclusive=exclusive)

        app.workers.add_worker = add_worker


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def ui_server_config() -> ServerConfig:
    """conftest's UI backend with no lockout (a fuzzed password must not end the run) and a
    slow sweep: no order expires here, and an idle process lets Pilot's waits end early."""
    return ui_config(tick_seconds=5, lock_after_failures=1_000_000)


@pytest.fixture
def errors_logged(caplog) -> Iterator[list[logging.LogRecord]]:
    """Records at ERROR or above from epay_tui and uvicorn (which does not propagate)."""
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.addHandler(caplog.handler)
    yield caplog.records
    uvicorn.removeHandler(caplog.handler)


# ---------------------------------------------------------------------------- forms
Setup = Callable[[Pilot, BackgroundServer], Awaitable[None]]


@dataclass(frozen=True)
class Form:
    name: str
    settings: dict
    fields: tuple[str, ...]
    submit_from: str
    screens: tuple[type, ...]
    """Where a submit may leave the app."""
    setup: Setup
    ready: Callable[[object], bool]
    values: Callable[[object, BackgroundServer], dict[str, str]]
    """What the other fields hold at each submit."""
    mirror: dict[str, str] = field(default_factory=dict)
    """A field whose value is copied to another before the submit (新密码 → 确认新密码)."""
    message: str = "message"
    sends: bool = True
    """Whether a submit goes to the backend (the kiosk's PIN is checked locally)."""


def _inputs(app) -> dict[str, Input]:
    return {i.id: i for i in app.screen.query(Input) if i.id}


async def _login_screen(pilot: Pilot, cls: type = LoginScreen) -> None:
    """On a ``cls`` form with a captcha to answer (换一张 when a refused submit spent it)."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, cls), cls.__name__)
    await settle_workers(pilot)
    if app.screen.captcha_id is None:
        await pilot.press("ctrl+r")
    await until(pilot, lambda: app.screen.captcha_id is not None, f"{cls.__name__} captcha")
    await settle_workers(pilot)


async def _log_in(pilot: Pilot, server: BackgroundServer, username: str, password: str) -> None:
    """Log in from a fresh login form (the values set, ``enter`` in 验证码)."""
    app = pilot.app
    if app.session is not None:
        await app.end_session()
    cls = StaffLoginScreen if app.settings.helpdesk else LoginScreen
    await _login_screen(pilot, cls)
    fields = _inputs(app)
    fields["username"].value = username
    fields["password"].value = password
    fields["captcha"].value = answer_for(server, app.screen.captcha_id)
    fields["captcha"].focus()
    await pilot.press("enter")
    await until(pilot, lambda: app.session is not None, f"{username} logged in")
    await settle_workers(pilot)


def _captcha(app, server: BackgroundServer) -> str:
    return answer_for(server, app.screen.captcha_id)


def _panel(app) -> str | None:
    return app.screen.query_one(ContentSwitcher).current


async def to_login(pilot: Pilot, server: BackgroundServer) -> None:
    await _login_screen(pilot)


async def to_staff_login(pilot: Pilot, server: BackgroundServer) -> None:
    await _login_screen(pilot, StaffLoginScreen)


async def to_forced_change(pilot: Pilot, server: BackgroundServer) -> None:
    """ZHANG with the initial password (given back in-process after a fuzzed change)."""
    staff = accounts.Session("", STAFF[0], "staff", False)
    accounts.staff_reset_password(server.backend, staff, ZHANG[0])
    await _log_in(pilot, server, *ZHANG)
    await until(pilot, lambda: isinstance(pilot.app.screen, ChangePasswordScreen), "修改密码")


async def _forgot(pilot: Pilot, username: str = "") -> None:
    """忘记密码 from a loaded login form (a fresh one if the app is elsewhere)."""
    app = pilot.app
    if not isinstance(app.screen, LoginScreen):
        app.show_fresh(app.login_screen())
    await _login_screen(pilot)
    app.screen.query_one("#username", Input).value = username
    app.screen.query_one("#forgot").press()
    await _login_screen(pilot, ResetPasswordScreen)


async def to_reset_identity(pilot: Pilot, server: BackgroundServer) -> None:
    await _forgot(pilot)


async def to_reset_complete(pilot: Pilot, server: BackgroundServer) -> None:
    """Steps 1 and 2 for ZHANG (code by SMS): the form of step 3."""
    app = pilot.app
    await _forgot(pilot, ZHANG[0])
    fields = _inputs(app)
    fields["name"].value = "张伟"
    fields["id_card"].value = ZHANG_ID_CARD
    fields["captcha"].value = _captcha(app, server)
    fields["captcha"].focus()
    await pilot.press("enter")
    await until(pilot, lambda: _panel(app) == "channels", "第二步")
    await settle_workers(pilot)
    app.screen.send()
    await until(pilot, lambda: _panel(app) == "complete", "第三步")
    await settle_workers(pilot)


async def to_profile(pilot: Pilot, server: BackgroundServer) -> None:
    await _log_in(pilot, server, *CHEN)
    await until(pilot, lambda: isinstance(pilot.app.screen, MenuScreen), "菜单")
    await pilot.press("3")
    await until(pilot, lambda: isinstance(pilot.app.screen, ProfileScreen), "个人信息")
    await settle_workers(pilot)


async def to_search(pilot: Pilot, server: BackgroundServer) -> None:
    await _log_in(pilot, server, *STAFF)
    await until(pilot, lambda: isinstance(pilot.app.screen, HelpdeskHome), "服务台")


async def to_pin(pilot: Pilot, server: BackgroundServer) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, LoginScreen), "login")
    await pilot.press("ctrl+q")
    await until(pilot, lambda: isinstance(pilot.app.screen, StaffPin), "the PIN dialog")


def _latest_code(server: BackgroundServer) -> str:
    with server.backend.store.read() as conn:
        row = conn.execute("SELECT body FROM outbox ORDER BY id DESC LIMIT 1").fetchone()
    return re.findall(r"\b\d{6}\b", row["body"])[0]


FORMS = {
    form.name: form
    for form in (
        Form(
            "login",
            {},
            ("username", "password", "captcha"),
            "captcha",
            (LoginScreen,),
            to_login,
            lambda app: isinstance(app.screen, LoginScreen) and app.screen.captcha_id is not None,
            lambda app, server: {
                "username": "2099000001",
                "password": WRONG_PASSWORD,
                "captcha": _captcha(app, server),
            },
        ),
        Form(
            "forced-change",
            {},
            ("new", "confirm"),
            "confirm",
            (ChangePasswordScreen, MenuScreen),  # a fuzzed password the policy allows is set
            to_forced_change,
            lambda app: isinstance(app.screen, ChangePasswordScreen),
            lambda app, server: {"new": "Fuzz2026pass", "confirm": "Fuzz2026pass"},
            mirror={"new": "confirm"},
        ),
        Form(
            "reset-identity",
            {},
            ("username", "name", "id_card", "captcha"),
            "captcha",
            (ResetPasswordScreen,),
            to_reset_identity,
            lambda app: (
                isinstance(app.screen, ResetPasswordScreen)
                and _panel(app) == "identity"
                and app.screen.captcha_id is not None
            ),
            lambda app, server: {
                "username": "2099000001",
                "name": "李四",
                "id_card": "320402200603150000",
                "captcha": _captcha(app, server),
            },
        ),
        Form(
            "reset-complete",
            {},
            ("code", "new", "confirm"),
            "confirm",
            (ResetPasswordScreen, LoginScreen),  # done: back to login
            to_reset_complete,
            lambda app: isinstance(app.screen, ResetPasswordScreen) and _panel(app) == "complete",
            lambda app, server: {
                "code": _latest_code(server),
                "new": "Fuzz2026pass",
                "confirm": "Fuzz2026pass",
            },
            mirror={"new": "confirm"},
        ),
        Form(
            "profile",
            {},
            ("phone", "email", "current"),
            "current",
            (ProfileScreen,),
            to_profile,
            lambda app: isinstance(app.screen, ProfileScreen),
            lambda app, server: {
                "phone": "13900000009",
                "email": "fuzz@example.edu.cn",
                "current": WRONG_PASSWORD,
            },
        ),
        Form(
            "staff-login",
            {"helpdesk": True},
            ("username", "password", "captcha"),
            "captcha",
            (StaffLoginScreen,),
            to_staff_login,
            lambda app: (
                isinstance(app.screen, StaffLoginScreen) and app.screen.captcha_id is not None
            ),
            lambda app, server: {
                "username": "helpdesk99",
                "password": WRONG_PASSWORD,
                "captcha": _captcha(app, server),
            },
        ),
        Form(
            "helpdesk-search",
            {"helpdesk": True},
            ("search",),
            "search",
            (HelpdeskHome,),
            to_search,
            lambda app: isinstance(app.screen, HelpdeskHome),
            lambda app, server: {},
        ),
        Form(
            "staff-pin",
            {"kiosk": True, "staff_pin_hash": hash_password(PIN)},
            ("pin",),
            "pin",
            (StaffPin,),
            to_pin,
            lambda app: isinstance(app.screen, StaffPin),
            lambda app, server: {},
            message="pin-message",
            sends=False,
        ),
    )
}


# ---------------------------------------------------------------------------- one case
async def deliver(pilot: Pilot, text: str, how: str) -> None:
    """A paste event (what a bracketed paste becomes), or the text typed: as a terminal's
    bytes read by Textual's own parser, so control bytes become the keys they are."""
    if how == "paste":
        pilot.app.post_message(events.Paste(text))
        await pilot.pause()
        return
    for event in XTermParser().feed(text):
        event.set_sender(pilot.app)
        pilot.app.post_message(event)
    await pilot.pause()


def _message(app, form: Form) -> Tr | None:
    found = app.screen.query(f"#{form.message}")
    return found.first(Tr) if found else None


def message_problems(app, form: Form) -> list[str]:
    """The message line holds a catalog sentence (or nothing), never a code or traceback."""
    line = _message(app, form)
    if line is None:
        return []
    text = str(line.render())
    problems = []
    if line.key and not has(line.key):
        problems.append(f"message key {line.key!r} is not in the catalog")
    if line.key in NOT_A_SENTENCE:
        problems.append(f"message {line.key} ({text!r}) means something broke")
    if "Traceback" in text or CATALOG_KEY.search(text):
        problems.append(f"message line shows {text!r}")
    for note in notices(app):
        if "Traceback" in note or "Error" in note:
            problems.append(f"a notification reads {note[:80]!r}")
    return problems


async def responsive_problems(pilot: Pilot, form: Form, key: str) -> list[str]:
    """``tab`` moves the focus on; ``f2`` switches the language and the message line with it
    (the next case runs on in that language)."""
    app = pilot.app
    before, focused = app.language, app.focused
    await pilot.press(key)
    if key == "tab":
        if app.focused is focused and len(app.screen.focus_chain) > 1:
            return ["tab did not move the focus"]
        return []
    if app.language == before:
        return ["f2 did not switch the language"]
    line = _message(app, form)
    if line is not None and str(line.render()) != line.text():
        return [f"after f2 the message line still reads {str(line.render())!r}"]
    return []


async def run_case(
    pilot: Pilot,
    form: Form,
    server: BackgroundServer,
    recorder: Recorder,
    logged: list[logging.LogRecord],
    target: str,
    case: tuple[str, str, str],
    key: str,
) -> list[str]:
    """Deliver one value into one field, submit, and say what went wrong (if anything)."""
    app = pilot.app
    label, text, how = case
    where = f"{form.name}.{target} <- {how} {label}"
    if not form.ready(app):
        await form.setup(pilot, server)
    screen = app.screen
    fields = _inputs(app)
    for name, value in form.values(app, server).items():
        fields[name].value = value
    fields[target].value = ""
    fields[target].focus()
    await pilot.pause()
    sent, seen_logs, seen_workers = len(recorder.exchanges), len(logged), len(recorder.workers)
    problems: list[str] = []

    await deliver(pilot, text, how)
    await settle_workers(pilot)
    value = fields[target].value
    if "\n" in value or "\r" in value:
        problems.append(f"a line break landed in the field: {value[:40]!r}")
    if controls_in(value):
        problems.append(f"the field holds control characters: {value[:40]!r}")
    if app.screen is not screen or len(recorder.exchanges) != sent:
        problems.append("delivering the value submitted the form by itself")
    for name, other in form.mirror.items():
        if name == target:
            fields[other].value = value

    fields[form.submit_from].focus()
    await pilot.press("enter")
    await settle_workers(pilot)
    recorder.submits_sent += len(recorder.exchanges) > sent

    if not app.is_running:
        return [f"{where}: the app stopped"]
    if not isinstance(app.screen, form.screens):
        problems.append(f"landed on {type(app.screen).__name__}")
    elif "captcha" in form.fields and app.screen.captcha_id is None:
        problems.append("the captcha is spent and no new one came: every submit now fails")
    problems += message_problems(app, form)
    for exchange in recorder.exchanges[sent:]:
        if exchange.status >= 500:
            problems.append(f"the backend answered {exchange}")
        if exchange.status >= 400 and exchange.code() == "-":
            problems.append(f"an error without the contract's body: {exchange}")
        for sent_text in exchange.sent_strings():
            if controls_in(sent_text):
                problems.append(f"control characters sent: {sent_text[:40]!r} in {exchange}")
    for worker in recorder.workers[seen_workers:]:
        if worker.state == WorkerState.ERROR:
            problems.append(f"worker {worker.name} failed: {worker.error!r}")
    for record in logged[seen_logs:]:
        if record.levelno >= logging.ERROR:
            problems.append(f"logged at {record.levelname}: {record.name} {record.getMessage()}")
    problems += await responsive_problems(pilot, form, key)
    return [f"{where}: {p}" for p in problems]


async def fuzz(
    form: Form,
    cases: tuple[tuple[str, str, str], ...],
    ui_server: BackgroundServer,
    clock,
    logged: list[logging.LogRecord],
) -> tuple[list[str], Recorder]:
    """Every case into every field of ``form``, on one app; all findings."""
    recorder = Recorder()
    app = make_app(
        Settings(server=ui_server.url, lang="zh", **form.settings),
        ApiClient(ui_server.url, transport=recorder),
        clock,
    )
    recorder.watch_workers(app)
    problems: list[str] = []
    async with app.run_test(size=SIZE, notifications=True) as pilot:  # toasts read too
        await form.setup(pilot, ui_server)
        for target in form.fields:
            for n, case in enumerate(cases, start=1):
                key = "f2" if n == len(cases) else "tab"  # a key after each submit
                problems += await run_case(
                    pilot, form, ui_server, recorder, logged, target, case, key
                )
                if not app.is_running:
                    return problems, recorder
    return problems, recorder


# ---------------------------------------------------------------------------- tests
def _is_control_finding(problem: str) -> bool:
    return "control characters" in problem


@pytest.mark.parametrize("form", list(FORMS))
async def test_fuzzed_form_keeps_working_and_keeps_control_characters_out(
    form, ui_server, clock, errors_logged
):
    problems, recorder = await fuzz(FORMS[form], CASES, ui_server, clock, errors_logged)
    assert (recorder.submits_sent > 0) == FORMS[form].sends, "submits that reached the backend"
    broken = [p for p in problems if not _is_control_finding(p)]
    assert not broken, "\n".join(broken)
    controls = [p for p in problems if _is_control_finding(p)]
    assert not controls, "\n".join(controls)


async def test_a_staff_login_refused_for_an_empty_field_keeps_a_captcha(make_ui_app, ui_server):
    """The fuzz's finding in one flow: 账号 left empty (a 10 000-character paste leaves it so)."""
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await _login_screen(pilot, StaffLoginScreen)
        screen = app.screen
        await pilot.press("tab", *STAFF[1], "tab", *_captcha(app, ui_server), "enter")
        await settle_workers(pilot)
        assert screen.query_one("#message", Tr).key == "login.missing"
        assert screen.captcha_id is not None, "the captcha was spent and no new one was shown"
        _inputs(app)["username"].value = STAFF[0]
        _inputs(app)["captcha"].value = _captcha(app, ui_server)
        _inputs(app)["captcha"].focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "服务台")
