"""The flow layer on its own, without a screen: the session's "pay the rest next" rule
and the backend's clock, fed by the live backend's own answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from epay_tui.api.client import ApiClient
from epay_tui.api.clock import ManualClock
from epay_tui.api.rules import first_group
from epay_tui.flow.session import ServerClock, Session
from tests.conftest import TEN_AM, ZHANG, solve_login


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
