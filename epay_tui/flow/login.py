"""Logging in, without a screen: the login call, then who it is, as one session.

A student's and a staff member's login share it; a helpdesk only takes staff accounts,
and a remembered staff token is tried before the form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from epay_tui.api import errors
from epay_tui.flow.session import Session

if TYPE_CHECKING:
    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import LoginResult


async def log_in(
    api: ApiClient, username: str, password: str, captcha_id: str, answer: str
) -> tuple[Session, LoginResult]:
    """Log in (the client keeps the token) and read the profile the header shows."""
    result = await api.login(username, password, captcha_id, answer)
    profile = await api.me()
    return Session(profile.username, result.role, profile=profile), result


async def log_in_staff(
    api: ApiClient, username: str, password: str, captcha_id: str, answer: str
) -> Session | None:
    """As :func:`log_in`, for the helpdesk: a student account is logged out again
    (None), it cannot open the helpdesk."""
    session, result = await log_in(api, username, password, captcha_id, answer)
    if result.role != "staff":
        await api.logout()
        return None
    return session


async def resume_staff(api: ApiClient, token: str) -> Session | None:
    """A remembered staff token, if it is still a live staff session; None when it is
    stale (forget it). ``TransportError`` when the backend cannot tell (keep it)."""
    api.token = token
    try:
        profile = await api.me()
    except errors.TransportError:
        api.token = None
        raise
    except errors.ApiError:
        profile = None
    if profile is None or profile.role != "staff":
        api.token = None
        return None
    return Session(profile.username, "staff", profile=profile)
