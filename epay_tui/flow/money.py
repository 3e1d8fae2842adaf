"""The counter's money without a screen: 现场缴费, 退费 (request, four eyes, query), 日结,
差异 and 欠费 with its CSV export. Each call raises ``ApiError``; the export's own failure
is :class:`ExportFailed`. No Textual."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from epay_tui.api import rules
from epay_tui.api.client import new_idempotency_key
from epay_tui.files import write_private

if TYPE_CHECKING:
    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import (
        Arrears,
        CashierReport,
        CounterMethod,
        DiscrepancyEntry,
        FeeItem,
        Fees,
        Order,
        Receipt,
        Refund,
    )

# ---------------------------------------------------------------------------- 现场缴费
def unpaid_items(fees: Fees) -> list[tuple[str, FeeItem]]:
    """``(tag, item)`` of every item the counter can take money for, tag by tag."""
    return [(tag.tag, item) for tag in fees.tags for item in tag.items if rules.payable(item)]


def reference_problem(method: CounterMethod, reference: str) -> str | None:
    """Why a slip number cannot go with ``method`` (a catalog key), or None."""
    if method != "pos":
        return None
    if not reference:
        return "counter.need_reference"
    if len(reference) > rules.REFERENCE_MAX or not rules.is_note(reference):
        return "counter.bad_reference"
    return None


class CounterPayment:
    """One 现场缴费 confirmation: what is paid, how, and its Idempotency-Key. The key is
    kept while the items, method and slip number stay the same, so pressing 确定 again
    (or again after 网络繁忙) leads to the same one payment."""

    def __init__(self, username: str) -> None:
        self.username = username
        self._asked: tuple[tuple[str, ...], str, str] | None = None
        self.idempotency_key = new_idempotency_key()
        self.order: Order | None = None

    def key_for(self, item_ids: Iterable[str], method: CounterMethod, reference: str) -> str:
        asked = (tuple(sorted(item_ids)), method, reference)
        if asked != self._asked:
            self._asked, self.idempotency_key = asked, new_idempotency_key()
        return self.idempotency_key

    async def pay(
        self, api: ApiClient, items: Sequence[FeeItem], method: CounterMethod, reference: str
    ) -> Order:
        ids = [item.id for item in items]
        key = self.key_for(ids, method, reference)
        self.order = await api.staff_counter_payment(
            self.username, ids, method, reference or None, key
        )
        return self.order


# ---------------------------------------------------------------------------- 退费
@dataclass(frozen=True)
class RefundSource:
    """What a 退费申请 can give back of one paid order: its receipt (items with what each
    already returned) and the open discrepancies' trades of that order."""

    receipt: Receipt
    trades: list[DiscrepancyEntry]

    def refundable(self, item_id: str) -> bool:
        return any(i.id == item_id and i.refunded < i.amount for i in self.receipt.items)


async def refund_source(api: ApiClient, order_no: str) -> RefundSource:
    receipt = await api.staff_receipt(order_no)
    found = await api.staff_discrepancies(open_only=True)
    return RefundSource(receipt, [d for d in found.discrepancies if d.order_no == order_no])


class RefundApplication:
    """One 退费申请 confirmation and its Idempotency-Key (kept while the request is the
    same, so a second 确定 makes one refund)."""

    def __init__(self, order_no: str) -> None:
        self.order_no = order_no
        self._asked: tuple[object, ...] | None = None
        self.idempotency_key = new_idempotency_key()

    async def request(
        self, api: ApiClient, reason: str, item_ids: Sequence[str] = (), trade_no: str | None = None
    ) -> Refund:
        asked = (tuple(sorted(item_ids)), trade_no, reason)
        if asked != self._asked:
            self._asked, self.idempotency_key = asked, new_idempotency_key()
        return await api.staff_request_refund(
            self.order_no,
            reason,
            self.idempotency_key,
            item_ids=None if trade_no else list(item_ids),
            trade_no=trade_no,
        )


def reason_problem(reason: str) -> str | None:
    """Why a 原因 cannot be sent (a catalog key), or None."""
    if not reason.strip():
        return "refund.need_reason"
    if len(reason) > rules.REASON_MAX or not rules.is_note(reason):
        return "refund.bad_reason"
    return None


async def refunds_to_decide(api: ApiClient) -> list[Refund]:
    """Pending refunds, then those the gateway is still processing (to query), newest first."""
    pending = await api.staff_refunds("pending")
    processing = await api.staff_refunds("processing")
    return [*pending.refunds, *processing.refunds]


async def approve(api: ApiClient, refund_no: str) -> Refund:
    return await api.staff_approve_refund(refund_no)


async def reject(api: ApiClient, refund_no: str, reason: str) -> Refund:
    return await api.staff_reject_refund(refund_no, reason.strip())


async def query_refund(api: ApiClient, refund_no: str) -> Refund:
    return await api.staff_query_refund(refund_no)


def own_request(refund: Refund, staff_username: str | None) -> bool:
    """Four eyes: the requester never approves their own refund."""
    return staff_username is not None and refund.requested_by == staff_username


# ---------------------------------------------------------------------------- 日结 and 差异
async def cashier_day(api: ApiClient) -> CashierReport:
    """Today's counter payments of the logged-in staff member (the backend's day)."""
    return await api.staff_cashier_report()


async def open_discrepancies(api: ApiClient) -> list[DiscrepancyEntry]:
    return (await api.staff_discrepancies(open_only=True)).discrepancies


# ---------------------------------------------------------------------------- 欠费
@dataclass(frozen=True)
class ArrearsFilter:
    department: str = ""
    class_name: str = ""

    def params(self) -> dict[str, str | None]:
        return {
            "department": self.department.strip() or None,
            "class_name": self.class_name.strip() or None,
        }


async def arrears(api: ApiClient, where: ArrearsFilter) -> Arrears:
    return await api.staff_arrears(**where.params())


def export_name(tag: str, day: date) -> str:
    """``欠费-2026-2027学年-2026-11-26.csv``: no character a file system refuses."""
    safe = "".join("-" if c in '/\\:*?"<>|' or ord(c) < 32 else c for c in tag).strip()
    return f"欠费-{safe or 'all'}-{day.isoformat()}.csv"


def default_export_path(tag: str, day: date) -> Path:
    """In the user's documents folder."""
    from platformdirs import user_documents_dir

    return Path(user_documents_dir()) / export_name(tag, day)


class ExportFailed(Exception):
    """The CSV could not be written; ``key`` is the catalog's sentence for why."""

    def __init__(self, key: str, path: str) -> None:
        super().__init__(key)
        self.key, self.path = key, path


def _why(exc: OSError) -> str:
    if isinstance(exc, IsADirectoryError):
        return "arrears.export_is_folder"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "arrears.export_denied"
    if exc.errno == errno.ENOSPC:
        return "arrears.export_full"
    if isinstance(exc, NotADirectoryError | FileNotFoundError):
        return "arrears.export_no_folder"
    return "arrears.export_failed"


def write_export(path_text: str, data: bytes) -> Path:
    """Write the CSV to the path typed (``~`` expanded), readable by its owner only."""
    text = path_text.strip()
    if not text:
        raise ExportFailed("arrears.export_no_path", path_text)
    path = Path(text).expanduser()
    if path.is_dir():
        raise ExportFailed("arrears.export_is_folder", str(path))
    try:
        write_private(path, data)
    except OSError as exc:
        raise ExportFailed(_why(exc), str(path)) from exc
    return path


async def export_arrears(api: ApiClient, where: ArrearsFilter, path_text: str) -> tuple[Path, int]:
    """The CSV of these arrears, fetched now and written to ``path_text``: the path and
    its size in bytes. Nothing is written when the fetch fails."""
    data = await api.staff_arrears_csv(**where.params())
    path = await asyncio.to_thread(write_export, path_text, data)  # not on the UI's loop
    return path, len(data)
