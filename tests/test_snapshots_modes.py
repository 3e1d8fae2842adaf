"""Snapshots of helpdesk mode and kiosk mode, 80x24, zh and en.

Every shot is deterministic: captchas repeat from the backend's seed, times come from
the ManualClock (10:00 school time, moved only here), the helpdesk shots show no
order numbers (no orders are made: 王磊 has none, 对账 runs on a day without payments,
the audit list holds logins and staff actions only), workers are waited for and the
input cursor is held still before the shot. Waits are bounded loops on a condition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from epay_tui.api.kdf import hash_password
from epay_tui.screens.audit import AuditScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.kiosk import IdleCountdown, StaffPin
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.reconcile import ReconcileScreen
from epay_tui.screens.student_page import StudentPage
from epay_tui.widgets.texts import Tr
from tests import helpdesk_flows
from tests.conftest import CHEN, LI, WANG
from tests.payment_flows import log_in
from tests.pilot_helpers import clear_field, settle_workers, snapshot, until

LANGS = pytest.mark.parametrize("lang", ["zh", "en"])
SIZE = (80, 24)
IDLE = 60
PIN_HASH = hash_password("7391")

RunBefore = Callable[[Pilot], Awaitable[None]]


# ----------------------------------------------------------------------------- helpers
def shot(snap_compare, app, run_before: RunBefore) -> bool:
    return snapshot(snap_compare, app, run_before, SIZE)


def on(pilot: Pilot, screen_type: type) -> bool:
    return isinstance(pilot.app.screen, screen_type)


# ----------------------------------------------------------------------------- helpdesk
async def staff_form(pilot: Pilot) -> None:
    await helpdesk_flows.staff_form(pilot)
    await settle_workers(pilot)


async def staff_home(pilot: Pilot, server) -> None:
    await helpdesk_flows.staff_home(pilot, server)
    await settle_workers(pilot)


async def search(pilot: Pilot, query: str) -> None:
    await helpdesk_flows.search(pilot, query)
    await settle_workers(pilot)


async def student_page(pilot: Pilot, server, username: str) -> None:
    await staff_home(pilot, server)
    await search(pilot, username)
    await pilot.press("enter")
    await until(
        pilot, lambda: on(pilot, StudentPage) and pilot.app.screen.detail is not None, username
    )
    await settle_workers(pilot)


async def wang_page(pilot: Pilot, server) -> None:
    await student_page(pilot, server, WANG[0])


async def answer_dialog(pilot: Pilot, screen_type: type) -> None:
    """A confirmation is up: ``enter`` confirms; wait until ``screen_type`` is back."""
    await until(pilot, lambda: on(pilot, Choice), "a confirmation")
    await pilot.press("enter")
    await until(pilot, lambda: on(pilot, screen_type), "the dialog answered")


@LANGS
def test_staff_login(snap_compare, make_ui_app, ui_server, lang):
    """账号, 密码, 验证码 (the seeded captcha), 记住我, 登录; focus in 账号."""

    async def run_before(pilot):
        await staff_form(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_helpdesk_search_results(snap_compare, make_ui_app, ui_server, lang):
    """服务台: "2024" found the four demo students, the first highlighted."""

    async def run_before(pilot):
        await staff_home(pilot, ui_server)
        await search(pilot, "2024")

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_student_page_wang(snap_compare, make_ui_app, ui_server, lang):
    """王磊: who, contacts, 收费项 5 项 ¥8,330.00 owed, no orders; F3 F4 F7 in the key bar."""

    async def run_before(pilot):
        await wang_page(pilot, ui_server)

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_student_page_li_problems_in_words(snap_compare, make_ui_app, ui_server, lang):
    """李娜: her phone invalid and e-mail missing, said in words (never PHONE_INVALID)."""

    async def run_before(pilot):
        await student_page(pilot, ui_server, LI[0])

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_reset_password_question(snap_compare, make_ui_app, ui_server, lang):
    """F3 on 王磊: the question names 2024010003; 确定 focused, 取消 beside it."""

    async def run_before(pilot):
        await wang_page(pilot, ui_server)
        await pilot.press("f3")
        await until(pilot, lambda: on(pilot, Choice), "the question")

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_reset_password_done(snap_compare, make_ui_app, ui_server, lang):
    """F3, enter: the result line under 王磊's page."""

    async def run_before(pilot):
        await wang_page(pilot, ui_server)
        await pilot.press("f3")
        await answer_dialog(pilot, StudentPage)
        await until(
            pilot,
            lambda: pilot.app.screen.query_one("#result", Tr).key == "staff.reset_done",
            "the result",
        )

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_reconcile_result(snap_compare, make_ui_app, ui_server, lang):
    """对账 of 2026-11-26 (typed; no payments yet): 0 matched, nothing recovered."""

    async def run_before(pilot):
        await staff_home(pilot, ui_server)
        await pilot.press("f5")
        await until(pilot, lambda: on(pilot, ReconcileScreen), "对账")
        await clear_field(pilot)
        await pilot.press(*"2026-11-26", "enter")
        await answer_dialog(pilot, ReconcileScreen)
        await until(
            pilot,
            lambda: (
                pilot.app.screen.query_one("#reconcile-result", Tr).key == "staff.reconcile_result"
            ),
            "the result",
        )

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_audit_list(snap_compare, make_ui_app, ui_server, clock, lang):
    """审计日志 newest first: the unlock (10:02), the reset (10:01), then the logins."""

    async def run_before(pilot):
        await wang_page(pilot, ui_server)
        clock.advance(60)
        await pilot.press("f3")
        await answer_dialog(pilot, StudentPage)
        clock.advance(60)
        await pilot.press("f4")
        await answer_dialog(pilot, StudentPage)
        await settle_workers(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: on(pilot, HelpdeskHome), "服务台")
        await pilot.press("f6")
        await until(pilot, lambda: on(pilot, AuditScreen), "审计日志")
        table = pilot.app.screen.query_one("#audit", DataTable)
        await until(pilot, lambda: table.row_count >= 3, "audit rows")

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


# ----------------------------------------------------------------------------- kiosk
async def chen_menu(pilot: Pilot, server) -> None:
    await log_in(pilot, server, *CHEN)
    assert on(pilot, MenuScreen)
    await settle_workers(pilot)


@LANGS
def test_kiosk_idle_countdown(snap_compare, make_ui_app, ui_server, clock, lang):
    """陈静 idle past the timeout: "still there?" counting down from 20 s over the menu."""

    async def run_before(pilot):
        await chen_menu(pilot, ui_server)
        clock.advance(IDLE + 1)
        await until(pilot, lambda: on(pilot, IdleCountdown), "the countdown")

    app = make_ui_app(lang=lang, kiosk=True, idle_timeout=IDLE)
    assert shot(snap_compare, app, run_before)


@LANGS
def test_kiosk_staff_pin(snap_compare, make_ui_app, ui_server, lang):
    """ctrl+q at a kiosk with a staff PIN: the PIN field over the login."""

    async def run_before(pilot):
        await until(
            pilot,
            lambda: on(pilot, LoginScreen) and pilot.app.screen.captcha_id is not None,
            "the login with a captcha",
        )
        await settle_workers(pilot)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: on(pilot, StaffPin), "the PIN dialog")

    app = make_ui_app(lang=lang, kiosk=True, staff_pin_hash=PIN_HASH)
    assert shot(snap_compare, app, run_before)


@LANGS
def test_kiosk_without_a_pin(snap_compare, make_ui_app, ui_server, lang):
    """ctrl+q at a kiosk without a PIN: it says the kiosk cannot be quit."""

    async def run_before(pilot):
        await until(
            pilot,
            lambda: on(pilot, LoginScreen) and pilot.app.screen.captcha_id is not None,
            "the login with a captcha",
        )
        await settle_workers(pilot)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: on(pilot, StaffPin), "the PIN dialog")

    app = make_ui_app(lang=lang, kiosk=True)
    assert shot(snap_compare, app, run_before)
