"""The gateway sandbox's pages and calls, the notify endpoint, and the dev hooks."""

from __future__ import annotations

import html
import json
import secrets
from datetime import date
from typing import Annotated

import pydantic
from fastapi import APIRouter, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from epay_tui.api import errors, models, rules
from epay_tui.server import accounts, payments, security
from epay_tui.server.deps import BackendDep, error_responses, loopback_only
from epay_tui.server.store import orders

router = APIRouter(tags=["sandbox"])


@router.get(
    "/sandbox/pay/{pay_token}",
    response_class=HTMLResponse,
    responses=error_responses(errors.TradeNotFound, errors.TradeClosed, errors.TradePaid),
)
def pay_page(pay_token: str, backend: BackendDep) -> HTMLResponse:
    """What a phone shows after scanning: payee, amount, items, Pay and Decline.

    The page may not be framed (no clickjacking of Pay), cached, or run any script but
    its own, and it tells no other site its address (the pay token is in it)."""
    try:
        trade = backend.sandbox.trade_by_token(pay_token)
    except errors.ApiError as exc:
        return _page(_PAGE_WORDS[exc.code], "", status=exc.status)
    items = "".join(
        f"<li>{html.escape(i['name'])} {rules.format_fen(i['amount'])}</li>"
        for i in json.loads(trade["items"])
    )
    body = (
        f"<p>收款方 Payee: <b>{html.escape(trade['payee'])}</b></p>"
        f"<p class=amount>{rules.format_fen(trade['amount'])}</p><ul>{items}</ul>"
        f"<p>渠道 Channel: {html.escape(trade['channel'])}"
        f" · 订单 Order {html.escape(trade['order_no'])}</p>"
        "<button data-outcome=success>支付 Pay</button> "
        "<button data-outcome=declined>拒绝 Decline</button><p id=r></p>"
    )
    return _page("沙箱支付 Sandbox payment", body, script=_PAY_SCRIPT)


_PAY_SCRIPT = (
    "for(const b of document.querySelectorAll('button[data-outcome]')){"
    "b.addEventListener('click',()=>fetch(location.pathname,{method:'POST',"
    "headers:{'Content-Type':'application/json'},"
    "body:JSON.stringify({outcome:b.dataset.outcome})})"
    ".then(r=>r.json()).then(j=>{document.getElementById('r').textContent="
    "j.trade_state||(j.error&&j.error.message)}))}"
)

_PAGE_WORDS = {
    "TRADE_NOT_FOUND": "没有这笔交易 No such payment",
    "TRADE_CLOSED": "交易已关闭 This payment is closed",
    "TRADE_PAID": "已支付 Already paid",
}


def _page(title: str, body: str, script: str = "", status: int = 200) -> HTMLResponse:
    """A pay page with a fresh script nonce and the headers that lock it down."""
    nonce = secrets.token_urlsafe(16)
    tag = f'<script nonce="{nonce}">{script}</script>' if script else ""
    page = (
        "<!doctype html><html lang=zh><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{body}{tag}</html>"
    )
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; connect-src 'self';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(page, status_code=status, headers=headers)


@router.post(
    "/sandbox/pay/{pay_token}",
    response_model=models.SandboxPayResult,
    responses=error_responses(errors.TradeNotFound, errors.TradeClosed, errors.TradePaid),
)
async def pay(
    pay_token: str, body: models.SandboxPayRequest, backend: BackendDep
) -> models.SandboxPayResult:
    """The payer's outcome; the notify follows as chosen (now, delay, drop, duplicate)."""
    result = await run_in_threadpool(backend.sandbox.pay, pay_token, body)
    await backend.sandbox.dispatch_due()  # the notify now, not at the next tick
    return result


@router.get(
    "/sandbox/statement",
    response_model=models.Statement,
    dependencies=[Depends(loopback_only)],
    responses=error_responses(errors.ForbiddenRole),
)
def statement(date: date, backend: BackendDep) -> models.Statement:
    """The gateway's successful trades on ``date`` (school time); to a loopback peer only,
    as it lists every student's payments."""
    return backend.gateway.statement(date)


@router.post(
    "/api/v1/gateway/notify/{channel}",
    responses=error_responses(
        errors.BadSignature, errors.AmountMismatch, errors.OrderNotFound, errors.NotifyUnconfirmed
    ),
    tags=["gateway"],
)
async def notify(
    channel: models.Channel,
    request: Request,
    backend: BackendDep,
    x_sandbox_signature: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> dict:
    """Signed gateway notify: the signature (lower-case hex HMAC-SHA256 of the raw body) is
    checked before the body is parsed; a notify for another channel than its path is
    `422 VALIDATION_ERROR`; an amount unlike the order's is `400 AMOUNT_MISMATCH` and one
    discrepancy; then the gateway is asked to confirm the trade, and a notify it does not
    confirm records nothing: `409 NOTIFY_UNCONFIRMED` (audited)."""
    raw = await request.body()
    if not security.signature_ok(backend.notify_secret, raw, x_sandbox_signature):
        raise errors.BadSignature()
    try:
        body = models.GatewayNotify.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        fields = {".".join(map(str, e["loc"])) or "body": e["msg"] for e in exc.errors()}
        raise errors.ValidationFailed(fields=fields) from None
    await run_in_threadpool(payments.handle_notify, backend, channel, body)
    return {"code": "SUCCESS", "message": "OK"}


# ---------------------------------------------------------------------------- dev hooks
dev_router = APIRouter(tags=["dev-hooks"])


@dev_router.get("/sandbox/captcha/latest", response_model=models.LatestCaptcha)
def latest_captcha(backend: BackendDep) -> models.LatestCaptcha:
    """The last captcha issued and its answer (``--dev-hooks`` only)."""
    return accounts.latest_captcha(backend)


@dev_router.get("/sandbox/outbox", response_model=models.Outbox)
def outbox(backend: BackendDep) -> models.Outbox:
    """Every SMS and e-mail sent, full addresses (``--dev-hooks`` only)."""
    with backend.store.read() as tx:
        rows = orders.outbox_messages(tx)
    return models.Outbox(
        messages=[
            models.OutboxMessage(
                channel=r["channel"],
                to=r["to_addr"],
                body=r["body"],
                sent_at=backend.time.at(r["sent_at"]),
            )
            for r in rows
        ]
    )


@dev_router.post(
    "/sandbox/duplicate-payment",
    response_model=models.DuplicatePayment,
    responses=error_responses(errors.OrderNotFound, errors.OrderNotPaid),
)
async def duplicate_payment(
    body: models.DuplicatePaymentRequest, backend: BackendDep
) -> models.DuplicatePayment:
    """The gateway takes a paid order's amount a second time (``--dev-hooks`` only), as
    when its student also paid on the college's phone platform, and sends its notify: the
    backend keeps it as a discrepancy, nothing is paid twice. A counter payment's order
    is paid again by WeChat."""
    order = await run_in_threadpool(payments.get_order, backend, body.order_no, None)
    if order.status != "paid":
        raise errors.OrderNotPaid()
    channel = order.channel if order.channel in models.CHANNELS else "wechat"
    trade_no, transaction_id = await run_in_threadpool(
        backend.sandbox.duplicate_payment, order.order_no, channel, order.total, order.payee
    )
    await backend.sandbox.dispatch_due()
    return models.DuplicatePayment(
        trade_no=trade_no, transaction_id=transaction_id, amount=order.total
    )
