"""我的订单: newest first; a paid order opens its receipt (电子票据), an unfinished one
扫码支付 again. A refunded order says 已退款 or 部分退款 beside its status."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.widget import Widget
from textual.widgets import DataTable

from epay_tui.api import rules
from epay_tui.api.models import Order, Orders
from epay_tui.i18n import tr
from epay_tui.screens.base import BACK, EpayScreen, arrows, enter_key

COLUMNS = (("order_no", 18), ("items", 14), ("total", 10), ("status", 15), ("created", 11))
STATUS_STYLE = {
    "paid": "green",
    "open": "yellow",
    "awaiting_confirmation": "yellow",
    "refunded": "magenta",
    "partially_refunded": "magenta",
}


def shown_status(order: Order) -> str:
    """The status as 我的订单 shows it: a paid order that gave money back says how much."""
    if order.status == "paid" and order.refunded > 0:
        return "refunded" if order.refunded >= order.total else "partially_refunded"
    return order.status


class OrdersScreen(EpayScreen):
    TITLE_KEY = "orders.title"
    HELP = "help.orders"
    BINDINGS = [*arrows("select"), enter_key("view", "open_row"), BACK]

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, Order] = {}

    def compose_body(self) -> Iterable[Widget]:
        yield DataTable(id="orders", cursor_type="row", cell_padding=1)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column, width in COLUMNS:
            table.add_column(tr(self.app.language, f"orders.col.{column}"), key=column, width=width)
        table.focus()

    def on_screen_resume(self) -> None:
        self.load(lambda api: api.list_orders(), self._show, group="orders")

    def retranslate(self) -> None:
        table = self.query_one(DataTable)
        for column, _ in COLUMNS:
            table.columns[column].label = Text(tr(self.app.language, f"orders.col.{column}"))
        self._show(Orders(orders=list(self.orders.values())))

    def _show(self, orders: Orders) -> None:
        lang = self.app.language
        self.orders = {o.order_no: o for o in orders.orders}
        table = self.query_one(DataTable)
        table.clear()
        for order in orders.orders:
            status = shown_status(order)
            table.add_row(
                order.order_no,
                "、".join(i.name for i in order.items),
                Text(rules.format_fen(order.total), justify="right"),
                Text(tr(lang, f"orders.status.{status}"), style=STATUS_STYLE.get(status, "")),
                order.created_at.strftime("%m-%d %H:%M"),
                key=order.order_no,
            )
        if not orders.orders:
            self.say("orders.none")

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        order = self.orders.get(event.row_key.value or "")
        if order is None:
            return
        if order.status == "paid":
            self.epay.go("receipt", order_no=order.order_no)
        else:
            self.epay.go("pay", order=order)

    def action_back(self) -> None:
        self.dismiss()
