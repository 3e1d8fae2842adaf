"""Who is logged in, what 全选 left for the next order, and the backend's clock.

Kept by the app for the screens; built at login, dropped whole at logout. No Textual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from epay_tui.api import rules
from epay_tui.api.clock import Clock

if TYPE_CHECKING:
    from epay_tui.api.models import FeeItem, Meta, Profile

CLOCK_SKEW_TOLERANCE = timedelta(seconds=5)
"""A gap between this machine's clock and the backend's up to this is latency, not skew."""


@dataclass
class Session:
    """A logged-in student or staff member."""

    username: str
    role: str
    profile: Profile | None = None
    next_group: list[str] = field(default_factory=list)
    """Item ids 全选 left for the next order (the other receipt type)."""
    continue_group: list[str] = field(default_factory=list)
    """``next_group`` once the first order is paid: 自助缴费 checks these next."""
    looked_for_open_orders: bool = False

    def leave_for_later(self, items: Iterable[FeeItem]) -> None:
        """全选 on a mix checked one receipt type; the rest is paid next."""
        self.next_group = [item.id for item in items]

    def order_paid(self) -> None:
        """The first group is paid: the one left for later is what comes next."""
        if self.next_group:
            self.continue_group, self.next_group = self.next_group, []

    def take_next(self, items: Mapping[str, FeeItem]) -> list[FeeItem]:
        """Once, after the first group was paid: the rest that can still be paid."""
        group = [items[i] for i in self.continue_group if i in items and rules.payable(items[i])]
        self.continue_group = []
        return group


class ServerClock:
    """The backend's time: this machine's clock, corrected by ``/meta``'s ``server_time``
    when the two are more than 5 s apart (a kiosk set to the wrong time still counts an
    order down rightly)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.meta: Meta | None = None
        self.offset = timedelta(0)
        """How far the backend's clock is ahead of this machine's (0 within 5 s)."""

    def saw(self, meta: Meta) -> None:
        self.meta = meta
        skew = meta.server_time - self.clock.now()
        self.offset = skew if abs(skew) > CLOCK_SKEW_TOLERANCE else timedelta(0)

    def now(self) -> datetime:
        return self.clock.now() + self.offset
