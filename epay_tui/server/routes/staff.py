"""Helpdesk calls (role ``staff``; students get 403 FORBIDDEN)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from epay_tui.api import errors, models
from epay_tui.server import accounts, payments, reconcile
from epay_tui.server.deps import AUTH_ERRORS, BackendDep, StaffSession, error_responses
from epay_tui.server.store import accounts as db

router = APIRouter(prefix="/api/v1/staff", tags=["staff"])
STAFF_ERRORS = (*AUTH_ERRORS, errors.ForbiddenRole)


@router.get(
    "/students", response_model=models.StudentList, responses=error_responses(*STAFF_ERRORS)
)
def students(
    backend: BackendDep,
    staff: StaffSession,
    q: Annotated[str, Query(max_length=64)] = "",
) -> models.StudentList:
    """Students whose number or name starts with ``q``."""
    return accounts.search_students(backend, q)


@router.get(
    "/students/{username}",
    response_model=models.StudentDetail,
    responses=error_responses(*STAFF_ERRORS, errors.StudentNotFound),
)
def student(username: str, backend: BackendDep, staff: StaffSession) -> models.StudentDetail:
    profile = accounts.profile(backend, username)
    if profile.role != "student":
        raise errors.StudentNotFound()
    fees = payments.fees(backend, username)
    with backend.store.read() as tx:
        orders = payments.orders_of(backend, tx, username)
    return models.StudentDetail(profile=profile, fees=fees, orders=orders)


@router.post(
    "/students/{username}/reset-password",
    status_code=204,
    responses=error_responses(*STAFF_ERRORS, errors.StudentNotFound),
)
def reset_password(username: str, backend: BackendDep, staff: StaffSession) -> Response:
    """Back to the initial password, to be changed at the next login."""
    accounts.staff_reset_password(backend, staff, username)
    return Response(status_code=204)


@router.post(
    "/students/{username}/unlock",
    status_code=204,
    responses=error_responses(*STAFF_ERRORS, errors.StudentNotFound),
)
def unlock(username: str, backend: BackendDep, staff: StaffSession) -> Response:
    accounts.staff_unlock(backend, staff, username)
    return Response(status_code=204)


@router.get(
    "/orders/{order_no}/receipt",
    response_model=models.Receipt,
    responses=error_responses(*STAFF_ERRORS, errors.OrderNotFound, errors.OrderNotPaid),
)
def order_receipt(order_no: str, backend: BackendDep, staff: StaffSession) -> models.Receipt:
    """Any student's paid order's receipt, as the student sees it."""
    return payments.receipt(backend, order_no, None)


@router.post(
    "/orders/{order_no}/query",
    response_model=models.Order,
    responses=error_responses(*STAFF_ERRORS, errors.OrderNotFound),
)
def query_order(order_no: str, backend: BackendDep, staff: StaffSession) -> models.Order:
    """A gateway query on the student's behalf."""
    order = payments.query(backend, order_no, None)
    backend.audit(staff.username, "staff.query", order_no, {"status": order.status})
    return order


@router.post(
    "/reconcile", response_model=models.ReconcileResult, responses=error_responses(*STAFF_ERRORS)
)
def run_reconcile(
    body: models.ReconcileRequest, backend: BackendDep, staff: StaffSession
) -> models.ReconcileResult:
    """The gateway's statement of the day against the orders."""
    return reconcile.reconcile(backend, body.date, staff.username)


@router.get("/audit", response_model=models.AuditLog, responses=error_responses(*STAFF_ERRORS))
def audit(
    backend: BackendDep,
    staff: StaffSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> models.AuditLog:
    """Newest first."""
    with backend.store.read() as tx:
        rows = db.recent_audit(tx, limit)
    return models.AuditLog(
        entries=[
            models.AuditEntry(
                at=backend.time.at(r["at"]),
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                detail=r["detail"],
            )
            for r in rows
        ]
    )
