"""确认订单: the items, 合计, 票据类型, 收款方, a channel, and 提交支付 (one key per screen)."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import RadioButton, RadioSet, Static

from epay_tui.api import errors, rules
from epay_tui.api.models import CHANNELS, FeeItem, Order, PayQr
from epay_tui.flow.paying import Checkout
from epay_tui.i18n import tr
from epay_tui.screens.base import BACK, EpayScreen
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.texts import Tr, TrButton


class ConfirmOrderScreen(EpayScreen):
    """Submitting twice makes one order: the Idempotency-Key is made once, here."""

    TITLE_KEY = "confirm.title"
    HELP = "help.confirm"
    BINDINGS = [
        *(
            bar_key(str(n), f"channel('{c}')", "channel", "1/2/3")
            for n, c in enumerate(CHANNELS, start=1)
        ),
        bar_key("enter", "submit", "submit_payment", "Enter", priority=True),
        BACK,
    ]

    def __init__(self, items: list[FeeItem]) -> None:
        super().__init__()
        self.checkout = Checkout(items)
        self.submitting = False

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="order-items"):
            for item in self.checkout.items:
                with Horizontal(classes="row"):
                    yield Static(item.name, classes="item-name", markup=False)
                    yield Static(rules.format_fen(item.outstanding), classes="amount")
        with Vertical(classes="form"):
            yield Tr("confirm.total", id="total", total=rules.format_fen(self.checkout.total))
            yield Tr(
                "confirm.receipt_type",
                id="receipt",
                receipt=lambda lang: tr(lang, f"fees.receipt.{self.checkout.receipt_type}"),
            )
            payee = self.epay.meta.payee if self.epay.meta else ""
            yield Tr("confirm.payee", id="payee", payee=payee)
            yield RadioSet(
                *(
                    RadioButton(self._channel_label(c), value=(c == "wechat"), name=c)
                    for c in CHANNELS
                ),
                id="channel",
            )
            with Horizontal(classes="buttons"):
                yield TrButton("confirm.submit", id="submit-button", variant="primary")

    def _channel_label(self, channel: str) -> str:
        number = CHANNELS.index(channel) + 1
        return f"{number} {tr(self.app.language, f'channel.{channel}')}"

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def retranslate(self) -> None:
        for button in self.query(RadioButton):
            button.label = self._channel_label(button.name or "wechat")

    @property
    def channel(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return pressed.name if pressed and pressed.name else "wechat"

    def action_channel(self, channel: str) -> None:
        for button in self.query(RadioButton):
            if button.name == channel:
                button.value = True

    @on(TrButton.Pressed, "#submit-button")
    def action_submit(self) -> None:
        """提交支付: create (or find again) the order, then ask for the QR."""
        if self.submitting:
            return
        self.submitting = True
        channel = self.channel
        self.call_api(
            lambda api: self.checkout.submit(api, channel),
            self._to_pay,
            failed=self._failed,
            group="submit",
        )

    def _to_pay(self, result: tuple[Order, PayQr]) -> None:
        order, qr = result
        self.submitting = False
        self.epay.go_instead("pay", order=order, qr=qr)

    def _failed(self, exc: errors.ApiError) -> bool:
        self.submitting = False
        if isinstance(exc, errors.ProfileIncomplete):
            self.epay.go_instead("profile", reason="PROFILE_INCOMPLETE")
            return True
        if isinstance(exc, errors.ItemInOpenOrder):
            self.offer_resume(exc.details.get("order_no", ""))
            return True
        return False

    def action_back(self) -> None:
        self.dismiss()
