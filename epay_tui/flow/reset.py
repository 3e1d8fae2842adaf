"""忘记密码 without a screen: who the student is, where the code goes, the new password.

Every step raises ``ApiError``; a reset the backend has voided (``ResetExpired``) starts
again with :meth:`PasswordReset.restart`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import ResetChannel, ResetStarted

RESEND_SECONDS = 60
"""The backend sends a code at most once a minute per reset."""
Step = Literal["identity", "channels", "complete"]


class PasswordReset:
    """One 忘记密码, step by step: ``identity`` → ``channels`` → ``complete``."""

    def __init__(self, username: str = "") -> None:
        self.username = username
        self.started: ResetStarted | None = None
        self.channel: str | None = None
        self.sent_at: datetime | None = None

    @property
    def step(self) -> Step:
        if self.started is None:
            return "identity"
        return "channels" if self.sent_at is None else "complete"

    @property
    def channels(self) -> list[ResetChannel]:
        """Where a code can go; none means only the helpdesk can reset this password."""
        return self.started.channels if self.started else []

    async def start(
        self, api: ApiClient, username: str, name: str, id_card: str, captcha: tuple[str, str]
    ) -> ResetStarted:
        """Step 1: the student is who they say (number, name, ID card and a captcha)."""
        started = await api.reset_start(username, name, id_card, *captcha)
        self.username, self.started = username, started
        self.channel, self.sent_at = None, None
        return started

    async def send(self, api: ApiClient, now: datetime, channel: str | None = None) -> str:
        """Step 2 (and 重新获取): a code to where the last one went, else to ``channel``,
        else to the first; where it went (the masked number or address)."""
        choice = self.channel or channel or self.channels[0].channel
        await api.reset_send(self.started.reset_id if self.started else "", choice)  # type: ignore[arg-type]
        self.channel, self.sent_at = choice, now
        return next(c.to for c in self.channels if c.channel == choice)

    def resend_in(self, now: datetime) -> int:
        """Whole seconds until another code may be sent (0: now)."""
        if self.sent_at is None:
            return 0
        left = RESEND_SECONDS - (now - self.sent_at).total_seconds()
        return max(0, math.ceil(left))

    async def complete(self, api: ApiClient, code: str, new_password: str) -> None:
        """Step 3: the code and the new password."""
        await api.reset_complete(self.started.reset_id if self.started else "", code, new_password)

    def restart(self) -> None:
        """The backend voided the reset (expired, too many wrong codes): step 1 again."""
        self.started, self.channel, self.sent_at = None, None, None
