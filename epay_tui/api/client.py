"""Async httpx client for the payment backend: one method per endpoint of api.md.

Every method returns the pydantic model of :mod:`epay_tui.api.models` (``None`` for
``204`` answers) or raises an :class:`~epay_tui.api.errors.ApiError`: the typed error
of the backend's error body, :class:`~epay_tui.api.errors.BadResponse` for an answer
that is not the contract's, :class:`~epay_tui.api.errors.BackendUnreachable` or
:class:`~epay_tui.api.errors.BackendTimeout` for the network. No httpx exception
leaves this module.
"""

from __future__ import annotations

import datetime as dt
import uuid
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from epay_tui.api import errors
from epay_tui.api.models import (
    Arrears,
    AuditLog,
    Captcha,
    CashierReport,
    Channel,
    CounterMethod,
    Discrepancies,
    DuplicatePayment,
    Fees,
    Health,
    LatestCaptcha,
    LoginResult,
    Meta,
    Order,
    Orders,
    OrderStatus,
    Outbox,
    PayQr,
    Profile,
    Receipt,
    ReconcileResult,
    Refund,
    Refunds,
    RefundStatus,
    ResetStarted,
    SandboxPayResult,
    Statement,
    StudentDetail,
    StudentList,
)

API = "/api/v1"
LONG_POLL_MARGIN = 10.0
"""Seconds the read timeout of a long poll exceeds its ``wait``."""
KEEPALIVE_SECONDS = 4.0
"""An idle connection is dropped after this long: shorter than the keep-alive of common
servers (uvicorn 5 s, nginx 75 s), so a request never races the server's close."""

M = TypeVar("M", bound=BaseModel)
JSON = dict[str, Any]


def new_idempotency_key() -> str:
    """A fresh random ``Idempotency-Key``; keep one per order confirmation."""
    return uuid.uuid4().hex


def _seg(value: str) -> str:
    """One URL path segment, fully escaped (``/``, ``.`` and ``..`` included)."""
    if not value:
        raise ValueError("empty path segment")
    escaped = quote(value, safe="")
    return escaped.replace(".", "%2E") if escaped in {".", ".."} else escaped


def _pay_token(pay_token_or_url: str) -> str:
    """The pay token of a sandbox ``qr_url`` (or the token itself)."""
    return pay_token_or_url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _iso(day: dt.date | str) -> str:
    return day.isoformat() if isinstance(day, dt.date) else day


class ApiClient:
    """The backend at ``base_url`` (scheme, host, port; ``/api/v1`` is added here).

    After :meth:`login` the bearer token is kept in :attr:`token` and sent with every
    request; set it to resume a session, :meth:`logout` clears it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
            headers={"Accept": "application/json", "User-Agent": "epay-tui"},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------------ core
    @overload
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = ...,
        params: dict[str, Any] | None = ...,
        headers: dict[str, str] | None = ...,
        model: type[M],
        timeout: httpx.Timeout | None = ...,
    ) -> M: ...

    @overload
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = ...,
        params: dict[str, Any] | None = ...,
        headers: dict[str, str] | None = ...,
        model: type[bytes],
        timeout: httpx.Timeout | None = ...,
    ) -> bytes: ...

    @overload
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = ...,
        params: dict[str, Any] | None = ...,
        headers: dict[str, str] | None = ...,
        model: None = ...,
        timeout: httpx.Timeout | None = ...,
    ) -> None: ...

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        model: type[M] | type[bytes] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> M | bytes | None:
        """Send one request; return ``model`` parsed from a 2xx body (``bytes``: the body
        as it came), else raise."""
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                params=params or None,
                headers=sent,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise errors.BackendTimeout() from exc
        except httpx.DecodingError as exc:
            raise errors.BadResponse(f"{method} {path}: undecodable body") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise errors.BackendUnreachable(str(exc) or None) from exc

        status = response.status_code
        where = f"{method} {path}: HTTP {status}"
        if not response.is_success:
            try:
                body = response.json()
            except ValueError as exc:
                raise errors.BadResponse(f"{where}, not JSON", http_status=status) from exc
            error = errors.error_from_body(status, body)
            if isinstance(error, errors.BadResponse):
                error.details.setdefault("http_status", status)
            raise error
        if model is None:
            return None
        if model is bytes:
            return response.content
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise errors.BadResponse(
                f"{where}, body is not a {model.__name__}", http_status=status
            ) from exc

    # ------------------------------------------------------------------------ public
    async def healthz(self) -> Health:
        """``GET /healthz``."""
        return await self._request("GET", "/healthz", model=Health)

    async def meta(self) -> Meta:
        """``GET /meta``: school, payee, payment hours, channels, order TTL, sandbox."""
        return await self._request("GET", f"{API}/meta", model=Meta)

    async def new_captcha(self) -> Captcha:
        """``POST /captcha``: a fresh single-use captcha."""
        return await self._request("POST", f"{API}/captcha", model=Captcha)

    # ------------------------------------------------------------------------ auth
    async def login(
        self, username: str, password: str, captcha_id: str, captcha_answer: str
    ) -> LoginResult:
        """``POST /auth/login``; keeps the token for the following calls."""
        result = await self._request(
            "POST",
            f"{API}/auth/login",
            json={
                "username": username,
                "password": password,
                "captcha_id": captcha_id,
                "captcha_answer": captcha_answer,
            },
            model=LoginResult,
        )
        self.token = result.token
        return result

    async def change_password(self, old_password: str, new_password: str) -> None:
        """``POST /auth/password`` (204); this session stays valid."""
        await self._request(
            "POST",
            f"{API}/auth/password",
            json={"old_password": old_password, "new_password": new_password},
        )

    async def logout(self) -> None:
        """``POST /auth/logout``; the token is forgotten whatever the answer.

        A session that has already expired (``UNAUTHENTICATED``) counts as logged out.
        """
        if self.token is None:
            return
        try:
            await self._request("POST", f"{API}/auth/logout")
        except errors.Unauthenticated:
            pass
        finally:
            self.token = None

    # ------------------------------------------------------------------------ reset
    async def reset_start(
        self,
        username: str,
        name: str,
        id_card_no: str,
        captcha_id: str,
        captcha_answer: str,
    ) -> ResetStarted:
        """``POST /password-reset/start``: the reset id and the masked channels."""
        return await self._request(
            "POST",
            f"{API}/password-reset/start",
            json={
                "username": username,
                "name": name,
                "id_card_no": id_card_no,
                "captcha_id": captcha_id,
                "captcha_answer": captcha_answer,
            },
            model=ResetStarted,
        )

    async def reset_send(self, reset_id: str, channel: Literal["sms", "email"]) -> None:
        """``POST /password-reset/send`` (204): send the 6-digit code."""
        await self._request(
            "POST",
            f"{API}/password-reset/send",
            json={"reset_id": reset_id, "channel": channel},
        )

    async def reset_complete(self, reset_id: str, code: str, new_password: str) -> None:
        """``POST /password-reset/complete`` (204): set the new password."""
        await self._request(
            "POST",
            f"{API}/password-reset/complete",
            json={"reset_id": reset_id, "code": code, "new_password": new_password},
        )

    # ------------------------------------------------------------------------ profile
    async def me(self) -> Profile:
        """``GET /me``."""
        return await self._request("GET", f"{API}/me", model=Profile)

    async def update_me(
        self, current_password: str, *, phone: str | None = None, email: str | None = None
    ) -> Profile:
        """``PATCH /me``: change phone and/or e-mail (``None`` leaves a field as is)."""
        body: JSON = {"current_password": current_password}
        if phone is not None:
            body["phone"] = phone
        if email is not None:
            body["email"] = email
        return await self._request("PATCH", f"{API}/me", json=body, model=Profile)

    # ------------------------------------------------------------------------ fees
    async def fees(self) -> Fees:
        """``GET /fees``: fee items by tag, current tag first."""
        return await self._request("GET", f"{API}/fees", model=Fees)

    # ------------------------------------------------------------------------ orders
    async def create_order(self, item_ids: list[str], idempotency_key: str) -> Order:
        """``POST /orders`` with ``Idempotency-Key``; reuse the key to retry safely."""
        return await self._request(
            "POST",
            f"{API}/orders",
            json={"item_ids": list(item_ids)},
            headers={"Idempotency-Key": idempotency_key},
            model=Order,
        )

    async def list_orders(self) -> Orders:
        """``GET /orders``: the caller's orders, newest first."""
        return await self._request("GET", f"{API}/orders", model=Orders)

    async def get_order(
        self, no: str, wait: float | None = None, status: OrderStatus | None = None
    ) -> Order:
        """``GET /orders/{no}``; with ``wait`` a long poll until the status leaves ``status``."""
        timeout = None
        if wait is not None:
            timeout = httpx.Timeout(self.timeout, read=max(wait, 0) + LONG_POLL_MARGIN)
        return await self._request(
            "GET",
            f"{API}/orders/{_seg(no)}",
            params={"wait": wait, "status": status},
            model=Order,
            timeout=timeout,
        )

    async def pay_order(self, no: str, channel: Channel) -> PayQr:
        """``POST /orders/{no}/pay``: the scan-to-pay QR for ``channel``."""
        return await self._request(
            "POST", f"{API}/orders/{_seg(no)}/pay", json={"channel": channel}, model=PayQr
        )

    async def query_order(self, no: str) -> Order:
        """``POST /orders/{no}/query``: ask the gateway now."""
        return await self._request("POST", f"{API}/orders/{_seg(no)}/query", model=Order)

    async def cancel_order(self, no: str) -> Order:
        """``POST /orders/{no}/cancel``: close the trade, release the items."""
        return await self._request("POST", f"{API}/orders/{_seg(no)}/cancel", model=Order)

    async def receipt(self, no: str) -> Receipt:
        """``GET /orders/{no}/receipt``: the paid order's receipt."""
        return await self._request("GET", f"{API}/orders/{_seg(no)}/receipt", model=Receipt)

    async def resend_receipt(self, no: str) -> None:
        """``POST /orders/{no}/receipt/resend`` (204): the e-receipt notice again."""
        await self._request("POST", f"{API}/orders/{_seg(no)}/receipt/resend")

    async def claim_paid(self, no: str) -> Order:
        """``POST /orders/{no}/claim-paid``: "I have paid but it still says unpaid"."""
        return await self._request("POST", f"{API}/orders/{_seg(no)}/claim-paid", model=Order)

    # ------------------------------------------------------------------------ staff
    async def staff_students(self, q: str = "") -> StudentList:
        """``GET /staff/students?q=``: students by number or name prefix."""
        return await self._request(
            "GET", f"{API}/staff/students", params={"q": q}, model=StudentList
        )

    async def staff_student(self, username: str) -> StudentDetail:
        """``GET /staff/students/{username}``: profile, fees and orders."""
        return await self._request(
            "GET", f"{API}/staff/students/{_seg(username)}", model=StudentDetail
        )

    async def staff_reset_password(self, username: str) -> None:
        """``POST /staff/students/{username}/reset-password`` (204)."""
        await self._request("POST", f"{API}/staff/students/{_seg(username)}/reset-password")

    async def staff_unlock(self, username: str) -> None:
        """``POST /staff/students/{username}/unlock`` (204)."""
        await self._request("POST", f"{API}/staff/students/{_seg(username)}/unlock")

    async def staff_receipt(self, no: str) -> Receipt:
        """``GET /staff/orders/{no}/receipt``: a student's paid order's receipt."""
        path = f"{API}/staff/orders/{_seg(no)}/receipt"
        return await self._request("GET", path, model=Receipt)

    async def staff_resend_receipt(self, no: str) -> None:
        """``POST /staff/orders/{no}/receipt/resend`` (204)."""
        await self._request("POST", f"{API}/staff/orders/{_seg(no)}/receipt/resend")

    async def staff_counter_payment(
        self,
        username: str,
        item_ids: list[str],
        method: CounterMethod,
        reference: str | None,
        idempotency_key: str,
    ) -> Order:
        """``POST /staff/students/{username}/counter-payments``: cash or POS, paid now."""
        body: JSON = {"item_ids": list(item_ids), "method": method}
        if reference is not None:
            body["reference"] = reference
        return await self._request(
            "POST",
            f"{API}/staff/students/{_seg(username)}/counter-payments",
            json=body,
            headers={"Idempotency-Key": idempotency_key},
            model=Order,
        )

    async def staff_cashier_report(
        self, date: dt.date | str | None = None, cashier: str | None = None
    ) -> CashierReport:
        """``GET /staff/cashier-report``: a day's counter payments (default: today, mine)."""
        params = {"date": None if date is None else _iso(date), "cashier": cashier}
        return await self._request(
            "GET", f"{API}/staff/cashier-report", params=params, model=CashierReport
        )

    async def staff_discrepancies(self, open_only: bool = False) -> Discrepancies:
        """``GET /staff/discrepancies[?open=true]``, newest first."""
        params = {"open": "true" if open_only else None}
        return await self._request(
            "GET", f"{API}/staff/discrepancies", params=params, model=Discrepancies
        )

    async def staff_request_refund(
        self,
        order_no: str,
        reason: str,
        idempotency_key: str,
        item_ids: list[str] | None = None,
        trade_no: str | None = None,
    ) -> Refund:
        """``POST /staff/refunds``: items of a paid order, or a trade that paid nothing."""
        body: JSON = {"order_no": order_no, "reason": reason}
        if item_ids is not None:
            body["item_ids"] = list(item_ids)
        if trade_no is not None:
            body["trade_no"] = trade_no
        return await self._request(
            "POST",
            f"{API}/staff/refunds",
            json=body,
            headers={"Idempotency-Key": idempotency_key},
            model=Refund,
        )

    async def staff_refunds(self, status: RefundStatus | None = None) -> Refunds:
        """``GET /staff/refunds[?status=]``, newest first."""
        path = f"{API}/staff/refunds"
        return await self._request("GET", path, params={"status": status}, model=Refunds)

    async def staff_refund(self, refund_no: str) -> Refund:
        """``GET /staff/refunds/{refund_no}``."""
        path = f"{API}/staff/refunds/{_seg(refund_no)}"
        return await self._request("GET", path, model=Refund)

    async def staff_approve_refund(self, refund_no: str) -> Refund:
        """``POST /staff/refunds/{refund_no}/approve``: the second pair of eyes."""
        path = f"{API}/staff/refunds/{_seg(refund_no)}/approve"
        return await self._request("POST", path, model=Refund)

    async def staff_reject_refund(self, refund_no: str, reason: str) -> Refund:
        """``POST /staff/refunds/{refund_no}/reject``."""
        path = f"{API}/staff/refunds/{_seg(refund_no)}/reject"
        return await self._request("POST", path, json={"reason": reason}, model=Refund)

    async def staff_query_refund(self, refund_no: str) -> Refund:
        """``POST /staff/refunds/{refund_no}/query``: ask the gateway again."""
        path = f"{API}/staff/refunds/{_seg(refund_no)}/query"
        return await self._request("POST", path, model=Refund)

    async def staff_arrears(
        self, tag: str | None = None, department: str | None = None, class_name: str | None = None
    ) -> Arrears:
        """``GET /staff/arrears``: who still owes in a tag, most owed first."""
        params = {"tag": tag, "department": department, "class_name": class_name}
        return await self._request("GET", f"{API}/staff/arrears", params=params, model=Arrears)

    async def staff_arrears_csv(
        self, tag: str | None = None, department: str | None = None, class_name: str | None = None
    ) -> bytes:
        """``GET /staff/arrears?format=csv``: UTF-8 with a BOM, as Excel opens it."""
        params = {"tag": tag, "department": department, "class_name": class_name, "format": "csv"}
        return await self._request("GET", f"{API}/staff/arrears", params=params, model=bytes)

    async def staff_query_order(self, no: str) -> Order:
        """``POST /staff/orders/{no}/query``: gateway query for a student's order."""
        return await self._request("POST", f"{API}/staff/orders/{_seg(no)}/query", model=Order)

    async def staff_reconcile(self, date: dt.date | str) -> ReconcileResult:
        """``POST /staff/reconcile``: the gateway's statement of ``date`` against orders."""
        return await self._request(
            "POST", f"{API}/staff/reconcile", json={"date": _iso(date)}, model=ReconcileResult
        )

    async def staff_audit(self, limit: int | None = None) -> AuditLog:
        """``GET /staff/audit?limit=``: audit entries, newest first."""
        return await self._request(
            "GET", f"{API}/staff/audit", params={"limit": limit}, model=AuditLog
        )

    # ------------------------------------------------------------------------ sandbox
    async def sandbox_pay(
        self,
        pay_token_or_url: str,
        outcome: Literal["success", "slow", "declined"] = "success",
        notify: Literal["now", "delay", "drop", "duplicate"] = "now",
        delay_seconds: int | None = None,
    ) -> SandboxPayResult:
        """``POST /sandbox/pay/{token}``: act as the payer's phone.

        Takes the token or the whole ``qr_url``; the request goes to this client's
        ``base_url``. ``delay_seconds=None`` leaves the backend's default.
        """
        body: JSON = {"outcome": outcome, "notify": notify}
        if delay_seconds is not None:
            body["delay_seconds"] = delay_seconds
        return await self._request(
            "POST",
            f"/sandbox/pay/{_seg(_pay_token(pay_token_or_url))}",
            json=body,
            model=SandboxPayResult,
        )

    async def sandbox_statement(self, date: dt.date | str) -> Statement:
        """``GET /sandbox/statement?date=``: the gateway's successful trades that day."""
        return await self._request(
            "GET", "/sandbox/statement", params={"date": _iso(date)}, model=Statement
        )

    async def latest_captcha(self) -> LatestCaptcha:
        """``GET /sandbox/captcha/latest`` (``--dev-hooks`` only): id and answer."""
        return await self._request("GET", "/sandbox/captcha/latest", model=LatestCaptcha)

    async def sandbox_duplicate_payment(self, order_no: str) -> DuplicatePayment:
        """``POST /sandbox/duplicate-payment`` (``--dev-hooks`` only): the gateway takes a
        paid order's amount a second time, as another platform would."""
        return await self._request(
            "POST",
            "/sandbox/duplicate-payment",
            json={"order_no": order_no},
            model=DuplicatePayment,
        )

    async def outbox(self) -> Outbox:
        """``GET /sandbox/outbox`` (``--dev-hooks`` only): every SMS and e-mail sent."""
        return await self._request("GET", "/sandbox/outbox", model=Outbox)
