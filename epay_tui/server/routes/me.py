"""The caller's profile and fees."""

from __future__ import annotations

from fastapi import APIRouter

from epay_tui.api import errors, models
from epay_tui.server import accounts, payments
from epay_tui.server.deps import (
    AUTH_ERRORS,
    AnySession,
    BackendDep,
    StudentSession,
    error_responses,
)

router = APIRouter(prefix="/api/v1", tags=["profile"])


@router.get("/me", response_model=models.Profile, responses=error_responses(*AUTH_ERRORS))
def me(backend: BackendDep, session: AnySession) -> models.Profile:
    return accounts.profile(backend, session.username)


@router.patch(
    "/me",
    response_model=models.Profile,
    responses=error_responses(*AUTH_ERRORS, errors.BadCredentials, errors.AccountLocked),
)
def update_me(
    body: models.ProfileUpdate, backend: BackendDep, session: StudentSession
) -> models.Profile:
    """Phone and e-mail change only with the current password."""
    return accounts.update_profile(backend, session, body)


@router.get(
    "/fees",
    response_model=models.Fees,
    responses=error_responses(*AUTH_ERRORS, errors.ForbiddenRole),
)
def fees(backend: BackendDep, session: StudentSession) -> models.Fees:
    """Fee items per tag, current tag first."""
    return payments.fees(backend, session.username)
