"""Faults of the wire the reference backend cannot produce, via httpx.MockTransport.

Everything the backend can answer is tested against a live backend elsewhere; here
only garbled bodies, foreign error codes, network failures and what the client sends.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from epay_tui.api import errors
from epay_tui.api.client import KEEPALIVE_SECONDS, ApiClient, new_idempotency_key

BASE = "http://backend.test"

ORDER = {
    "order_no": "E20260901000001",
    "status": "open",
    "items": [{"id": "fee-1", "name": "学费", "amount": 650000}],
    "total": 650000,
    "receipt_type": "fiscal",
    "payee": "常州工程职业技术学院",
    "created_at": "2026-09-01T10:00:00+08:00",
    "expires_at": "2026-09-01T10:15:00+08:00",
    "payment": None,
    "paid_at": None,
    "channel": None,
    "transaction_id": None,
    "receipt_no": None,
    "close_reason": None,
}

LOGIN = {
    "token": "tok-123",
    "role": "student",
    "must_change_password": False,
    "password_issue": None,
    "expires_at": "2026-09-01T10:30:00+08:00",
}


def error(code: str, **details: object) -> dict[str, object]:
    return {"error": {"code": code, "message": "text the client never parses", "details": details}}


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> ApiClient:
    return ApiClient(BASE, transport=httpx.MockTransport(handler))


async def test_garbled_200_body_is_bad_response() -> None:
    async with client_for(lambda r: httpx.Response(200, content=b"\x00{not json")) as c:
        with pytest.raises(errors.BadResponse):
            await c.meta()


async def test_html_502_is_bad_response() -> None:
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    handler = lambda r: httpx.Response(502, html=page)  # noqa: E731
    async with client_for(handler) as c:
        with pytest.raises(errors.BadResponse) as caught:
            await c.fees()
    assert caught.value.details["http_status"] == 502


async def test_json_error_without_error_shape_is_bad_response() -> None:
    async with client_for(lambda r: httpx.Response(500, json={"detail": "boom"})) as c:
        with pytest.raises(errors.BadResponse):
            await c.me()


async def test_2xx_missing_fields_is_bad_response() -> None:
    partial = {k: v for k, v in ORDER.items() if k not in {"total", "status"}}
    async with client_for(lambda r: httpx.Response(200, json=partial)) as c:
        with pytest.raises(errors.BadResponse) as caught:
            await c.get_order("E20260901000001")
    assert caught.value.details["http_status"] == 200


async def test_empty_2xx_where_a_body_is_due_is_bad_response() -> None:
    async with client_for(lambda r: httpx.Response(204)) as c:
        with pytest.raises(errors.BadResponse):
            await c.query_order("E20260901000001")


async def test_unknown_error_code_keeps_its_code_and_details() -> None:
    body = error("GATEWAY_ON_FIRE", retry_after=30)
    async with client_for(lambda r: httpx.Response(503, json=body)) as c:
        with pytest.raises(errors.ApiError) as caught:
            await c.meta()
    exc = caught.value
    assert not isinstance(exc, errors.TransportError)
    assert exc.code == "GATEWAY_ON_FIRE"
    assert exc.status == 503
    assert exc.details == {"retry_after": 30}


async def test_known_error_code_becomes_its_class_with_details() -> None:
    body = error("BAD_CREDENTIALS", attempts_left=3)
    async with client_for(lambda r: httpx.Response(401, json=body)) as c:
        with pytest.raises(errors.BadCredentials) as caught:
            await c.login("2024010001", "wrong", "cap-1", "ABCD")
        assert c.token is None
    assert caught.value.details["attempts_left"] == 3


async def test_connect_error_is_backend_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client_for(refuse) as c:
        with pytest.raises(errors.BackendUnreachable):
            await c.healthz()


async def test_read_timeout_is_backend_timeout() -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with client_for(stall) as c:
        with pytest.raises(errors.BackendTimeout):
            await c.list_orders()


async def test_other_transport_errors_never_escape() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    async with client_for(drop) as c:
        with pytest.raises(errors.BackendUnreachable):
            await c.fees()


async def test_idempotency_key_and_bearer_token_are_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v1/auth/login":
            return httpx.Response(200, json=LOGIN)
        return httpx.Response(201, json=ORDER)

    key = new_idempotency_key()
    assert 1 <= len(key) <= 64
    async with client_for(handler) as c:
        await c.login("2024010001", "152018Czgc", "cap-1", "ABCD")
        assert c.token == "tok-123"
        order = await c.create_order(["fee-1"], key)
    assert order.order_no == "E20260901000001"
    login, create = seen
    assert "Authorization" not in login.headers
    assert create.url.path == "/api/v1/orders"
    assert create.headers["Idempotency-Key"] == key
    assert create.headers["Authorization"] == "Bearer tok-123"


async def test_long_poll_read_timeout_exceeds_wait() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ORDER)

    async with client_for(handler) as c:
        await c.get_order("E20260901000001", wait=25, status="open")
        await c.get_order("E20260901000001")
    poll, plain = seen
    assert poll.url.params["wait"] == "25"
    assert poll.url.params["status"] == "open"
    assert poll.extensions["timeout"]["read"] == 35
    assert "wait" not in plain.url.params
    assert plain.extensions["timeout"]["read"] == 10


async def test_logout_forgets_the_token_even_when_the_backend_is_gone() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client_for(refuse) as c:
        c.token = "tok-123"
        with pytest.raises(errors.BackendUnreachable):
            await c.logout()
        assert c.token is None


async def test_the_client_drops_an_idle_connection_long_before_the_server_does() -> None:
    """A request sent into a connection the server is just closing fails (the load
    benchmark met it at uvicorn's and httpx's equal 5 s defaults): the client's idle
    expiry must stay well under the backend's keep-alive."""
    from epay_tui.server.config import ServerConfig
    from epay_tui.server.runner import KEEP_ALIVE_SECONDS, _uvicorn

    async with ApiClient("http://127.0.0.1:9") as api:
        pool = api._http._transport._pool  # httpx keeps the setting on its pool
        assert pool._keepalive_expiry == KEEPALIVE_SECONDS
    assert _uvicorn(object(), ServerConfig()).config.timeout_keep_alive == KEEP_ALIVE_SECONDS
    assert KEEPALIVE_SECONDS + 10 < KEEP_ALIVE_SECONDS
