"""Orders: idempotent creation, long-poll reads, pay, query, cancel, claim-paid, receipt
and its resend."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from epay_tui.api import errors, models
from epay_tui.server import money, payments
from epay_tui.server.deps import (
    AUTH_ERRORS,
    BackendDep,
    IdempotencyKey,
    StudentSession,
    error_responses,
)

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])
MAX_WAIT = 25.0
NOT_OPEN = (errors.OrderNotFound, errors.OrderNotOpen)


@router.post(
    "",
    status_code=201,
    response_model=models.Order,
    responses=error_responses(
        *AUTH_ERRORS,
        errors.OutsidePaymentHours,
        errors.ProfileIncomplete,
        errors.ItemNotFound,
        errors.MixedReceiptTypes,
        errors.ItemAlreadyPaid,
        errors.ItemInOpenOrder,
        errors.IdempotencyKeyReused,
        errors.IdempotencyInProgress,
    ),
)
def create_order(
    body: models.OrderCreate,
    backend: BackendDep,
    session: StudentSession,
    idempotency_key: IdempotencyKey,
) -> models.Order:
    """One order per key: the same key and items lead back to the same order."""
    return payments.create_order(backend, session, idempotency_key, body.item_ids)


@router.get("", response_model=models.Orders, responses=error_responses(*AUTH_ERRORS))
def list_orders(backend: BackendDep, session: StudentSession) -> models.Orders:
    """The caller's orders, newest first."""
    return payments.list_orders(backend, session.username)


@router.get(
    "/{order_no}",
    response_model=models.Order,
    responses=error_responses(*AUTH_ERRORS, errors.OrderNotFound),
)
async def get_order(
    order_no: str,
    backend: BackendDep,
    session: StudentSession,
    wait: Annotated[float | None, Query(ge=0, le=MAX_WAIT)] = None,
    status: models.OrderStatus | None = None,
) -> models.Order:
    """The order; with ``wait`` a long poll that answers once its status is not ``status``."""
    if not wait:
        return await run_in_threadpool(payments.get_order, backend, order_no, session.username)
    event = backend.events.subscribe(order_no)  # before the first read: no change is missed
    try:
        order = await run_in_threadpool(payments.get_order, backend, order_no, session.username)
        status = status or order.status
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (
            order.status == status
            and (left := deadline - loop.time()) > 0
            and not backend.events.closed
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=left)
            event.clear()
            order = await run_in_threadpool(payments.get_order, backend, order_no, session.username)
    finally:
        backend.events.unsubscribe(order_no, event)
    return order


@router.post(
    "/{order_no}/pay",
    response_model=models.PayQr,
    responses=error_responses(
        *AUTH_ERRORS,
        *NOT_OPEN,
        errors.OutsidePaymentHours,
        errors.OrderAlreadyPaid,
        errors.PaymentInProgress,
    ),
)
def pay(
    order_no: str, body: models.PayRequest, backend: BackendDep, session: StudentSession
) -> models.PayQr:
    """The scan-to-pay QR; the same channel again gives the same QR."""
    return payments.pay(backend, session, order_no, body.channel)


@router.post(
    "/{order_no}/query",
    response_model=models.Order,
    responses=error_responses(*AUTH_ERRORS, errors.OrderNotFound),
)
def query(order_no: str, backend: BackendDep, session: StudentSession) -> models.Order:
    """Asks the gateway now and applies the answer."""
    return payments.query(backend, order_no, session.username)


@router.get(
    "/{order_no}/receipt",
    response_model=models.Receipt,
    responses=error_responses(*AUTH_ERRORS, errors.OrderNotFound, errors.OrderNotPaid),
)
def receipt(order_no: str, backend: BackendDep, session: StudentSession) -> models.Receipt:
    """The paid order's receipt (电子票据): number, check code, items, payer, payee; an
    unpaid order has none (``409 ORDER_NOT_PAID``)."""
    return payments.receipt(backend, order_no, session.username)


@router.post(
    "/{order_no}/receipt/resend",
    status_code=204,
    responses=error_responses(
        *AUTH_ERRORS,
        errors.OrderNotFound,
        errors.OrderNotPaid,
        errors.ProfileIncomplete,
        errors.RateLimited,
    ),
)
def resend_receipt(order_no: str, backend: BackendDep, session: StudentSession) -> Response:
    """The e-receipt notice again: one SMS and one e-mail to the contacts on file now.
    Three resends of an order in 24 hours; the fourth is `429 RATE_LIMITED` with
    `details.retry_after` (seconds)."""
    money.resend_receipt(backend, order_no, session.username, session.username)
    return Response(status_code=204)


@router.post(
    "/{order_no}/cancel",
    response_model=models.Order,
    responses=error_responses(*AUTH_ERRORS, *NOT_OPEN, errors.PaymentInProgress),
)
def cancel(order_no: str, backend: BackendDep, session: StudentSession) -> models.Order:
    """Closes the gateway trade first, then releases the items (or finds it paid)."""
    return payments.cancel(backend, session, order_no)


@router.post(
    "/{order_no}/claim-paid",
    response_model=models.Order,
    responses=error_responses(*AUTH_ERRORS, *NOT_OPEN),
)
def claim_paid(order_no: str, backend: BackendDep, session: StudentSession) -> models.Order:
    """Claim "I have paid": paid at the gateway -> paid; otherwise awaiting_confirmation."""
    return payments.claim_paid(backend, session, order_no)
