"""扫码支付: the QR, a countdown, and the order followed by long poll to its outcome.

Paid → 支付成功 with order, receipt and transaction numbers; closed → 订单已关闭;
我已支付 asks the backend (which asks the gateway) and, when the money has not
arrived, says in the college's words not to pay again — and never shows a new QR.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget

from epay_tui.api import errors, rules
from epay_tui.api.models import CHANNELS, Order, PayQr, Receipt
from epay_tui.flow import paying
from epay_tui.i18n import tr
from epay_tui.screens.base import BACK
from epay_tui.screens.dialog import Choice
from epay_tui.screens.receipt_keys import PRINT, RESEND, ReceiptKeys
from epay_tui.widgets.chrome import AppHeader, KeyBar, bar_key
from epay_tui.widgets.qr import QrCode
from epay_tui.widgets.receipt import ReceiptView
from epay_tui.widgets.texts import Tr, TrButton

FOLLOW_RETRY_SECONDS = 2
"""Pause before polling again when the backend did not answer (网络繁忙 is shown)."""
INFO_ROOM = (39, 2)
"""Cells 扫码支付 needs beside the code (the info column) and above/below it."""


class PayScreen(ReceiptKeys):
    HELP = "help.pay"
    BINDINGS = [
        bar_key("y", "claim", "claim", "Y"),
        bar_key("c", "change_channel", "change_channel", "C"),
        bar_key("x", "cancel_order", "cancel_order", "X"),
        BACK,
        bar_key("enter,escape", "done", "done", "Enter"),
        RESEND,
        PRINT,
    ]

    def __init__(self, order: Order, qr: PayQr | None = None) -> None:
        super().__init__()
        self.order = order
        self.qr_url = qr.qr_url if qr else (order.payment.qr_url if order.payment else None)
        self.channel = qr.channel if qr else (order.payment.channel if order.payment else None)

    def compose(self) -> ComposeResult:
        yield AppHeader()
        with Horizontal(id="pay"):
            yield QrCode(self.qr_url or "", around=INFO_ROOM, id="qr")
            with Vertical(id="pay-info"):
                yield from self.compose_info()
        yield KeyBar()

    def compose_info(self) -> Iterable[Widget]:
        yield Tr("pay.title", id="pay-title", classes="screen-title")
        yield Tr(id="pay-channel")
        yield Tr("pay.amount", id="pay-amount", amount=rules.format_fen(self.order.total))
        yield Tr("pay.payee", id="pay-payee", payee=self.order.payee)
        yield Tr("pay.order_no", id="pay-order", order_no=self.order.order_no)
        yield Tr(id="countdown")
        yield Tr(id="outcome")
        yield ReceiptView(brief=True, id="pay-receipt")
        yield Tr(id="message")
        with Vertical(id="pay-buttons"):
            for button_id, key in (
                ("claim", "pay.claim_button"),
                ("change", "pay.change_button"),
                ("cancel", "pay.cancel_button"),
            ):
                button = TrButton(key, id=button_id)
                button.can_focus = False  # keys y/c/x: a stray enter must ask nothing
                yield button
            yield TrButton("key.back", id="back-button", variant="primary")

    def on_mount(self) -> None:
        self._show()
        self.set_interval(1, self._tick)
        self.run_worker(self._follow(), group="follow", exclusive=True, exit_on_error=False)

    # ----------------------------------------------------------------- showing
    def _show(self) -> None:
        order = self.order
        open_ = order.status == "open"
        qr = self.query_one(QrCode)
        qr.display = open_ and bool(self.qr_url)
        for button in ("#claim", "#change", "#cancel"):
            self.query_one(button).display = open_
        self.query_one("#back-button").display = not open_
        if self.channel:
            self.query_one("#pay-channel", Tr).show(
                "pay.channel" if open_ else "pay.channel_used",
                channel=lambda lang: tr(lang, f"channel.{self.channel}"),
            )
        outcome = self.query_one("#outcome", Tr)
        title = self.query_one("#pay-title", Tr)
        if order.status == "paid":
            title.show("pay.success_title")
            self._show_success()
            self.query_one("#back-button").focus()
            if self.desk is None:  # 支付成功: its receipt, with 补发票据 and 打印缴费凭证
                self.open_receipt(order.order_no)
        elif order.status == "closed":
            title.show("pay.closed_title")
            outcome.show("pay.closed", severity="error")
            self.query_one("#back-button").focus()
        elif order.status == "awaiting_confirmation":
            title.show("pay.waiting_title")
            outcome.show("pay.do_not_pay_again", severity="error")
            self.query_one("#back-button").focus()
        else:
            title.show("pay.title")
            outcome.clear()
        self._tick()
        self.refresh_bindings()  # Y C X Esc while open, Enter after

    def _show_success(self) -> None:
        """票据号 (with its 校验码 once the receipt is here), 交易号, 支付时间."""
        order, receipt = self.order, self.desk.receipt if self.desk else None
        self.query_one("#outcome", Tr).show(
            "pay.success_receipt" if receipt else "pay.success",
            severity="ok",
            receipt_no=order.receipt_no or "",
            check_code=receipt.check_code if receipt else "",
            transaction_id=order.transaction_id or "",
            paid_at=self._local(order.paid_at),
        )

    def receipt_loaded(self, receipt: Receipt) -> None:
        self._show_success()
        self.query_one(ReceiptView).show_receipt(receipt)

    def _local(self, when: datetime | None) -> str:
        return when.strftime("%Y-%m-%d %H:%M:%S") if when else ""

    def _tick(self) -> None:
        countdown = self.query_one("#countdown", Tr)
        if self.order.status != "open":
            countdown.clear()
            return
        left = int((self.order.expires_at - self.epay.server_now()).total_seconds())
        if left <= 0:
            countdown.show("pay.expiring")
        else:
            countdown.show("pay.countdown", minutes=left // 60, seconds=f"{left % 60:02d}")

    # ----------------------------------------------------------------- following
    async def _follow(self) -> None:
        """Long-poll the order until it is finished; errors wait and try again."""
        api = await self.epay.api_client()
        failure = ""  # the message key this loop showed for a failed poll
        while self.order.status in paying.UNFINISHED:
            try:  # after a failure, first a plain look
                order = await paying.next_state(api, self.order, look_only=bool(failure))
            except errors.Unauthenticated:
                await self.epay.end_session("error.UNAUTHENTICATED", "error")
                return
            except errors.TransportError:  # it tries again by itself: nothing to do
                failure = "pay.retrying"
                if self.message.key in ("", failure):  # an action's own words stay
                    self.say(failure, severity="error")
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)
                continue
            except errors.ApiError as exc:
                self.show_error(exc)
                failure = self.message.key
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)
                continue
            if failure and self.message.key == failure:  # answering again: the line goes
                self.message.clear()
            failure = ""
            if paying.changed(self.order, order):
                self._update(order)

    def _update(self, order: Order) -> None:
        self.order = order
        if order.payment is not None:
            self.qr_url, self.channel = order.payment.qr_url, order.payment.channel
            self.query_one(QrCode).set_data(self.qr_url)
        if order.status == "paid":
            self.epay.order_paid()
        self.message.clear()
        self._show()

    # ----------------------------------------------------------------- actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """An open order: Y C X and Esc; any other: Enter (or Esc) leaves. A hidden key
        is not drawn in the key bar either."""
        if action in ("claim", "change_channel", "cancel_order", "back"):
            return self.order.status == "open"
        if action == "done":
            return self.order.status != "open"
        allowed = self.receipt_key(action)
        return True if allowed is None else allowed

    @on(TrButton.Pressed, "#claim")
    def action_claim(self) -> None:
        self.app.push_screen(
            Choice("pay.claim_question", [("yes", "pay.claim_confirm"), ("no", "fees.cancel")]),
            lambda answer: self._claim() if answer == "yes" else None,
        )

    def _claim(self) -> None:
        number = self.order.order_no
        self.call_api(
            lambda api: paying.claim_paid(api, number),
            self._update,
            failed=self._refused,
            group="claim",
        )

    @on(TrButton.Pressed, "#change")
    def action_change_channel(self) -> None:
        buttons = [(c, f"channel.numbered.{c}") for c in CHANNELS]
        keys = {str(n): c for n, c in enumerate(CHANNELS, start=1)}
        choice = Choice("pay.choose_channel", buttons, keys=keys, focus=self.channel)
        self.app.push_screen(choice, self._switch)

    def _switch(self, channel: str | None) -> None:
        if channel is None or channel == self.channel:
            return
        number = self.order.order_no

        def switched(result) -> None:
            qr, order = result
            self.qr_url, self.channel = qr.qr_url, qr.channel
            self.query_one(QrCode).set_data(qr.qr_url)
            self._update(order)

        self.call_api(
            lambda api: paying.switch_channel(api, number, channel),
            switched,
            failed=self._refused,
            group="switch",
        )

    @on(TrButton.Pressed, "#cancel")
    def action_cancel_order(self) -> None:
        self.app.push_screen(
            Choice("pay.cancel_question", [("yes", "pay.cancel_confirm"), ("no", "fees.cancel")]),
            lambda answer: self._cancel() if answer == "yes" else None,
        )

    def _cancel(self) -> None:
        number = self.order.order_no
        self.call_api(
            lambda api: paying.cancel(api, number),
            self._update,
            failed=self._refused,
            group="cancel",
        )

    def _refused(self, exc: errors.ApiError) -> bool:
        """Paid meanwhile → show it; a payment in progress is explained, not cancelled.

        No answer (网络繁忙): the backend may still have done it, so look again, and
        show what changed instead of the busy line.
        """
        if isinstance(exc, errors.OrderAlreadyPaid | errors.OrderNotOpen):
            self._refresh()
            return True
        if isinstance(exc, errors.TransportError):
            self._refresh(busy_if_unchanged=True)
            return True
        if isinstance(exc, errors.PaymentInProgress):
            self.say("pay.in_progress", severity="error")
            return True
        return False

    def _refresh(self, *, busy_if_unchanged: bool = False) -> None:
        """Look at the order again; with ``busy_if_unchanged``, an action went unanswered:
        show what changed, else 网络繁忙 while the order is still open (a finished order's
        outcome line already says what happened)."""
        number = self.order.order_no

        def seen(order: Order) -> None:
            if paying.changed(self.order, order) or not busy_if_unchanged:
                self._update(order)
            elif order.status == "open":
                self.say("app.busy", severity="error")

        self.call_api(lambda api: api.get_order(number), seen, group="refresh")

    @on(TrButton.Pressed, "#back-button")
    def action_done(self) -> None:
        self.dismiss()

    def action_back(self) -> None:
        self.dismiss()
