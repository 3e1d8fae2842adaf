"""What a screen showing a paid order's receipt shares (电子票据 and 支付成功): loading it,
``r`` 补发票据 and, where a printer is configured, ``p`` 打印缴费凭证. Not a screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from epay_tui.flow.receipts import ReceiptDesk
from epay_tui.screens.base import EpayScreen
from epay_tui.widgets.chrome import bar_key

if TYPE_CHECKING:
    from epay_tui.api.errors import ApiError
    from epay_tui.api.models import Receipt

RESEND = bar_key("r", "resend_receipt", "resend_receipt", "R")
PRINT = bar_key("p", "print_receipt", "print_receipt", "P")
"""Each screen lists these in its ``BINDINGS`` where its key bar should show them."""


class ReceiptKeys(EpayScreen):
    """A screen with a receipt: call :meth:`open_receipt`, get :meth:`receipt_loaded`."""

    desk: ReceiptDesk | None = None
    printing = False
    """A slip is on its way to the printer: another ``p`` waits for it."""

    def open_receipt(self, order_no: str, *, staff: bool = False) -> None:
        """Fetch the order's receipt (again by itself while the backend is away)."""
        self.desk = ReceiptDesk(order_no, staff=staff, printer=self.epay.settings.printer)
        self.refresh_bindings()
        self.reload_receipt()

    def reload_receipt(self) -> None:
        desk = self.desk
        if desk is None:
            return
        meta = self.epay.meta
        school = meta.school if meta is not None else None
        self.load(lambda api: desk.load(api, school), self.receipt_loaded, group="receipt")

    def receipt_loaded(self, receipt: Receipt) -> None:
        """The receipt arrived: show it."""

    def receipt_key(self, action: str) -> bool | None:
        """``check_action`` for the two keys (None: not one of them). Without a printer
        there is no print key at all."""
        if action == "resend_receipt":
            return self.desk is not None
        if action == "print_receipt":
            return self.desk is not None and self.desk.can_print
        return None

    def action_resend_receipt(self) -> None:
        desk = self.desk
        if desk is None:
            return
        self.say("receipt.resending")
        self.call_api(
            desk.resend,
            lambda _: self.say("receipt.resent", severity="ok"),
            group="resend",
            failed=self._resend_refused,
        )

    def _resend_refused(self, exc: ApiError) -> bool:
        """Contacts that are not valid now: say where to fix them, in this screen's words
        (the catalog's own sentence is about paying)."""
        if exc.code != "PROFILE_INCOMPLETE":
            return False
        staff = self.desk is not None and self.desk.staff
        key = "receipt.contacts_invalid_staff" if staff else "receipt.contacts_invalid"
        self.say(key, severity="error")
        return True

    def action_print_receipt(self) -> None:
        desk = self.desk
        if desk is None or not desk.can_print or self.printing:
            return
        if desk.receipt is None:  # still loading: the slip needs it
            self.say("receipt.not_loaded", severity="error")
            return
        self.printing = True
        self.say("receipt.printing")
        self.run_worker(self._print(desk), group="print", exit_on_error=False)

    async def _print(self, desk: ReceiptDesk) -> None:
        try:
            printed = await desk.print()
        finally:
            self.printing = False
        if printed.ok:
            self.say("receipt.printed", severity="ok")
        elif printed.reason:
            self.say("receipt.print_failed", severity="error", reason=printed.reason)
        else:
            self.say("receipt.print_failed_plain", severity="error")
