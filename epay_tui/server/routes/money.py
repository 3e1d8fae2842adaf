"""The finance office's calls after payment (api-money.md): receipt resends, counter
payments and the cashier's day, refunds with four eyes, discrepancies, arrears.
Role ``staff``; students get 403 FORBIDDEN."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from epay_tui.api import errors, models
from epay_tui.server import money
from epay_tui.server.deps import (
    AUTH_ERRORS,
    BackendDep,
    IdempotencyKey,
    StaffSession,
    error_responses,
)

router = APIRouter(prefix="/api/v1/staff", tags=["staff: money"])
STAFF_ERRORS = (*AUTH_ERRORS, errors.ForbiddenRole)
KEY_ERRORS = (errors.IdempotencyKeyReused, errors.IdempotencyInProgress)
Filter = Annotated[str | None, Query(max_length=64)]


@router.post(
    "/orders/{order_no}/receipt/resend",
    status_code=204,
    responses=error_responses(
        *STAFF_ERRORS,
        errors.OrderNotFound,
        errors.OrderNotPaid,
        errors.ProfileIncomplete,
        errors.RateLimited,
    ),
)
def resend_receipt(order_no: str, backend: BackendDep, staff: StaffSession) -> Response:
    """A student's e-receipt notice again, to the contacts on file now; the same cap as
    the student's own resends (three an order in 24 hours, counted together)."""
    money.resend_receipt(backend, order_no, staff.username, None)
    return Response(status_code=204)


@router.post(
    "/students/{username}/counter-payments",
    status_code=201,
    response_model=models.Order,
    responses=error_responses(
        *STAFF_ERRORS,
        *KEY_ERRORS,
        errors.StudentNotFound,
        errors.ItemNotFound,
        errors.MixedReceiptTypes,
        errors.ItemAlreadyPaid,
        errors.ItemInOpenOrder,
    ),
)
def counter_payment(
    username: str,
    body: models.CounterPayment,
    backend: BackendDep,
    staff: StaffSession,
    idempotency_key: IdempotencyKey,
) -> models.Order:
    """Cash or a card (POS) taken at the counter: the order is made `paid` at once, its
    `channel` the method, its cashier the caller. Checked like `POST /orders` except for
    payment hours and contacts (the receipt notice goes to whichever are valid). For
    `pos` the `reference` is the slip number, required, and becomes the
    `transaction_id`: a slip number already recorded is `422 VALIDATION_ERROR` (one card
    payment is never recorded twice); for `cash` the backend makes a `C…` number and
    `reference` is an optional note. Idempotency keys are the staff member's own."""
    return money.counter_payment(backend, staff, username, idempotency_key, body)


@router.get(
    "/cashier-report",
    response_model=models.CashierReport,
    responses=error_responses(*STAFF_ERRORS),
)
def cashier_report(
    backend: BackendDep,
    staff: StaffSession,
    date: dt.date | None = None,
    cashier: Filter = None,
) -> models.CashierReport:
    """A day's counter payments, oldest first, with totals for cash and POS (日结).
    Default: today (school time) and the caller; `cashier=*` every cashier. Refunds paid
    out at the counter are not netted here: they are in `GET /staff/refunds`."""
    return money.cashier_report(backend, staff, date, cashier)


@router.get(
    "/discrepancies",
    response_model=models.Discrepancies,
    responses=error_responses(*STAFF_ERRORS),
)
def discrepancies(
    backend: BackendDep, staff: StaffSession, open: bool = False
) -> models.Discrepancies:
    """Discrepancies kept for finance, newest first; each with the live or succeeded
    refund of its trade (`refund_no`). `open=true`: a trade's money to give back
    (`trade_no` and `amount` known) and no succeeded refund yet."""
    return money.discrepancies(backend, open)


REFUND_ERRORS = (*STAFF_ERRORS, errors.RefundNotFound)


@router.post(
    "/refunds",
    status_code=201,
    response_model=models.Refund,
    responses=error_responses(
        *STAFF_ERRORS,
        *KEY_ERRORS,
        errors.OrderNotFound,
        errors.OrderNotPaid,
        errors.ItemNotRefundable,
        errors.TradeNotRefundable,
    ),
)
def request_refund(
    body: models.RefundRequest,
    backend: BackendDep,
    staff: StaffSession,
    idempotency_key: IdempotencyKey,
) -> models.Refund:
    """A refund request (`pending`): paid items of a paid order (each in full), or a
    gateway trade of the order that paid nothing (a second payment, money for a closed
    order). Exactly one of `item_ids`, `trade_no`. Nothing is given back until another
    staff member approves it."""
    return money.request_refund(backend, staff, idempotency_key, body)


@router.get("/refunds", response_model=models.Refunds, responses=error_responses(*STAFF_ERRORS))
def refunds(
    backend: BackendDep, staff: StaffSession, status: models.RefundStatus | None = None
) -> models.Refunds:
    """Refunds, newest first (optionally those in one status)."""
    return money.list_refunds(backend, status)


@router.get(
    "/refunds/{refund_no}", response_model=models.Refund, responses=error_responses(*REFUND_ERRORS)
)
def refund(refund_no: str, backend: BackendDep, staff: StaffSession) -> models.Refund:
    """One refund; an unknown number is `404 REFUND_NOT_FOUND`."""
    return money.get_refund(backend, refund_no)


@router.post(
    "/refunds/{refund_no}/approve",
    response_model=models.Refund,
    responses=error_responses(*REFUND_ERRORS, errors.SameStaff, errors.RefundNotPending),
)
def approve_refund(refund_no: str, backend: BackendDep, staff: StaffSession) -> models.Refund:
    """Four eyes: another staff member than the requester (`403 SAME_STAFF`). A gateway
    payment's refund is sent under its `refund_no` (a retry never refunds twice) and
    answers `processing` or `succeeded`; a cash or POS payment's is paid out at the
    counter: `succeeded`. Only `pending` (`409 REFUND_NOT_PENDING`)."""
    return money.approve_refund(backend, staff, refund_no)


@router.post(
    "/refunds/{refund_no}/reject",
    response_model=models.Refund,
    responses=error_responses(*REFUND_ERRORS, errors.RefundNotPending),
)
def reject_refund(
    refund_no: str, body: models.RefundDecision, backend: BackendDep, staff: StaffSession
) -> models.Refund:
    """A pending refund turned down, or withdrawn by its requester (`rejected`)."""
    return money.reject_refund(backend, staff, refund_no, body.reason)


@router.post(
    "/refunds/{refund_no}/query",
    response_model=models.Refund,
    responses=error_responses(*REFUND_ERRORS),
)
def query_refund(refund_no: str, backend: BackendDep, staff: StaffSession) -> models.Refund:
    """Ask the gateway again about a `processing` refund."""
    return money.query_refund(backend, staff, refund_no)


@router.get(
    "/arrears",
    response_model=models.Arrears,
    responses={
        **error_responses(*STAFF_ERRORS),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
def arrears(
    backend: BackendDep,
    staff: StaffSession,
    tag: Filter = None,
    department: Filter = None,
    class_name: Filter = None,
    format: Literal["json", "csv"] = "json",
):
    """Students with something still due in `tag` (default: the current one), most owed
    first. `format=csv`: `text/csv; charset=utf-8` with a BOM (opens in Excel), header
    `学号,姓名,院系,班级,未缴金额`, amounts as `6500.00`; a cell starting with `=`, `+`,
    `-` or `@` gets a leading `'` so a spreadsheet never runs it."""
    found = money.arrears(backend, tag, department, class_name)
    if format == "csv":
        backend.audit(staff.username, "staff.arrears_export", found.tag, {"count": found.count})
        return Response(
            money.arrears_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="arrears.csv"'},
        )
    return found
