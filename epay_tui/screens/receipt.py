"""电子票据: a paid order's receipt, with 补发票据 and (with a printer) 打印缴费凭证.

A student opens it from 我的订单; the helpdesk pushes it by name with ``staff=True``
(after a counter payment, or 补发票据/打印 on a student's paid order).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.widget import Widget

from epay_tui.screens.base import BACK
from epay_tui.screens.receipt_keys import PRINT, RESEND, ReceiptKeys
from epay_tui.widgets.receipt import ReceiptView

if TYPE_CHECKING:
    from epay_tui.api.models import Receipt


class ReceiptScreen(ReceiptKeys):
    TITLE_KEY = "receipt.title"
    HELP = "help.receipt"
    BINDINGS = [RESEND, PRINT, BACK]

    def __init__(self, order_no: str, staff: bool = False) -> None:
        super().__init__()
        self.order_no = order_no
        self.staff = staff

    def compose_body(self) -> Iterable[Widget]:
        yield ReceiptView(id="receipt-view")

    def on_mount(self) -> None:
        self.say("receipt.loading")
        self.open_receipt(self.order_no, staff=self.staff)

    def receipt_loaded(self, receipt: Receipt) -> None:
        if self.message.key == "receipt.loading":
            self.message.clear()
        self.query_one(ReceiptView).show_receipt(receipt)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = self.receipt_key(action)
        return True if allowed is None else allowed

    def action_back(self) -> None:
        self.dismiss()
