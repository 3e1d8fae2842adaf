"""Login, password change, logout and the three-step password reset."""

from __future__ import annotations

from fastapi import APIRouter, Response

from epay_tui.api import errors, models
from epay_tui.server import accounts
from epay_tui.server.deps import AUTH_ERRORS, AnySession, BackendDep, error_responses

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post(
    "/auth/login",
    response_model=models.LoginResult,
    responses=error_responses(errors.CaptchaInvalid, errors.BadCredentials, errors.AccountLocked),
)
def login(body: models.LoginRequest, backend: BackendDep) -> models.LoginResult:
    """Unknown usernames answer exactly like wrong passwords and lock the same way."""
    return accounts.login(backend, body)


@router.post(
    "/auth/password",
    status_code=204,
    responses=error_responses(
        errors.Unauthenticated, errors.BadCredentials, errors.AccountLocked, errors.WeakPassword
    ),
)
def change_password(
    body: models.PasswordChange, backend: BackendDep, session: AnySession
) -> Response:
    """Sets a new password; every failed policy rule is listed; other sessions end."""
    accounts.change_password(backend, session, body)
    return Response(status_code=204)


@router.post("/auth/logout", status_code=204, responses=error_responses(*AUTH_ERRORS))
def logout(backend: BackendDep, session: AnySession) -> Response:
    accounts.logout(backend, session)
    return Response(status_code=204)


@router.post(
    "/password-reset/start",
    response_model=models.ResetStarted,
    responses=error_responses(
        errors.CaptchaInvalid, errors.ResetIdentityMismatch, errors.RateLimited
    ),
)
def reset_start(body: models.ResetStart, backend: BackendDep) -> models.ResetStarted:
    """Checks identity; lists only the channels with a valid contact (masked)."""
    return accounts.reset_start(backend, body)


@router.post(
    "/password-reset/send",
    status_code=204,
    responses=error_responses(errors.ResetExpired, errors.RateLimited),
)
def reset_send(body: models.ResetSend, backend: BackendDep) -> Response:
    """Sends a 6-digit code valid 10 minutes; once per 60 s per reset."""
    accounts.reset_send(backend, body)
    return Response(status_code=204)


@router.post(
    "/password-reset/complete",
    status_code=204,
    responses=error_responses(errors.ResetExpired, errors.ResetCodeInvalid, errors.WeakPassword),
)
def reset_complete(body: models.ResetComplete, backend: BackendDep) -> Response:
    """New password set, lock cleared, every session of the user ended."""
    accounts.reset_complete(backend, body)
    return Response(status_code=204)
