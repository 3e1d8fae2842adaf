"""Fees, orders, the gateway sandbox, notifies, expiry and reconciliation over real HTTP.

Every test talks to a live reference backend (``server``) through the typed client or
raw httpx; ``server.backend`` is read only to check what the API cannot show (the
gateway's own trades, discrepancies). Time moves only through ``clock``; waiting is
done with long polls, never with sleeps.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from epay_tui.api import errors
from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.models import FeeItem, Order, StatementTrade
from epay_tui.server.config import ServerConfig
from tests.api_helpers import error_of, post_notify
from tests.conftest import CHEN, LI, STAFF, TEN_AM, ZHANG, backend_config, sign
from tests.invariants import assert_store_invariants, rows, store_violations

CURRENT = "2026-2027学年"
PREVIOUS = "2025-2026学年"
PAYEE = "常州工程职业技术学院"
ON_BOTH_DATABASES = True  # every test here on SQLite and on PostgreSQL (conftest)
TODAY = TEN_AM.date()
NEW_PW = "Zhangwei2026x"
FISCAL = ("学费", "住宿费")
AGENCY = ("教材费", "保险费", "体检费")
DUE = {"学费": 650000, "住宿费": 120000, "教材费": 42000, "保险费": 15000, "体检费": 6000}
KINDS = {
    "学费": "tuition",
    "住宿费": "accommodation",
    "教材费": "agency",
    "保险费": "agency",
    "体检费": "agency",
}
UNKNOWN_ORDER = "20261126" + "9" * 10


# ---------------------------------------------------------------------------- config
def _config(**overrides: Any) -> ServerConfig:
    # the clock jumps hours in some tests: keep sessions alive across the jumps
    return backend_config(**{"session_idle_seconds": 7 * 24 * 3600, **overrides})


@pytest.fixture
def server_config(request: pytest.FixtureRequest) -> ServerConfig:
    return _config(**getattr(request, "param", {}))


SHORT_TTL = pytest.mark.parametrize(
    "server_config", [{"order_ttl_seconds": 60}], indirect=True, ids=["ttl60"]
)


# ---------------------------------------------------------------------------- helpers
async def zhang(login) -> ApiClient:
    """ZHANG's first device (the forced password change done)."""
    return await login(*ZHANG, new_password=NEW_PW)


async def zhang_device(login) -> ApiClient:
    """Another device of ZHANG, after the first one changed the password."""
    return await login(ZHANG[0], NEW_PW)


async def fee_map(api: ApiClient, tag: str = CURRENT) -> dict[str, FeeItem]:
    fees = await api.fees()
    for group in fees.tags:
        if group.tag == tag:
            return {item.name: item for item in group.items}
    raise AssertionError(f"no tag {tag} in {[g.tag for g in fees.tags]}")


async def ids(api: ApiClient, *names: str) -> list[str]:
    items = await fee_map(api)
    return [items[name].id for name in names]


async def order_for(api: ApiClient, *names: str, key: str | None = None) -> Order:
    return await api.create_order(await ids(api, *names), key or new_idempotency_key())


def auth(api: ApiClient | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token}"} if api is not None and api.token else {}


async def raw(
    server,
    method: str,
    path: str,
    api: ApiClient | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await http.request(method, path, headers={**auth(api), **(headers or {})}, **kwargs)


async def post_order(
    server, api: ApiClient, item_ids: list[str], key: str | None
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await raw(
        server, "POST", "/api/v1/orders", api, headers=headers, json={"item_ids": item_ids}
    )


async def refused(coro, code: str) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as info:
        await coro
    assert info.value.code == code, info.value
    return info.value


def pay_path(qr_url: str) -> str:
    return "/sandbox/pay/" + qr_url.rstrip("/").rsplit("/", 1)[-1]


async def pay_page(server, qr_url: str) -> httpx.Response:
    return await raw(server, "GET", pay_path(qr_url))


async def messages_for(api: ApiClient, order_no: str) -> list:
    return [m for m in (await api.outbox()).messages if order_no in m.body]


async def statement_trade(api: ApiClient, order_no: str) -> StatementTrade:
    trades = [t for t in (await api.sandbox_statement(TODAY)).trades if t.order_no == order_no]
    assert len(trades) == 1, trades
    return trades[0]


def notify_body(trade: StatementTrade, **changes: Any) -> bytes:
    body = {
        "trade_no": trade.trade_no,
        "order_no": trade.order_no,
        "channel": trade.channel,
        "amount": trade.amount,
        "trade_state": "SUCCESS",
        "transaction_id": trade.transaction_id,
        "paid_at": trade.paid_at.isoformat(),
    }
    body.update(changes)
    return json.dumps(body, ensure_ascii=False).encode()


def gw_states(server, order_no: str) -> list[str]:
    return [
        r["state"] for r in rows(server, "SELECT state FROM gw_trades WHERE order_no=?", order_no)
    ]


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return TEN_AM.replace(hour=hour, minute=minute, second=second)


# ============================================================================ fees
async def test_fees_current_tag_first_with_kinds_and_receipt_types(login):
    api = await zhang(login)
    fees = await api.fees()
    assert [t.tag for t in fees.tags] == [CURRENT, PREVIOUS]
    current = {i.name: i for i in fees.tags[0].items}
    assert set(current) == set(DUE)
    for name, item in current.items():
        assert item.kind == KINDS[name]
        assert item.receipt_type == ("fiscal" if name in FISCAL else "receipt")
        assert (item.amount_due, item.amount_paid, item.outstanding) == (DUE[name], 0, DUE[name])
        assert (item.state, item.order_no) == ("unpaid", None)
    assert len({i.id for i in current.values()}) == 5


async def test_fees_zhang_has_previous_year_tuition_and_accommodation_paid(login):
    api = await zhang(login)
    previous = await fee_map(api, PREVIOUS)
    assert set(previous) == set(FISCAL)
    for item in previous.values():
        assert item.state == "paid"
        assert item.amount_paid == item.amount_due == DUE[item.name]
        assert item.outstanding == 0
        assert item.receipt_type == "fiscal"


async def test_fees_chen_tuition_and_accommodation_paid_agency_unpaid(login):
    api = await login(*CHEN)
    items = await fee_map(api)
    for name in FISCAL:
        assert items[name].state == "paid"
        assert items[name].outstanding == 0
        assert items[name].amount_paid == DUE[name]
    for name in AGENCY:
        assert items[name].state == "unpaid"
        assert items[name].amount_paid == 0


async def test_fee_states_follow_the_order_in_order_then_paid(login):
    api = await login(*CHEN)
    order = await order_for(api, "教材费", "保险费")
    items = await fee_map(api)
    for name in ("教材费", "保险费"):
        assert (items[name].state, items[name].order_no) == ("in_order", order.order_no)
    assert (items["体检费"].state, items["体检费"].order_no) == ("unpaid", None)
    qr = await api.pay_order(order.order_no, "alipay")
    await api.sandbox_pay(qr.qr_url, "success")
    assert (await api.get_order(order.order_no, wait=5, status="open")).status == "paid"
    items = await fee_map(api)
    for name in ("教材费", "保险费"):
        assert items[name].state == "paid"
        assert items[name].outstanding == 0
        assert items[name].amount_paid == DUE[name]
    assert items["体检费"].state == "unpaid"


# ============================================================================ create: validation
@pytest.mark.parametrize("key", [None, "", "k" * 65], ids=["missing", "empty", "65-chars"])
async def test_create_refuses_bad_idempotency_key_naming_the_header(server, login, key):
    api = await zhang(login)
    response = await post_order(server, api, await ids(api, "学费"), key)
    details = error_of(response, 422, "VALIDATION_ERROR")
    assert "Idempotency-Key" in details["fields"]
    assert (await api.list_orders()).orders == []


async def test_create_accepts_a_64_char_key(login):
    api = await zhang(login)
    order = await order_for(api, "学费", key="k" * 64)
    assert order.status == "open"


async def test_create_refuses_empty_and_too_many_item_ids(server, login):
    api = await zhang(login)
    details = error_of(await post_order(server, api, [], "k-empty"), 422, "VALIDATION_ERROR")
    assert "item_ids" in details["fields"]
    many = [f"nope-{n}" for n in range(51)]
    details = error_of(await post_order(server, api, many, "k-51"), 422, "VALIDATION_ERROR")
    assert "item_ids" in details["fields"]
    # 50 ids pass validation and are judged as items
    error_of(await post_order(server, api, many[:50], "k-50"), 404, "ITEM_NOT_FOUND")


async def test_create_refuses_unknown_body_fields(server, login):
    api = await zhang(login)
    response = await raw(
        server,
        "POST",
        "/api/v1/orders",
        api,
        headers={"Idempotency-Key": "k-extra"},
        json={"item_ids": await ids(api, "学费"), "discount": 100},
    )
    error_of(response, 422, "VALIDATION_ERROR")


# ============================================================================ create: hours
@pytest.mark.parametrize("when", [at(22, 0), at(22, 0, 1), at(7, 59), at(7, 59, 59)], ids=str)
async def test_create_outside_payment_hours_is_refused(server, login, clock, when):
    api = await zhang(login)
    item_ids = await ids(api, "学费")
    clock.set(when)
    details = error_of(await post_order(server, api, item_ids, "k"), 403, "OUTSIDE_PAYMENT_HOURS")
    assert (details["opens"], details["closes"]) == ("08:00", "22:00")
    assert (await api.list_orders()).orders == []


@pytest.mark.parametrize("when", [at(8, 0), at(21, 59, 59)], ids=str)
async def test_create_inside_payment_hours_edges_is_accepted(login, clock, when):
    api = await zhang(login)
    item_ids = await ids(api, "学费")
    clock.set(when)
    order = await api.create_order(item_ids, "k")
    assert order.status == "open"


async def test_hours_are_checked_before_profile(server, login, clock):
    api = await login(*LI)
    item_ids = await ids(api, "学费")
    clock.set(at(22, 0))
    error_of(await post_order(server, api, item_ids, "k"), 403, "OUTSIDE_PAYMENT_HOURS")


# ============================================================================ create: checks
async def test_create_refuses_incomplete_profile_with_problems(server, login):
    api = await login(*LI)
    details = error_of(
        await post_order(server, api, await ids(api, "学费"), "k"), 409, "PROFILE_INCOMPLETE"
    )
    assert set(details["problems"]) == {"PHONE_INVALID", "EMAIL_MISSING"}


async def test_profile_is_checked_before_items(server, login):
    api = await login(*LI)
    error_of(await post_order(server, api, ["no-such-item"], "k"), 409, "PROFILE_INCOMPLETE")


async def test_create_refuses_unknown_item(server, login):
    api = await zhang(login)
    item_ids = [*await ids(api, "学费"), "no-such-item"]
    error_of(await post_order(server, api, item_ids, "k"), 404, "ITEM_NOT_FOUND")
    assert (await fee_map(api))["学费"].state == "unpaid"


async def test_create_refuses_another_students_item_as_not_found(server, login):
    chen = await login(*CHEN)
    api = await zhang(login)
    chens_item = (await fee_map(chen))["教材费"].id
    error_of(await post_order(server, api, [chens_item], "k"), 404, "ITEM_NOT_FOUND")
    assert (await fee_map(chen))["教材费"].state == "unpaid"


async def test_unknown_item_is_checked_before_mixed_types(server, login):
    api = await zhang(login)
    item_ids = [*await ids(api, "学费", "教材费"), "no-such-item"]
    error_of(await post_order(server, api, item_ids, "k"), 404, "ITEM_NOT_FOUND")


async def test_create_refuses_mixed_receipt_types(server, login):
    api = await zhang(login)
    item_ids = await ids(api, "学费", "教材费")
    error_of(await post_order(server, api, item_ids, "k"), 422, "MIXED_RECEIPT_TYPES")
    assert (await api.list_orders()).orders == []


async def test_mixed_types_are_checked_before_already_paid(server, login):
    api = await login(*CHEN)
    item_ids = await ids(api, "学费", "教材费")
    error_of(await post_order(server, api, item_ids, "k"), 422, "MIXED_RECEIPT_TYPES")


async def test_create_refuses_an_already_paid_item(server, login):
    api = await login(*CHEN)
    error_of(await post_order(server, api, await ids(api, "学费"), "k"), 409, "ITEM_ALREADY_PAID")
    assert (await api.list_orders()).orders == []


async def test_already_paid_is_checked_before_open_order(server, login):
    api = await zhang(login)
    first = await order_for(api, "学费")
    qr = await api.pay_order(first.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    assert (await api.get_order(first.order_no, wait=5, status="open")).status == "paid"
    await order_for(api, "住宿费")
    item_ids = await ids(api, "学费", "住宿费")
    error_of(await post_order(server, api, item_ids, "k"), 409, "ITEM_ALREADY_PAID")


async def test_item_in_an_open_order_of_another_device_is_refused(server, login):
    phone = await zhang(login)
    kiosk = await zhang_device(login)
    first = await order_for(phone, "学费")
    details = error_of(
        await post_order(server, kiosk, await ids(kiosk, "学费", "住宿费"), "k2"),
        409,
        "ITEM_IN_OPEN_ORDER",
    )
    assert details["order_no"] == first.order_no
    assert details["item_ids"] == await ids(kiosk, "学费")
    assert [o.order_no for o in (await kiosk.list_orders()).orders] == [first.order_no]


# ============================================================================ idempotency
async def test_same_key_same_items_gives_the_same_order(login):
    api = await zhang(login)
    item_ids = await ids(api, "学费", "住宿费")
    first = await api.create_order(item_ids, "key-A")
    again = await api.create_order(item_ids, "key-A")
    reordered = await api.create_order(list(reversed(item_ids)), "key-A")
    assert again.order_no == reordered.order_no == first.order_no
    assert len((await api.list_orders()).orders) == 1


async def test_replay_from_another_device_gives_the_same_order(login):
    phone = await zhang(login)
    kiosk = await zhang_device(login)
    item_ids = await ids(phone, "教材费")
    first = await phone.create_order(item_ids, "key-A")
    assert (await kiosk.create_order(item_ids, "key-A")).order_no == first.order_no


async def test_replay_after_payment_answers_the_order_as_it_is_now(server, login):
    api = await zhang(login)
    item_ids = await ids(api, "学费")
    order = await api.create_order(item_ids, "key-A")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    assert (await api.get_order(order.order_no, wait=5, status="open")).status == "paid"
    response = await post_order(server, api, item_ids, "key-A")
    assert response.status_code == 201, response.text
    replay = Order.model_validate_json(response.content)
    assert (replay.order_no, replay.status) == (order.order_no, "paid")
    assert replay.receipt_no is not None


async def test_same_key_other_items_is_key_reused(server, login):
    api = await zhang(login)
    order = await api.create_order(await ids(api, "学费"), "key-A")
    error_of(
        await post_order(server, api, await ids(api, "学费", "住宿费"), "key-A"),
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    error_of(
        await post_order(server, api, await ids(api, "教材费"), "key-A"),
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert [o.order_no for o in (await api.list_orders()).orders] == [order.order_no]


async def test_refused_key_is_not_remembered_after_mixed_types(server, login):
    api = await zhang(login)
    error_of(
        await post_order(server, api, await ids(api, "学费", "教材费"), "key-A"),
        422,
        "MIXED_RECEIPT_TYPES",
    )
    order = await api.create_order(await ids(api, "学费"), "key-A")
    assert order.status == "open"


async def test_refused_key_is_judged_afresh_once_the_conflict_is_gone(server, login):
    phone = await zhang(login)
    kiosk = await zhang_device(login)
    blocking = await order_for(phone, "学费")
    item_ids = await ids(kiosk, "学费")
    error_of(await post_order(server, kiosk, item_ids, "key-B"), 409, "ITEM_IN_OPEN_ORDER")
    await phone.cancel_order(blocking.order_no)
    response = await post_order(server, kiosk, item_ids, "key-B")
    assert response.status_code == 201, response.text
    assert response.json()["order_no"] != blocking.order_no


async def test_refused_key_outside_hours_is_judged_afresh_when_open(server, login, clock):
    api = await zhang(login)
    item_ids = await ids(api, "学费")
    clock.set(at(7, 30))
    error_of(await post_order(server, api, item_ids, "key-C"), 403, "OUTSIDE_PAYMENT_HOURS")
    clock.set(at(8, 30))
    assert (await post_order(server, api, item_ids, "key-C")).status_code == 201


async def test_replay_outside_payment_hours_leads_back_to_the_order(server, login, clock):
    api = await zhang(login)
    item_ids = await ids(api, "学费")
    clock.set(at(21, 50))
    order = await api.create_order(item_ids, "key-D")
    clock.set(at(22, 30))
    response = await post_order(server, api, item_ids, "key-D")
    assert response.status_code == 201, response.text
    replay = Order.model_validate_json(response.content)
    assert replay.order_no == order.order_no
    assert (replay.status, replay.close_reason) == ("closed", "expired")


async def test_idempotency_keys_are_per_user(login):
    zw = await zhang(login)
    cj = await login(*CHEN)
    mine = await zw.create_order(await ids(zw, "教材费"), "shared-key")
    theirs = await cj.create_order(await ids(cj, "教材费"), "shared-key")
    assert mine.order_no != theirs.order_no
    assert [o.order_no for o in (await cj.list_orders()).orders] == [theirs.order_no]
    assert (await zw.create_order(await ids(zw, "教材费"), "shared-key")).order_no == (
        mine.order_no
    )


# ============================================================================ order fields
async def test_order_fields_total_type_payee_and_times(login):
    api = await zhang(login)
    order = await order_for(api, "学费", "住宿费")
    assert order.status == "open"
    assert {i.name: i.amount for i in order.items} == {"学费": 650000, "住宿费": 120000}
    assert set(await ids(api, *FISCAL)) == {i.id for i in order.items}
    assert order.total == 770000 == sum(i.amount for i in order.items)
    assert order.receipt_type == "fiscal"
    assert order.payee == PAYEE
    assert order.created_at == TEN_AM
    assert order.created_at.utcoffset() == timedelta(hours=8)
    assert order.expires_at == TEN_AM + timedelta(seconds=900)
    assert order.payment is None
    assert (order.paid_at, order.channel, order.transaction_id) == (None, None, None)
    assert (order.receipt_no, order.close_reason) == (None, None)


async def test_agency_order_has_receipt_type_receipt(login):
    api = await zhang(login)
    order = await order_for(api, *AGENCY)
    assert order.receipt_type == "receipt"
    assert order.total == 42000 + 15000 + 6000


async def test_expires_at_never_passes_todays_closing_time(login, clock):
    api = await zhang(login)
    item_ids = await ids(api, "学费")
    clock.set(at(21, 55))
    order = await api.create_order(item_ids, "late")
    assert order.expires_at == at(22, 0)
    assert order.created_at == at(21, 55)


async def test_list_orders_newest_first(login, clock):
    api = await zhang(login)
    made = []
    for name in ("学费", "住宿费", "教材费"):
        made.append((await order_for(api, name)).order_no)
        clock.advance(1)
    listed = [o.order_no for o in (await api.list_orders()).orders]
    assert listed == list(reversed(made))


async def test_list_orders_is_only_the_callers(login):
    zw = await zhang(login)
    cj = await login(*CHEN)
    await order_for(zw, "学费")
    assert (await cj.list_orders()).orders == []


async def test_another_users_order_answers_like_an_unknown_one(server, login):
    zw = await zhang(login)
    cj = await login(*CHEN)
    order = await order_for(zw, "学费")
    calls = [
        ("GET", "", None, None),
        ("GET", "", None, {"wait": 1, "status": "open"}),
        ("POST", "/pay", {"channel": "wechat"}, None),
        ("POST", "/query", None, None),
        ("POST", "/cancel", None, None),
        ("POST", "/claim-paid", None, None),
    ]
    for method, suffix, body, params in calls:
        foreign = await raw(
            server,
            method,
            f"/api/v1/orders/{order.order_no}{suffix}",
            cj,
            json=body,
            params=params,
        )
        unknown = await raw(
            server,
            method,
            f"/api/v1/orders/{UNKNOWN_ORDER}{suffix}",
            cj,
            json=body,
            params=params,
        )
        error_of(foreign, 404, "ORDER_NOT_FOUND")
        assert (foreign.status_code, foreign.json()) == (unknown.status_code, unknown.json())
    assert (await zw.get_order(order.order_no)).status == "open"
    assert (await zw.get_order(order.order_no)).payment is None


# ============================================================================ long poll
async def first_answered(**polls) -> str:
    """Which of several calls started together answers first (by name): an order of
    events, not a measured time. The others are called off (a task the caller holds
    goes on)."""
    tasks = {asyncio.ensure_future(call): name for name, call in polls.items()}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        if not any(task is call for call in polls.values()):
            task.cancel()
    return tasks[next(iter(done))]


async def test_long_poll_returns_at_once_when_status_already_differs(login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    other = await order_for(api, "教材费")
    first = await first_answered(
        differs=api.get_order(order.order_no, wait=25, status="paid"),
        two_seconds=api.get_order(other.order_no, wait=2, status="open"),
    )
    assert first == "differs"
    assert (await api.get_order(order.order_no, wait=25, status="paid")).status == "open"


async def test_long_poll_returns_when_paid_well_within_the_wait(server, login, client):
    api = await zhang(login)
    order = await order_for(api, "学费")
    other = await order_for(api, "教材费")
    qr = await api.pay_order(order.order_no, "wechat")
    poll = asyncio.create_task(api.get_order(order.order_no, wait=20, status="open"))
    # a short long poll on another order gives the first one time to start waiting
    unchanged = await api.get_order(other.order_no, wait=0.5, status="open")
    assert unchanged.status == "open"
    assert not poll.done()
    await client.sandbox_pay(qr.qr_url, "success")
    first = await first_answered(
        paid=poll, five_seconds=api.get_order(other.order_no, wait=5, status="open")
    )
    assert first == "paid"
    assert (await poll).status == "paid"


async def test_long_poll_that_times_out_returns_the_unchanged_order(login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    other = await order_for(api, "教材费")
    before = await api.get_order(order.order_no)
    waited = asyncio.ensure_future(api.get_order(order.order_no, wait=1, status="open"))
    first = await first_answered(
        waited=waited, a_tenth=api.get_order(other.order_no, wait=0.1, status="open")
    )
    assert first == "a_tenth"  # it waited rather than answer at once
    assert await waited == before


async def test_long_poll_without_status_waits_for_any_change(login, client):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "ccb")
    poll = asyncio.create_task(api.get_order(order.order_no, wait=20))
    await api.get_order((await order_for(api, "教材费")).order_no, wait=0.5)
    assert not poll.done()
    await client.sandbox_pay(qr.qr_url, "success")
    assert (await poll).status == "paid"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"wait": 26, "status": "open"}, "wait"),
        ({"wait": -1, "status": "open"}, "wait"),
        ({"wait": "soon"}, "wait"),
        ({"wait": 1, "status": "bogus"}, "status"),
    ],
    ids=["wait-26", "wait-negative", "wait-text", "status-bogus"],
)
async def test_long_poll_refuses_bad_wait_or_status(server, login, params, field):
    api = await zhang(login)
    order = await order_for(api, "学费")
    response = await raw(server, "GET", f"/api/v1/orders/{order.order_no}", api, params=params)
    details = error_of(response, 422, "VALIDATION_ERROR")
    assert field in details["fields"]


# ============================================================================ pay
async def test_pay_issues_a_short_qr_on_the_sandbox(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费", "住宿费")
    qr = await api.pay_order(order.order_no, "wechat")
    public = server.public_url  # where phones reach the backend (one address for all workers)
    assert qr.qr_url.startswith(f"{public}/sandbox/pay/")
    token = qr.qr_url.removeprefix(f"{public}/sandbox/pay/")
    assert token and "/" not in token
    assert len(qr.qr_url) < 60
    assert (qr.order_no, qr.channel, qr.payee, qr.amount) == (
        order.order_no,
        "wechat",
        PAYEE,
        770000,
    )
    now = await api.get_order(order.order_no)
    assert now.payment is not None
    assert (now.payment.channel, now.payment.qr_url) == ("wechat", qr.qr_url)


async def test_pay_same_channel_again_gives_the_same_qr(login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    first = await api.pay_order(order.order_no, "alipay")
    again = await api.pay_order(order.order_no, "alipay")
    assert again.qr_url == first.qr_url


async def test_pay_other_channel_closes_the_old_trade(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    old = await api.pay_order(order.order_no, "wechat")
    new = await api.pay_order(order.order_no, "alipay")
    assert new.qr_url != old.qr_url
    assert new.channel == "alipay"
    page = await pay_page(server, old.qr_url)
    assert page.status_code == 409
    assert "closed" in page.text.lower() or "关闭" in page.text
    await refused(api.sandbox_pay(old.qr_url, "success"), "TRADE_CLOSED")
    assert (await pay_page(server, new.qr_url)).status_code == 200
    assert sorted(gw_states(server, order.order_no)) == ["CLOSED", "NOTPAY"]


async def test_pay_on_a_paid_order_is_not_open(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    await api.get_order(order.order_no, wait=5, status="open")
    response = await raw(
        server, "POST", f"/api/v1/orders/{order.order_no}/pay", api, json={"channel": "ccb"}
    )
    assert error_of(response, 409, "ORDER_NOT_OPEN")["status"] == "paid"


async def test_pay_refuses_unknown_channel(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    response = await raw(
        server, "POST", f"/api/v1/orders/{order.order_no}/pay", api, json={"channel": "paypal"}
    )
    assert "channel" in error_of(response, 422, "VALIDATION_ERROR")["fields"]


async def test_switching_channel_during_a_slow_payment_is_in_progress(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    assert (await api.sandbox_pay(qr.qr_url, "slow", delay_seconds=60)).trade_state == "NOTPAY"
    response = await raw(
        server, "POST", f"/api/v1/orders/{order.order_no}/pay", api, json={"channel": "alipay"}
    )
    error_of(response, 409, "PAYMENT_IN_PROGRESS")
    now = await api.get_order(order.order_no)
    assert now.status == "open"
    assert now.payment is not None and now.payment.channel == "wechat"
    assert len(gw_states(server, order.order_no)) == 1


async def test_switching_channel_after_an_unnotified_payment_is_already_paid(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success", notify="drop")
    assert (await api.get_order(order.order_no)).status == "open"
    response = await raw(
        server, "POST", f"/api/v1/orders/{order.order_no}/pay", api, json={"channel": "ccb"}
    )
    error_of(response, 409, "ORDER_ALREADY_PAID")
    paid = await api.get_order(order.order_no)
    assert (paid.status, paid.channel) == ("paid", "wechat")
    assert paid.transaction_id is not None
    assert gw_states(server, order.order_no) == ["SUCCESS"]
    assert len(await messages_for(api, order.order_no)) == 2


# ============================================================================ sandbox
async def test_pay_page_shows_payee_amount_and_items(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费", "住宿费")
    qr = await api.pay_order(order.order_no, "wechat")
    page = await pay_page(server, qr.qr_url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for text in (PAYEE, "¥7,700.00", "学费", "住宿费"):
        assert text in page.text


async def test_pay_page_of_a_paid_trade_says_so_with_409(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    page = await pay_page(server, qr.qr_url)
    assert page.status_code == 409
    assert "paid" in page.text.lower() or "已支付" in page.text
    await refused(api.sandbox_pay(qr.qr_url, "success"), "TRADE_PAID")


async def test_unknown_pay_token_is_trade_not_found(server, client):
    assert (await raw(server, "GET", "/sandbox/pay/nosuchtoken")).status_code == 404
    response = await raw(server, "POST", "/sandbox/pay/nosuchtoken", json={"outcome": "success"})
    error_of(response, 404, "TRADE_NOT_FOUND")


async def test_declined_payment_leaves_the_trade_payable(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    assert (await api.sandbox_pay(qr.qr_url, "declined")).trade_state == "PAYERROR"
    assert (await api.query_order(order.order_no)).status == "open"
    assert (await pay_page(server, qr.qr_url)).status_code == 200
    assert (await api.sandbox_pay(qr.qr_url, "success")).trade_state == "SUCCESS"
    assert (await api.get_order(order.order_no, wait=5, status="open")).status == "paid"


async def test_slow_payment_answers_notpay_to_queries_until_it_settles(server, login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    assert (await api.sandbox_pay(qr.qr_url, "slow", delay_seconds=20)).trade_state == "NOTPAY"
    assert (await api.query_order(order.order_no)).status == "open"
    assert [t.order_no for t in (await api.sandbox_statement(TODAY)).trades] == []
    clock.advance(20)
    settled = await api.get_order(order.order_no, wait=5, status="open")
    assert settled.status == "paid"


async def test_slow_with_delayed_notify_is_refused(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    response = await raw(
        server, "POST", pay_path(qr.qr_url), json={"outcome": "slow", "notify": "delay"}
    )
    error_of(response, 422, "VALIDATION_ERROR")
    assert gw_states(server, order.order_no) == ["NOTPAY"]
    assert (await pay_page(server, qr.qr_url)).status_code == 200


@pytest.mark.parametrize("delay", [-1, 3601, "soon"])
async def test_sandbox_delay_out_of_range_is_refused(server, login, delay):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    response = await raw(
        server,
        "POST",
        pay_path(qr.qr_url),
        json={"outcome": "success", "notify": "delay", "delay_seconds": delay},
    )
    assert "delay_seconds" in error_of(response, 422, "VALIDATION_ERROR")["fields"]
    assert gw_states(server, order.order_no) == ["NOTPAY"]


async def test_sandbox_delay_bounds_are_accepted(login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    assert (await api.sandbox_pay(qr.qr_url, "declined", delay_seconds=0)).trade_state == (
        "PAYERROR"
    )
    result = await api.sandbox_pay(qr.qr_url, "success", notify="delay", delay_seconds=3600)
    assert result.trade_state == "SUCCESS"


async def test_statement_lists_the_days_successful_trades(login, client):
    api = await zhang(login)
    paid = await order_for(api, "学费")
    unpaid = await order_for(api, "教材费")
    qr = await api.pay_order(paid.order_no, "alipay")
    await api.pay_order(unpaid.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    order = await api.get_order(paid.order_no, wait=5, status="open")
    statement = await client.sandbox_statement(TODAY)
    assert statement.date == TODAY
    assert [t.order_no for t in statement.trades] == [paid.order_no]
    trade = statement.trades[0]
    assert (trade.channel, trade.amount, trade.transaction_id) == (
        "alipay",
        650000,
        order.transaction_id,
    )
    assert trade.paid_at == order.paid_at
    assert (await client.sandbox_statement(TODAY - timedelta(days=1))).trades == []


# ============================================================================ notify
async def test_dropped_notify_leaves_the_order_open_until_queried(login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    assert (await api.sandbox_pay(qr.qr_url, "success", notify="drop")).trade_state == "SUCCESS"
    still = await api.get_order(order.order_no, wait=0.3, status="open")
    assert still.status == "open"
    assert (await fee_map(api))["学费"].state == "in_order"
    queried = await api.query_order(order.order_no)
    assert queried.status == "paid"
    assert queried.channel == "wechat"
    assert queried.transaction_id and queried.receipt_no and queried.paid_at
    assert (await fee_map(api))["学费"].state == "paid"
    assert sorted(m.channel for m in await messages_for(api, order.order_no)) == ["email", "sms"]


async def test_delayed_notify_defaults_to_five_seconds(login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success", notify="delay")
    clock.advance(4)
    assert (await api.get_order(order.order_no, wait=0.3, status="open")).status == "open"
    clock.advance(1)
    assert (await api.get_order(order.order_no, wait=5, status="open")).status == "paid"


async def test_slow_payment_with_dropped_notify_settles_silently_until_queried(login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "slow", notify="drop", delay_seconds=10)
    clock.advance(10)
    assert [t.order_no for t in (await api.sandbox_statement(TODAY)).trades] == [order.order_no]
    assert (await api.get_order(order.order_no, wait=0.3, status="open")).status == "open"
    assert (await api.query_order(order.order_no)).status == "paid"


async def test_duplicate_notify_pays_once(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费", "住宿费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success", notify="duplicate")
    paid = await api.get_order(order.order_no, wait=5, status="open")
    assert paid.status == "paid"
    # one more copy of the same notify, delivered synchronously: still nothing new
    trade = await statement_trade(api, order.order_no)
    body = notify_body(trade)
    again = await post_notify(server, body, sign(server.backend.notify_secret, body))
    assert again.status_code == 200, again.text
    assert await api.get_order(order.order_no) == paid
    sent = await messages_for(api, order.order_no)
    assert sorted(m.channel for m in sent) == ["email", "sms"]
    assert {m.body.count(paid.receipt_no) > 0 for m in sent} == {True}
    items = await fee_map(api)
    assert items["学费"].amount_paid == 650000
    assert items["住宿费"].amount_paid == 120000


async def test_query_before_a_delayed_notify_pays_and_the_late_notify_changes_nothing(
    server, login, clock
):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "ccb")
    await api.sandbox_pay(qr.qr_url, "success", notify="delay", delay_seconds=60)
    assert (await api.get_order(order.order_no)).status == "open"
    paid = await api.query_order(order.order_no)
    assert paid.status == "paid"
    clock.advance(61)  # the sandbox's own late notify is now due
    trade = await statement_trade(api, order.order_no)
    body = notify_body(trade)
    late = await post_notify(server, body, sign(server.backend.notify_secret, body), "ccb")
    assert late.status_code == 200, late.text
    now = await api.get_order(order.order_no)
    assert (now.receipt_no, now.transaction_id, now.paid_at) == (
        paid.receipt_no,
        paid.transaction_id,
        paid.paid_at,
    )
    assert len(await messages_for(api, order.order_no)) == 2
    assert (await fee_map(api))["学费"].amount_paid == 650000


async def _dropped_payment(api: ApiClient, name: str = "学费") -> tuple[Order, StatementTrade]:
    order = await order_for(api, name)
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success", notify="drop")
    return order, await statement_trade(api, order.order_no)


@pytest.mark.parametrize(
    "signature", [None, "", "0" * 64, "not-hex"], ids=["missing", "empty", "zeros", "garbage"]
)
async def test_notify_with_bad_signature_is_refused_and_changes_nothing(server, login, signature):
    api = await zhang(login)
    order, trade = await _dropped_payment(api)
    response = await post_notify(server, notify_body(trade), signature)
    error_of(response, 401, "BAD_SIGNATURE")
    now = await api.get_order(order.order_no)
    assert (now.status, now.transaction_id) == ("open", None)
    assert await messages_for(api, order.order_no) == []


async def test_notify_signed_over_another_body_is_refused(server, login):
    api = await zhang(login)
    order, trade = await _dropped_payment(api)
    signed = notify_body(trade)
    tampered = notify_body(trade, transaction_id="4200" + "1" * 24)
    response = await post_notify(server, tampered, sign(server.backend.notify_secret, signed))
    error_of(response, 401, "BAD_SIGNATURE")
    assert (await api.get_order(order.order_no)).status == "open"


async def test_notify_signature_is_checked_before_the_body_is_parsed(server):
    response = await post_notify(server, b"{not json", None)
    error_of(response, 401, "BAD_SIGNATURE")


async def test_correctly_signed_notify_pays(server, login):
    api = await zhang(login)
    order, trade = await _dropped_payment(api)
    body = notify_body(trade)
    response = await post_notify(server, body, sign(server.backend.notify_secret, body))
    assert response.status_code == 200, response.text
    paid = await api.get_order(order.order_no)
    assert (paid.status, paid.transaction_id) == ("paid", trade.transaction_id)


async def test_signed_notify_with_wrong_amount_is_a_recorded_discrepancy(server, login):
    api = await zhang(login)
    order, trade = await _dropped_payment(api)
    body = notify_body(trade, amount=1)
    response = await post_notify(server, body, sign(server.backend.notify_secret, body))
    error_of(response, 400, "AMOUNT_MISMATCH")
    now = await api.get_order(order.order_no)
    assert (now.status, now.transaction_id, now.receipt_no) == ("open", None, None)
    assert (await fee_map(api))["学费"].state == "in_order"
    found = rows(server, "SELECT kind FROM discrepancies WHERE order_no=?", order.order_no)
    assert found, "the mismatch is recorded as a discrepancy"


# ============================================================================ e-receipt
async def test_payment_sends_one_sms_and_one_email_receipt(login):
    api = await zhang(login)
    order = await order_for(api, "学费", "住宿费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    paid = await api.get_order(order.order_no, wait=5, status="open")
    sent = await messages_for(api, order.order_no)
    assert sorted((m.channel, m.to) for m in sent) == [
        ("email", "zhangwei@example.edu.cn"),
        ("sms", "13800000001"),
    ]
    for message in sent:
        for text in (paid.receipt_no, paid.order_no, "¥7,700.00", PAYEE, "学费", "住宿费"):
            assert text in message.body, (text, message.body)


# ============================================================================ cancel
async def test_cancel_without_qr_closes_and_releases(login):
    api = await zhang(login)
    order = await order_for(api, "学费", "住宿费")
    cancelled = await api.cancel_order(order.order_no)
    assert (cancelled.status, cancelled.close_reason) == ("closed", "cancelled")
    items = await fee_map(api)
    assert {items[n].state for n in FISCAL} == {"unpaid"}
    assert {items[n].order_no for n in FISCAL} == {None}
    again = await order_for(api, "学费")
    assert again.status == "open"


async def test_cancel_with_qr_closes_the_trade_first(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    cancelled = await api.cancel_order(order.order_no)
    assert (cancelled.status, cancelled.close_reason) == ("closed", "cancelled")
    assert gw_states(server, order.order_no) == ["CLOSED"]
    assert (await pay_page(server, qr.qr_url)).status_code == 409
    await refused(api.sandbox_pay(qr.qr_url, "success"), "TRADE_CLOSED")
    assert (await fee_map(api))["学费"].state == "unpaid"


async def test_cancel_of_a_paid_but_unnotified_trade_answers_paid(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success", notify="drop")
    response = await raw(server, "POST", f"/api/v1/orders/{order.order_no}/cancel", api)
    assert response.status_code == 200, response.text
    answered = Order.model_validate_json(response.content)
    assert (answered.status, answered.close_reason) == ("paid", None)
    assert (await fee_map(api))["学费"].state == "paid"
    assert len(await messages_for(api, order.order_no)) == 2


async def test_cancel_during_a_slow_payment_is_in_progress_and_changes_nothing(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "slow", delay_seconds=120)
    before = await api.get_order(order.order_no)
    response = await raw(server, "POST", f"/api/v1/orders/{order.order_no}/cancel", api)
    error_of(response, 409, "PAYMENT_IN_PROGRESS")
    assert await api.get_order(order.order_no) == before
    assert (await fee_map(api))["学费"].state == "in_order"
    assert gw_states(server, order.order_no) != ["CLOSED"]


@pytest.mark.parametrize("action", ["cancel", "pay", "claim-paid"])
async def test_actions_on_a_closed_order_are_not_open(server, login, action):
    api = await zhang(login)
    order = await order_for(api, "学费")
    await api.cancel_order(order.order_no)
    body = {"channel": "wechat"} if action == "pay" else None
    response = await raw(
        server, "POST", f"/api/v1/orders/{order.order_no}/{action}", api, json=body
    )
    assert error_of(response, 409, "ORDER_NOT_OPEN")["status"] == "closed"


# ============================================================================ claim-paid
async def test_claim_paid_unpaid_keeps_items_locked_and_never_expires(server, login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费")
    await api.pay_order(order.order_no, "wechat")
    claimed = await api.claim_paid(order.order_no)
    assert claimed.status == "awaiting_confirmation"
    items = await fee_map(api)
    assert (items["学费"].state, items["学费"].order_no) == ("in_order", order.order_no)
    details = error_of(
        await post_order(server, api, await ids(api, "学费"), "k2"), 409, "ITEM_IN_OPEN_ORDER"
    )
    assert details["order_no"] == order.order_no
    clock.advance(3600)  # far past the 900 s TTL
    later = await api.get_order(order.order_no, wait=0.3, status="awaiting_confirmation")
    assert later.status == "awaiting_confirmation"
    assert [o.status for o in (await api.list_orders()).orders] == ["awaiting_confirmation"]
    assert (await fee_map(api))["学费"].state == "in_order"
    error_of(await post_order(server, api, await ids(api, "学费"), "k3"), 409, "ITEM_IN_OPEN_ORDER")


async def test_claim_paid_again_or_cancel_on_awaiting_is_not_open(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    await api.claim_paid(order.order_no)
    for action in ("claim-paid", "cancel"):
        response = await raw(server, "POST", f"/api/v1/orders/{order.order_no}/{action}", api)
        assert error_of(response, 409, "ORDER_NOT_OPEN")["status"] == "awaiting_confirmation"


async def test_claim_paid_of_a_paid_but_unnotified_trade_is_paid_at_once(login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "alipay")
    await api.sandbox_pay(qr.qr_url, "success", notify="drop")
    claimed = await api.claim_paid(order.order_no)
    assert claimed.status == "paid"
    assert claimed.channel == "alipay"
    assert (await fee_map(api))["学费"].state == "paid"
    assert len(await messages_for(api, order.order_no)) == 2


async def test_claim_paid_during_a_slow_payment_settles_to_paid_later(login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "slow", delay_seconds=30)
    claimed = await api.claim_paid(order.order_no)
    assert claimed.status == "awaiting_confirmation"
    clock.advance(31)
    settled = await api.get_order(order.order_no, wait=5, status="awaiting_confirmation")
    assert settled.status == "paid"
    assert (await fee_map(api))["学费"].state == "paid"
    assert len(await messages_for(api, order.order_no)) == 2


async def test_claimed_order_paid_later_by_the_payer_becomes_paid(login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.claim_paid(order.order_no)
    await api.sandbox_pay(qr.qr_url, "success")
    settled = await api.get_order(order.order_no, wait=5, status="awaiting_confirmation")
    assert settled.status == "paid"


# ============================================================================ expiry
@SHORT_TTL
async def test_open_order_expires_and_its_trade_is_closed(server, login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费", "住宿费")
    assert order.expires_at == TEN_AM + timedelta(seconds=60)
    qr = await api.pay_order(order.order_no, "wechat")
    clock.advance(61)
    expired = await api.get_order(order.order_no, wait=5, status="open")
    assert (expired.status, expired.close_reason) == ("closed", "expired")
    assert expired.payment is None
    items = await fee_map(api)
    assert {items[n].state for n in FISCAL} == {"unpaid"}
    assert gw_states(server, order.order_no) == ["CLOSED"]
    assert (await pay_page(server, qr.qr_url)).status_code == 409
    await refused(api.sandbox_pay(qr.qr_url, "success"), "TRADE_CLOSED")
    assert (await order_for(api, *FISCAL)).status == "open"


@SHORT_TTL
async def test_open_order_without_qr_expires(login, clock):
    api = await zhang(login)
    order = await order_for(api, "教材费")
    clock.advance(60)
    expired = await api.get_order(order.order_no, wait=5, status="open")
    assert (expired.status, expired.close_reason) == ("closed", "expired")
    assert (await fee_map(api))["教材费"].state == "unpaid"


@SHORT_TTL
async def test_order_is_still_open_just_before_expires_at(login, clock):
    api = await zhang(login)
    order = await order_for(api, "教材费")
    clock.advance(59)
    assert (await api.get_order(order.order_no, wait=0.3, status="open")).status == "open"


@SHORT_TTL
async def test_slow_payment_keeps_the_order_open_past_expiry_until_it_settles(server, login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "slow", delay_seconds=120)
    clock.advance(61)
    held = await api.get_order(order.order_no, wait=0.5, status="open")
    assert (held.status, held.close_reason) == ("open", None)
    assert (await fee_map(api))["学费"].state == "in_order"
    assert "CLOSED" not in gw_states(server, order.order_no)
    details = error_of(
        await post_order(server, api, await ids(api, "学费"), "k2"), 409, "ITEM_IN_OPEN_ORDER"
    )
    assert details["order_no"] == order.order_no
    for action, body in (("pay", {"channel": "wechat"}), ("pay", {"channel": "ccb"})):
        response = await raw(
            server, "POST", f"/api/v1/orders/{order.order_no}/{action}", api, json=body
        )
        error_of(response, 409, "PAYMENT_IN_PROGRESS")
    response = await raw(server, "POST", f"/api/v1/orders/{order.order_no}/cancel", api)
    error_of(response, 409, "PAYMENT_IN_PROGRESS")
    clock.advance(60)  # the bank answers: 121 s after the payment
    settled = await api.get_order(order.order_no, wait=5, status="open")
    assert settled.status == "paid"
    assert (await fee_map(api))["学费"].state == "paid"
    assert len(await messages_for(api, order.order_no)) == 2


@SHORT_TTL
async def test_unnotified_payment_found_at_expiry_makes_the_order_paid(server, login, clock):
    api = await zhang(login)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success", notify="drop")
    clock.advance(61)
    settled = await api.get_order(order.order_no, wait=5, status="open")
    assert settled.status == "paid"
    assert gw_states(server, order.order_no) == ["SUCCESS"]
    assert (await fee_map(api))["学费"].state == "paid"
    assert len(await messages_for(api, order.order_no)) == 2


@pytest.mark.parametrize(
    "server_config",
    [{"order_ttl_seconds": 60, "tick_seconds": 3600}],
    indirect=True,
    ids=["ttl60-no-ticker"],
)
async def test_claim_paid_after_expires_at_does_not_freeze_an_expired_order(server, login, clock):
    """With the periodic sweep out of the way, only the request itself can expire it."""
    api = await zhang(login)
    order = await order_for(api, "学费")
    await api.pay_order(order.order_no, "wechat")
    clock.advance(61)
    response = await raw(server, "POST", f"/api/v1/orders/{order.order_no}/claim-paid", api)
    now = await api.get_order(order.order_no)
    assert (now.status, now.close_reason) == ("closed", "expired"), response.text
    assert error_of(response, 409, "ORDER_NOT_OPEN")["status"] == "closed"
    assert (await fee_map(api))["学费"].state == "unpaid"


# ============================================================================ reconcile
async def test_reconcile_recovers_a_dropped_notify_payment(login):
    api = await zhang(login)
    staff = await login(*STAFF)
    order, _ = await _dropped_payment(api)
    result = await staff.staff_reconcile(TODAY)
    assert result.date == TODAY
    assert result.recovered == [order.order_no]
    assert (result.matched, result.released, result.discrepancies) == (0, [], [])
    paid = await api.get_order(order.order_no)
    assert paid.status == "paid"
    assert (await fee_map(api))["学费"].state == "paid"
    assert sorted(m.channel for m in await messages_for(api, order.order_no)) == ["email", "sms"]
    again = await staff.staff_reconcile(TODAY)
    assert (again.matched, again.recovered) == (1, [])


async def test_reconcile_releases_an_awaiting_order_with_no_payment(server, login):
    api = await zhang(login)
    staff = await login(*STAFF)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.claim_paid(order.order_no)
    result = await staff.staff_reconcile(TODAY)
    assert result.released == [order.order_no]
    assert result.recovered == []
    closed = await api.get_order(order.order_no)
    assert (closed.status, closed.close_reason) == ("closed", "released")
    assert gw_states(server, order.order_no) == ["CLOSED"]
    assert (await pay_page(server, qr.qr_url)).status_code == 409
    await refused(api.sandbox_pay(qr.qr_url, "success"), "TRADE_CLOSED")
    assert (await fee_map(api))["学费"].state == "unpaid"


async def test_reconcile_lists_an_awaiting_slow_payment_as_in_progress(server, login, clock):
    api = await zhang(login)
    staff = await login(*STAFF)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "slow", delay_seconds=600)
    await api.claim_paid(order.order_no)
    result = await staff.staff_reconcile(TODAY)
    assert [(d.order_no, d.kind) for d in result.discrepancies] == [(order.order_no, "in_progress")]
    assert (result.released, result.recovered) == ([], [])
    assert (await api.get_order(order.order_no)).status == "awaiting_confirmation"
    assert (await fee_map(api))["学费"].state == "in_order"
    clock.advance(601)
    settled = await api.get_order(order.order_no, wait=5, status="awaiting_confirmation")
    assert settled.status == "paid"


async def test_reconcile_counts_a_normally_paid_order_as_matched(login):
    api = await zhang(login)
    staff = await login(*STAFF)
    order = await order_for(api, "学费")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    assert (await api.get_order(order.order_no, wait=5, status="open")).status == "paid"
    result = await staff.staff_reconcile(TODAY)
    assert result.matched == 1
    assert (result.recovered, result.released, result.discrepancies) == ([], [], [])
    assert len(await messages_for(api, order.order_no)) == 2


async def test_reconcile_body_is_only_a_date(server, login):
    staff = await login(*STAFF)
    ok = await raw(server, "POST", "/api/v1/staff/reconcile", staff, json={"date": "2026-11-26"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["date"] == "2026-11-26"
    extra = await raw(
        server,
        "POST",
        "/api/v1/staff/reconcile",
        staff,
        json={"date": "2026-11-26", "force": True},
    )
    error_of(extra, 422, "VALIDATION_ERROR")
    bad = await raw(server, "POST", "/api/v1/staff/reconcile", staff, json={"date": "26/11"})
    assert "date" in error_of(bad, 422, "VALIDATION_ERROR")["fields"]


async def test_students_cannot_reconcile_or_staff_query(server, login):
    api = await zhang(login)
    order = await order_for(api, "学费")
    error_of(
        await raw(server, "POST", "/api/v1/staff/reconcile", api, json={"date": "2026-11-26"}),
        403,
        "FORBIDDEN",
    )
    error_of(
        await raw(server, "POST", f"/api/v1/staff/orders/{order.order_no}/query", api),
        403,
        "FORBIDDEN",
    )


async def test_staff_order_query_recovers_a_dropped_notify_payment(login):
    api = await zhang(login)
    staff = await login(*STAFF)
    order, trade = await _dropped_payment(api)
    answered = await staff.staff_query_order(order.order_no)
    assert (answered.status, answered.transaction_id) == ("paid", trade.transaction_id)
    assert len(await messages_for(api, order.order_no)) == 2
    assert (await api.get_order(order.order_no)).status == "paid"
    assert (await fee_map(api))["学费"].state == "paid"
    await refused(staff.staff_query_order(UNKNOWN_ORDER), "ORDER_NOT_FOUND")


# ============================================================================ concurrency
EXPECTED_ERRORS = {
    "create": {"ITEM_IN_OPEN_ORDER", "ITEM_ALREADY_PAID"},
    "pay": {"ORDER_NOT_OPEN", "ORDER_ALREADY_PAID", "PAYMENT_IN_PROGRESS"},
    "cancel": {"ORDER_NOT_OPEN", "PAYMENT_IN_PROGRESS"},
    "claim": {"ORDER_NOT_OPEN"},
    "query": set(),
    "sandbox": {"TRADE_CLOSED", "TRADE_PAID"},
    "fees": set(),
    "reconcile": set(),
}
SANDBOX_CHOICES = [  # mostly failing payments, so the items stay contended for longer
    ("success", "now"),
    ("success", "drop"),
    ("success", "duplicate"),
    ("success", "delay"),
    *[("declined", "now")] * 6,
    ("slow", "now"),
    ("slow", "drop"),
    ("slow", "duplicate"),
]


class Device:
    """One thread acting as one device: a sync httpx client with a student's token."""

    def __init__(
        self,
        server,
        token: str,
        staff_token: str,
        groups: list[list[str]],
        seed: int,
        clock,
    ) -> None:
        self.server = server
        url = server.url
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.staff = {"Authorization": f"Bearer {staff_token}"}
        self.groups = groups
        self.rng = random.Random(seed)
        self.clock = clock
        self.problems: list[str] = []
        self.seen: Counter[str] = Counter()
        self.orders: list[str] = []
        self.qr_urls: list[str] = []

    def _check(self, what: str, response: httpx.Response) -> dict[str, Any] | None:
        """The JSON body of a success; None for an expected refusal; else a problem."""
        if response.is_success:
            self.seen[f"{what} {response.status_code}"] += 1
            return response.json()
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = f"<{response.status_code} {response.text[:80]}>"
        self.seen[f"{what} {code}"] += 1
        if code not in EXPECTED_ERRORS[what]:
            self.problems.append(f"{what}: {response.status_code} {code} {response.text[:200]}")
        return None

    def _sandbox(self, qr_url: str) -> None:
        outcome, notify = self.rng.choice(SANDBOX_CHOICES)
        body = {"outcome": outcome, "notify": notify, "delay_seconds": self.rng.randint(1, 30)}
        self._check("sandbox", self.http.post(qr_url, json=body))

    def _act(self, order_no: str) -> None:
        action = self.rng.choice(
            ["pay", "pay", "pay+sandbox", "pay+sandbox", "cancel", "claim", "query", "old-qr"]
        )
        path = f"/api/v1/orders/{order_no}"
        if action.startswith("pay"):
            channel = self.rng.choice(["wechat", "alipay", "ccb"])
            body = self._check("pay", self.http.post(f"{path}/pay", json={"channel": channel}))
            if body is not None:
                self.qr_urls.append(body["qr_url"])
                if action == "pay+sandbox":
                    self._sandbox(body["qr_url"])
        elif action == "cancel":
            self._check("cancel", self.http.post(f"{path}/cancel"))
        elif action == "claim":
            self._check("claim", self.http.post(f"{path}/claim-paid"))
        elif action == "query":
            self._check("query", self.http.post(f"{path}/query"))
        elif self.qr_urls:
            self._sandbox(self.rng.choice(self.qr_urls))

    def _live_order(self) -> str | None:
        """An unfinished order of this student (any device's), else an old one."""
        body = self._check("fees", self.http.get("/api/v1/fees"))
        live = [
            item["order_no"]
            for tag in (body or {}).get("tags", [])
            for item in tag["items"]
            if item["state"] == "in_order"
        ]
        if live:
            return self.rng.choice(live)
        return self.rng.choice(self.orders) if self.orders else None

    def _fees_consistent(self) -> None:
        body = self._check("fees", self.http.get("/api/v1/fees"))
        for tag in (body or {}).get("tags", []):
            for item in tag["items"]:
                if not 0 <= item["amount_paid"] <= item["amount_due"]:
                    self.problems.append(f"overpaid {item}")
                if item["outstanding"] != item["amount_due"] - item["amount_paid"]:
                    self.problems.append(f"outstanding {item}")
                in_order_ok = item["state"] != "in_order" or item["order_no"] is not None
                unpaid_ok = item["state"] != "unpaid" or item["order_no"] is None
                paid_ok = item["state"] != "paid" or item["outstanding"] == 0
                if not (in_order_ok and unpaid_ok and paid_ok):
                    self.problems.append(f"state {item}")

    def run(self, rounds: int) -> list[str]:
        try:
            for _ in range(rounds):
                group = self.rng.choice(self.groups)
                chosen = self.rng.sample(group, self.rng.randint(1, len(group)))
                response = self.http.post(
                    "/api/v1/orders",
                    json={"item_ids": chosen},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                body = self._check("create", response)
                order_no = None
                if body is not None:
                    order_no = body["order_no"]
                elif response.status_code == 409:
                    order_no = response.json()["error"]["details"].get("order_no")
                if order_no is None:
                    order_no = self._live_order()
                if order_no is not None:
                    self.orders.append(order_no)
                    for _ in range(self.rng.randint(1, 3)):
                        self._act(order_no)
                if self.rng.random() < 0.2:
                    self._fees_consistent()
                if self.rng.random() < 0.2 and (bad := store_violations(self.server)):
                    self.problems.append(f"store: {bad}")
                if self.rng.random() < 0.08:
                    self.clock.advance(self.rng.randint(5, 40))
                if self.rng.random() < 0.05:  # the helpdesk reconciles meanwhile
                    response = self.http.post(
                        "/api/v1/staff/reconcile", json={"date": str(TODAY)}, headers=self.staff
                    )
                    self._check("reconcile", response)
        finally:
            self.http.close()
        return self.problems


async def _api_invariants(api: ApiClient, before: dict[str, FeeItem]) -> None:
    orders = (await api.list_orders()).orders
    fees = await fee_map(api)
    paid_amounts: Counter[str] = Counter()
    paid_in: defaultdict[str, list[str]] = defaultdict(list)
    unfinished_in: defaultdict[str, list[str]] = defaultdict(list)
    for order in orders:
        for item in order.items:
            if order.status == "paid":
                paid_amounts[item.id] += item.amount
                paid_in[item.id].append(order.order_no)
            elif order.unfinished:
                unfinished_in[item.id].append(order.order_no)
    for item in fees.values():
        assert item.amount_paid <= item.amount_due, item
        assert item.amount_paid == before[item.name].amount_paid + paid_amounts[item.id], item
        assert len(paid_in[item.id]) <= 1, (item, paid_in[item.id])
        assert len(unfinished_in[item.id]) <= 1, (item, unfinished_in[item.id])


@SHORT_TTL
async def test_concurrent_devices_keep_the_payment_invariants(server, login, clock):
    staff = await login(*STAFF)
    zw = [await zhang(login)]
    zw += [await zhang_device(login) for _ in range(2)]
    cj = [await login(*CHEN) for _ in range(2)]
    zw_items = await fee_map(zw[0])
    cj_items = await fee_map(cj[0])
    zw_groups = [[zw_items[n].id for n in FISCAL], [zw_items[n].id for n in AGENCY]]
    cj_groups = [[cj_items[n].id for n in AGENCY]]
    devices = [(zw[i % 3].token, zw_groups) for i in range(5)]
    devices += [(cj[i % 2].token, cj_groups) for i in range(3)]
    workers = [
        Device(server, token, staff.token, groups, seed, clock)
        for seed, (token, groups) in enumerate(devices)
    ]
    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        futures = [pool.submit(w.run, 40) for w in workers]
        problems = [p for f in futures for p in await asyncio.wrap_future(f)]
    assert problems == []
    seen = sum((w.seen for w in workers), Counter())
    # the race really happened: devices collided over items and took every path
    assert seen["create ITEM_IN_OPEN_ORDER"] > 0, seen
    assert seen["create 201"] >= 5, seen
    for what in ("pay 200", "query 200", "sandbox 200", "reconcile 200"):
        assert seen[what] > 0, seen
    assert seen["cancel 200"] + seen["claim 200"] > 0, seen
    assert_store_invariants(server, settled=False)
    await _api_invariants(zw[0], zw_items)
    await _api_invariants(cj[0], cj_items)

    # settle everything: slow payments answer, open orders expire, reconcile the day
    clock.advance(3600)
    await staff.staff_reconcile(TODAY)
    for api in (zw[0], cj[0]):
        await api.list_orders()  # expiry on read
    final = await staff.staff_reconcile(TODAY)
    assert [d for d in final.discrepancies if d.kind == "in_progress"] == []
    assert_store_invariants(server, settled=True)
    await _api_invariants(zw[0], zw_items)
    await _api_invariants(cj[0], cj_items)
    statement = await staff.sandbox_statement(TODAY)
    recorded = {
        o.order_no: o.transaction_id
        for api in (zw[0], cj[0])
        for o in (await api.list_orders()).orders
        if o.status == "paid"
    }
    assert {t.order_no: t.transaction_id for t in statement.trades} == recorded


def _same_key_race(url: str, token: str, item_ids: list[str], key: str, n: int) -> list:
    barrier = threading.Barrier(n)

    def one(index: int) -> httpx.Response:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            body = {"item_ids": item_ids if index % 2 else list(reversed(item_ids))}
            barrier.wait()
            return http.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


async def test_same_key_sent_by_eight_threads_makes_one_order(server, login):
    api = await zhang(login)
    item_ids = await ids(api, *FISCAL)
    answers = await asyncio.to_thread(
        _same_key_race, server.url, api.token, item_ids, "race-key", 8
    )
    made = set()
    for response in answers:
        if response.status_code == 201:
            made.add(response.json()["order_no"])
        else:
            error_of(response, 409, "IDEMPOTENCY_IN_PROGRESS")
    assert len(made) == 1
    orders = (await api.list_orders()).orders
    assert [o.order_no for o in orders] == list(made)
    assert rows(server, "SELECT COUNT(*) AS n FROM orders")[0]["n"] == 1


async def test_distinct_keys_racing_for_the_same_items_make_one_order(server, login):
    devices = [await zhang(login)] + [await zhang_device(login) for _ in range(3)]
    item_ids = await ids(devices[0], "学费")

    def one(index: int) -> httpx.Response:
        with httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {devices[index % 4].token}"},
            timeout=60,
        ) as http:
            barrier.wait()
            return http.post(
                "/api/v1/orders",
                json={"item_ids": item_ids},
                headers={"Idempotency-Key": f"device-{index}"},
            )

    barrier = threading.Barrier(8)

    def race() -> list[httpx.Response]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, range(8)))

    answers = await asyncio.to_thread(race)
    created = [r.json()["order_no"] for r in answers if r.status_code == 201]
    assert len(created) == 1
    for response in answers:
        if response.status_code != 201:
            details = error_of(response, 409, "ITEM_IN_OPEN_ORDER")
            assert details["order_no"] == created[0]
    assert len((await devices[0].list_orders()).orders) == 1


async def test_a_nul_character_is_refused_or_found_to_be_nothing_alike_on_both_databases(
    server, login
):
    """PostgreSQL stores no NUL character and refuses to be asked about one: a body text
    holding one is refused by name, a path holding one names nothing, a query is refused."""
    api = await zhang(login)
    body = await post_order(server, api, ["fee\x00item"], key="nul-key-1")
    assert "item_ids" in error_of(body, 422, "VALIDATION_ERROR")["fields"]
    error_of(await raw(server, "GET", "/api/v1/orders/2026%00", api), 404, "ORDER_NOT_FOUND")
    error_of(
        await raw(server, "POST", "/sandbox/pay/abc%00def", json={"outcome": "success"}),
        404,
        "TRADE_NOT_FOUND",
    )
    waited = await raw(server, "GET", "/api/v1/orders?status=open%00", api)
    assert error_of(waited, 422, "VALIDATION_ERROR")["fields"] == {
        "query": "must not contain a NUL character"
    }


# ============================================================================ receipts
async def test_a_paid_order_has_its_receipt_fixed_at_payment(server, login):
    api = await zhang(login)
    order = await order_for(api, "教材费", "体检费")
    with_no_receipt = await raw(server, "GET", f"/api/v1/orders/{order.order_no}/receipt", api)
    error_of(with_no_receipt, 409, "ORDER_NOT_PAID")
    qr = await api.pay_order(order.order_no, "alipay")
    await api.sandbox_pay(qr.qr_url, "success")
    paid = await api.get_order(order.order_no, wait=5, status="open")
    receipt = await api.receipt(order.order_no)
    assert (receipt.receipt_no, receipt.order_no, receipt.transaction_id) == (
        paid.receipt_no,
        paid.order_no,
        paid.transaction_id,
    )
    assert len(receipt.check_code) == 6 and receipt.check_code.isdigit()
    assert (receipt.payer.username, receipt.payer.name) == (ZHANG[0], "张伟")
    assert (receipt.payee, receipt.receipt_type, receipt.channel) == (PAYEE, "receipt", "alipay")
    assert [(i.name, i.amount, i.refunded) for i in receipt.items] == [
        ("教材费", 42000, 0),
        ("体检费", 6000, 0),
    ]
    assert (receipt.total, receipt.refunded, receipt.status) == (48000, 0, "issued")
    assert receipt.paid_at == paid.paid_at
    staff = await login(*STAFF)
    assert await staff.staff_receipt(order.order_no) == receipt  # the same, check code too
    assert await api.receipt(order.order_no) == receipt  # and it never changes
    chen = await login(*CHEN)
    await refused(chen.receipt(order.order_no), "ORDER_NOT_FOUND")  # another student's
    await refused(api.staff_receipt(order.order_no), "FORBIDDEN")
