"""The helpdesk without a screen: find a student, what they owe at a glance, and the
counter's actions. Each step is one call to the backend and raises ``ApiError``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import date

    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import (
        AuditLog,
        Fees,
        Order,
        ReconcileResult,
        StudentDetail,
        StudentList,
    )

AUDIT_ROWS = 100
"""Newest audit entries the helpdesk lists."""


@dataclass(frozen=True)
class FeesAtAGlance:
    """One line of the student page: how many fee items, how much is owed, how many
    are being paid."""

    count: int
    owed: int
    paying: int

    @classmethod
    def of(cls, fees: Fees) -> FeesAtAGlance:
        items = [item for tag in fees.tags for item in tag.items]
        return cls(
            count=len(items),
            owed=sum(item.outstanding for item in items),
            paying=sum(item.state == "in_order" for item in items),
        )


async def find_students(api: ApiClient, query: str) -> StudentList:
    """By student number or the start of a name."""
    return await api.staff_students(query.strip())


async def open_student(api: ApiClient, username: str) -> StudentDetail:
    return await api.staff_student(username)


async def reset_password(api: ApiClient, username: str) -> None:
    """Back to the initial password (the student must change it at the next login)."""
    await api.staff_reset_password(username)


async def unlock(api: ApiClient, username: str) -> None:
    await api.staff_unlock(username)


async def query_payment(api: ApiClient, order_no: str) -> Order:
    """Ask the gateway about an order: a payment it knows of is recorded now."""
    return await api.staff_query_order(order_no)


async def reconcile(api: ApiClient, day: date) -> ReconcileResult:
    return await api.staff_reconcile(day)


async def audit_log(api: ApiClient) -> AuditLog:
    return await api.staff_audit(AUDIT_ROWS)
