"""FastAPI dependencies: the backend and the caller's session, with role gates."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from epay_tui.api import errors
from epay_tui.server import accounts
from epay_tui.server.accounts import Session
from epay_tui.server.backend import Backend
from epay_tui.server.config import is_loopback


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


BackendDep = Annotated[Backend, Depends(get_backend)]


def any_session(
    backend: BackendDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Session:
    """Any logged-in user, even one who must still change the password."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        token = ""
    return accounts.session_for(backend, token.strip())


AnySession = Annotated[Session, Depends(any_session)]


def active_session(session: AnySession) -> Session:
    if session.must_change:
        raise errors.PasswordChangeRequired()
    return session


def student_session(session: Annotated[Session, Depends(active_session)]) -> Session:
    if session.role != "student":
        raise errors.ForbiddenRole()
    return session


def staff_session(session: Annotated[Session, Depends(active_session)]) -> Session:
    if session.role != "staff":
        raise errors.ForbiddenRole()
    return session


StudentSession = Annotated[Session, Depends(student_session)]
StaffSession = Annotated[Session, Depends(staff_session)]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=64)]
"""The header that makes a money-moving POST safe to repeat (orders, counter, refunds)."""


def error_responses(*classes: type[errors.ApiError]) -> dict:
    """OpenAPI ``responses=`` for the error codes a route can answer."""
    by_status: dict[int, list[str]] = {}
    for cls in (*classes, errors.ValidationFailed):
        by_status.setdefault(cls.status, []).append(cls.code)
    from epay_tui.api.models import ErrorBody

    return {
        status: {"model": ErrorBody, "description": " / ".join(sorted(set(codes)))}
        for status, codes in by_status.items()
    }


AUTH_ERRORS = (errors.Unauthenticated, errors.PasswordChangeRequired)


def loopback_only(request: Request) -> None:
    """Dev hooks and the statement answer only a peer on this machine."""
    host = request.client.host if request.client else ""
    if not is_loopback(host):
        raise errors.ForbiddenRole("This answers only on loopback")
