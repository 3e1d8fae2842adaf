"""A paid order's receipt (电子票据), without a screen: load it, resend it, print it.

The student reads their own receipts; a staff member (``staff=True``) any student's,
through the staff calls. Loading and resending raise ``ApiError`` like every other
step. Printing exists only when a printer is configured; it is blocking I/O, so it runs
in a thread, and a printer that fails is an answer (:class:`Printed` with its reason),
never an exception: the receipt stays loaded and can be printed or resent again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from epay_tui.printing import PrintFailed, parse_target, print_receipt

if TYPE_CHECKING:
    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import Receipt
    from epay_tui.printing import PrinterTarget

log = logging.getLogger("epay_tui.flow.receipts")


@dataclass(frozen=True)
class Printed:
    """How a print went: ``ok``, or the printer's ``reason`` (may be empty) for 打印失败."""

    ok: bool
    reason: str = ""


class ReceiptDesk:
    """One order's receipt as a screen shows it: the last one loaded, the printer (if
    any) and the school named at the top of the slip."""

    def __init__(self, order_no: str, *, staff: bool = False, printer: str | None = None) -> None:
        self.order_no = order_no
        self.staff = staff
        self.target: PrinterTarget | None = parse_target(printer) if printer else None
        self.receipt: Receipt | None = None
        self.school = ""

    @property
    def can_print(self) -> bool:
        """A printer is configured (no printer: no print key at all)."""
        return self.target is not None

    async def load(self, api: ApiClient, school: str | None = None) -> Receipt:
        """The receipt as the backend has it now (refunds included); the school's name
        from ``/meta`` unless the caller knows it already."""
        fetch = api.staff_receipt if self.staff else api.receipt
        receipt = await fetch(self.order_no)
        if school is None and not self.school:
            school = (await api.meta()).school
        if school is not None:
            self.school = school
        self.receipt = receipt
        return receipt

    async def resend(self, api: ApiClient) -> None:
        """补发票据: one SMS and one e-mail to the contacts on file now. The 4th within a
        day is ``RateLimited`` (``details.retry_after``)."""
        if self.staff:
            await api.staff_resend_receipt(self.order_no)
        else:
            await api.resend_receipt(self.order_no)

    async def print(self) -> Printed:
        """打印缴费凭证 of the loaded receipt, off the event loop. Nothing is lost when it
        fails: the receipt stays, and the same call prints it again."""
        if self.target is None or self.receipt is None:
            return Printed(False)
        try:
            await asyncio.to_thread(print_receipt, self.target, self.receipt, self.school)
        except PrintFailed as exc:
            log.warning("printing receipt %s failed: %s", self.receipt.receipt_no, exc.reason)
            return Printed(False, exc.reason)
        except Exception:  # a driver's surprise: still 打印失败, never a traceback
            log.exception("printing receipt %s failed", self.receipt.receipt_no)
            return Printed(False)
        log.info("printed receipt %s on %s", self.receipt.receipt_no, self.target)
        return Printed(True)
