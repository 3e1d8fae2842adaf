"""The flow layer on its own, without a screen (no Pilot): the session's "pay the rest
next" rule, the backend's clock and paying, against the live backend."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from epay_tui.api import errors
from epay_tui.api.client import ApiClient
from epay_tui.api.clock import ManualClock
from epay_tui.api.rules import first_group
from epay_tui.flow import helpdesk
from epay_tui.flow.login import log_in, log_in_staff, resume_staff
from epay_tui.flow.paying import UNFINISHED, Checkout, changed, next_state, switch_channel
from epay_tui.flow.reset import PasswordReset
from epay_tui.flow.session import ServerClock, Session
from tests.conftest import CHEN, STAFF, TEN_AM, ZHANG, free_port, solve_captcha, solve_login


async def zhangs_items(server) -> dict:
    async with ApiClient(server.url) as api:
        await solve_login(api, *ZHANG)
        await api.change_password(ZHANG[1], "Zhangwei2026x")
        fees = await api.fees()
    return {item.id: item for item in fees.tags[0].items}


async def test_select_all_on_a_mix_leaves_the_agency_fees_for_after_the_first_payment(server):
    items = await zhangs_items(server)
    now, later = first_group(list(items.values()))
    assert {i.name for i in now} == {"学费", "住宿费"}
    session = Session("2024010001", "student")
    session.leave_for_later(later)
    assert session.take_next(items) == []  # nothing comes next before a payment
    session.leave_for_later(later)
    session.order_paid()
    assert session.next_group == []
    assert {i.name for i in session.take_next(items)} == {"教材费", "保险费", "体检费"}
    assert session.take_next(items) == []  # once


async def test_what_comes_next_skips_what_was_paid_or_is_in_an_order_meanwhile(server):
    items = await zhangs_items(server)
    _, later = first_group(list(items.values()))
    session = Session("2024010001", "student")
    session.leave_for_later(later)
    session.order_paid()
    textbook = next(i for i in later if i.name == "教材费")
    elsewhere = textbook.model_copy(update={"state": "in_order"})
    assert "教材费" not in {i.name for i in session.take_next({**items, textbook.id: elsewhere})}


@pytest.mark.parametrize(
    ("kiosk_off_by", "corrected"),
    [
        (timedelta(0), False),
        (timedelta(seconds=4), False),
        (timedelta(minutes=20), True),
        (timedelta(minutes=-20), True),
    ],
    ids=["same", "latency", "fast", "slow"],
)
async def test_the_backends_clock_is_followed_when_this_machine_is_more_than_5_s_off(
    server, kiosk_off_by, corrected
):
    kiosk = ServerClock(ManualClock(TEN_AM + kiosk_off_by))
    async with ApiClient(server.url) as api:
        kiosk.saw(await api.meta())
    assert kiosk.meta is not None and kiosk.meta.school
    if corrected:
        assert kiosk.offset == -kiosk_off_by
        assert kiosk.now() == TEN_AM
    else:
        assert kiosk.offset == timedelta(0)
        assert kiosk.now() == TEN_AM + kiosk_off_by


# ---------------------------------------------------------------------------- paying
async def zhang_logged_in(server) -> ApiClient:
    api = ApiClient(server.url)
    await solve_login(api, *ZHANG)
    await api.change_password(ZHANG[1], "Zhangwei2026x")
    return api


async def test_a_checkout_submitted_twice_is_one_order_with_one_qr(server):
    api = await zhang_logged_in(server)
    async with api:
        items = {i.name: i for i in (await api.fees()).tags[0].items}
        checkout = Checkout([items["学费"], items["住宿费"]])
        assert (checkout.total, checkout.receipt_type) == (770000, "fiscal")
        order, qr = await checkout.submit(api, "wechat")
        again, qr_again = await checkout.submit(api, "wechat")  # 网络繁忙, the key again
        assert again.order_no == order.order_no == checkout.order.order_no
        assert qr_again.qr_url == qr.qr_url
        assert len((await api.list_orders()).orders) == 1


async def test_following_an_order_sees_the_phone_pay_and_a_switch_closes_the_old_trade(
    server,
):
    api = await zhang_logged_in(server)
    async with api, ApiClient(server.url) as phone:
        items = {i.name: i for i in (await api.fees()).tags[0].items}
        order, first = await Checkout([items["教材费"]]).submit(api, "wechat")
        qr, switched = await switch_channel(api, order.order_no, "alipay")
        assert qr.qr_url != first.qr_url and qr.channel == "alipay"
        assert changed(order, switched)  # another QR: 扫码支付 shows it
        paying = asyncio.ensure_future(next_state(api, switched))
        with pytest.raises(errors.TradeClosed):  # the old QR takes no money any more
            await phone.sandbox_pay(first.qr_url, "success")
        await phone.sandbox_pay(qr.qr_url, "success")
        paid = await paying
        assert paid.status == "paid" and changed(switched, paid)
        assert paid.status not in UNFINISHED


# ---------------------------------------------------------------------------- logging in
async def test_a_login_is_a_session_with_the_profile_the_header_shows(server):
    async with ApiClient(server.url) as api:
        session, result = await log_in(api, ZHANG[0], ZHANG[1], *await solve_captcha(api))
        assert (session.username, session.role, session.profile.name) == (
            ZHANG[0],
            "student",
            "张伟",
        )
        assert result.must_change_password and result.password_issue == "initial"
        assert api.token


async def test_a_student_account_cannot_open_the_helpdesk(server):
    async with ApiClient(server.url) as api:
        assert await log_in_staff(api, CHEN[0], CHEN[1], *await solve_captcha(api)) is None
        assert api.token is None  # logged out again
        session = await log_in_staff(api, STAFF[0], STAFF[1], *await solve_captcha(api))
        assert session is not None and session.role == "staff"


async def test_a_remembered_staff_token_resumes_only_while_it_is_a_live_staff_session(server):
    async with ApiClient(server.url) as staff, ApiClient(server.url) as student:
        await solve_login(staff, *STAFF)
        await solve_login(student, *CHEN)
        async with ApiClient(server.url) as counter:
            resumed = await resume_staff(counter, staff.token)
            assert resumed is not None and resumed.username == STAFF[0]
            assert await resume_staff(counter, student.token) is None
            assert counter.token is None
            token = staff.token
            await staff.logout()
            assert await resume_staff(counter, token) is None  # logged out since
            assert await resume_staff(counter, "not-a-token") is None


async def test_a_backend_that_cannot_answer_keeps_the_remembered_token(server):
    async with ApiClient(f"http://127.0.0.1:{free_port()}", timeout=2) as counter:
        with pytest.raises(errors.TransportError):
            await resume_staff(counter, "a-remembered-token")
        assert counter.token is None


# ---------------------------------------------------------------------------- 忘记密码
ZHANG_ID_CARD = "320402200603152018"


async def test_a_password_reset_step_by_step_then_the_new_password_logs_in(server, clock):
    reset = PasswordReset()
    async with ApiClient(server.url) as api:
        assert reset.step == "identity"
        with pytest.raises(errors.ResetIdentityMismatch):
            await reset.start(api, ZHANG[0], "张三", ZHANG_ID_CARD, await solve_captcha(api))
        assert reset.step == "identity"
        started = await reset.start(api, ZHANG[0], "张伟", ZHANG_ID_CARD, await solve_captcha(api))
        assert (reset.step, reset.username) == ("channels", ZHANG[0])
        assert [c.channel for c in started.channels] == ["sms", "email"]

        to = await reset.send(api, clock.now(), "email")
        assert (reset.step, reset.channel) == ("complete", "email")
        assert "@" in to and to != "zhangwei@example.edu.cn"  # masked
        assert reset.resend_in(clock.now()) == 60
        assert reset.resend_in(clock.now() + timedelta(seconds=59.5)) == 1
        assert reset.resend_in(clock.now() + timedelta(seconds=60)) == 0
        clock.advance(61)
        resent_to = await reset.send(api, clock.now(), "sms")
        assert (resent_to, reset.channel) == (to, "email")  # a resend goes where the first went

        body = (await api.outbox()).messages[-1].body
        [code] = re.findall(r"(?<!\d)\d{6}(?!\d)", body)
        await reset.complete(api, code, "Zhangwei2027y")
    async with ApiClient(server.url) as api:
        assert (await solve_login(api, ZHANG[0], "Zhangwei2027y")).role == "student"


async def test_a_voided_reset_starts_again_at_who_you_are(server, clock):
    reset = PasswordReset()
    async with ApiClient(server.url) as api:
        await reset.start(api, ZHANG[0], "张伟", ZHANG_ID_CARD, await solve_captcha(api))
        await reset.send(api, clock.now())
        for _ in range(5):
            with pytest.raises(errors.ApiError) as refused:
                await reset.complete(api, "000000", "Zhangwei2027y")
        assert isinstance(refused.value, errors.ResetExpired | errors.ResetCodeInvalid)
        reset.restart()
        assert (reset.step, reset.channel, reset.sent_at) == ("identity", None, None)


# ---------------------------------------------------------------------------- helpdesk
async def test_the_counter_finds_a_student_sees_the_fees_at_a_glance_and_resets(server):
    async with ApiClient(server.url) as staff:
        await solve_login(staff, *STAFF)
        found = await helpdesk.find_students(staff, " 2024010004 ")
        assert [s.username for s in found.students] == [CHEN[0]]
        chen = await helpdesk.open_student(staff, CHEN[0])
        glance = helpdesk.FeesAtAGlance.of(chen.fees)
        items = [i for tag in chen.fees.tags for i in tag.items]
        assert glance.count == len(items) > 0
        assert 0 < glance.owed < sum(i.amount_due for i in items)  # tuition and dorm paid
        assert glance.paying == 0

        await helpdesk.reset_password(staff, CHEN[0])
        newest = (await helpdesk.audit_log(staff)).entries[0]
        assert (newest.actor, newest.target) == (STAFF[0], CHEN[0])
    async with ApiClient(server.url) as api:
        assert (await solve_login(api, CHEN[0], "304610Czgc")).must_change_password
