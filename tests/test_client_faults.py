"""Faults of the wire the reference backend cannot produce, via httpx.MockTransport.

Everything the backend can answer is tested against the live backend (here too, for
what the client sends and how it reads a refusal); the fakes give only garbled bodies,
foreign error codes and network failures.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from epay_tui.api import errors
from epay_tui.api.client import KEEPALIVE_SECONDS, ApiClient, new_idempotency_key
from tests.conftest import NEW_ZHANG, ZHANG, solve_captcha, solve_login

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


async def test_known_error_code_becomes_its_class_with_details(server) -> None:
    """Against the real backend: a wrong password is BadCredentials with its details."""
    async with ApiClient(server.url) as c:
        captcha_id, answer = await solve_captcha(c)
        with pytest.raises(errors.BadCredentials) as caught:
            await c.login(ZHANG[0], "Wrong-pass-9", captcha_id, answer)
        assert c.token is None
    assert caught.value.details["attempts_left"] == 4


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


class Recording(httpx.AsyncHTTPTransport):
    """The real connection to the live backend, keeping every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await super().handle_async_request(request)


async def test_idempotency_key_and_bearer_token_are_sent(server) -> None:
    key = new_idempotency_key()
    assert 1 <= len(key) <= 64
    wire = Recording()
    async with ApiClient(server.url, transport=wire) as c:
        await solve_login(c, *ZHANG)
        await c.change_password(ZHANG[1], NEW_ZHANG)
        tuition = next(i for i in (await c.fees()).tags[0].items if i.name == "学费")
        order = await c.create_order([tuition.id], key)
        token = c.token
    assert order.items[0].id == tuition.id
    login = next(r for r in wire.sent if r.url.path == "/api/v1/auth/login")
    create = next(r for r in wire.sent if r.url.path == "/api/v1/orders")
    assert "Authorization" not in login.headers
    assert create.headers["Idempotency-Key"] == key
    assert create.headers["Authorization"] == f"Bearer {token}"


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
