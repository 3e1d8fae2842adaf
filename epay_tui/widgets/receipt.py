"""A paid order's receipt (电子票据) in the current language: 票据号, 校验码, the items with
their amounts (and 已退款 when any), 合计, 收款方, 支付方式, 支付时间 and its status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

from epay_tui.api.rules import format_fen
from epay_tui.i18n import tr

if TYPE_CHECKING:
    from epay_tui.api.models import Receipt


GAP = "   "
"""Between the columns of the items."""


def paid_time(receipt: Receipt) -> str:
    return receipt.paid_at.strftime("%Y-%m-%d %H:%M:%S")


class ReceiptView(Static):
    """The receipt, whole, or ``brief`` (the items and 合计 alone, for 支付成功, which
    shows the rest itself). Empty until :meth:`show_receipt`."""

    DEFAULT_CSS = """
    ReceiptView { height: auto; }
    """

    def __init__(self, *, brief: bool = False, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.brief = brief
        self.receipt: Receipt | None = None

    def show_receipt(self, receipt: Receipt) -> None:
        self.receipt = receipt
        self.display = True
        self.retranslate()

    def on_mount(self) -> None:
        self.display = self.receipt is not None  # no blank line before it arrives

    def retranslate(self) -> None:
        self.update(self._content() if self.receipt is not None else "")

    def _content(self) -> Text:
        receipt = self.receipt
        assert receipt is not None
        lang = self.app.language
        if self.brief:
            return self._items(receipt, lang, heading=False)
        text = Text()
        values = {
            "receipt.number": {
                "receipt_no": receipt.receipt_no,
                "check_code": receipt.check_code,
            },
            "receipt.order": {
                "order_no": receipt.order_no,
                "receipt_type": tr(lang, f"fees.receipt.{receipt.receipt_type}"),
            },
            "receipt.payer": {"name": receipt.payer.name, "username": receipt.payer.username},
            "receipt.payee": {"payee": receipt.payee},
            "receipt.channel": {
                "channel": tr(lang, f"channel.{receipt.channel}"),
                "transaction_id": receipt.transaction_id,
            },
            "receipt.paid_at": {"paid_at": paid_time(receipt)},
        }
        for key, filled in values.items():
            text.append(
                tr(lang, key, **filled) + "\n", style="bold" if key == "receipt.number" else ""
            )
        text.append("\n")
        text.append_text(self._items(receipt, lang, heading=True))
        if receipt.status != "issued":
            status = tr(lang, f"receipt.status.{receipt.status}")
            refunded = format_fen(receipt.refunded)
            text.append("\n")
            line = tr(lang, "receipt.status", status=status, refunded=refunded)
            text.append(line, style="bold yellow")
        return text

    @staticmethod
    def _items(receipt: Receipt, lang: str, *, heading: bool) -> Text:
        """Item, amount and, when anything was given back, 已退款, in aligned columns;
        合计 last."""
        columns = 3 if receipt.refunded > 0 else 2
        rows: list[tuple[list[str], str]] = []
        if heading:
            names = [tr(lang, f"receipt.col.{c}") for c in ("item", "amount", "refunded")]
            rows.append((names, "dim"))
        for item in receipt.items:
            back = format_fen(item.refunded) if item.refunded else ""
            rows.append(([item.name, format_fen(item.amount), back], ""))
        total = [tr(lang, "receipt.total"), format_fen(receipt.total), format_fen(receipt.refunded)]
        rows.append((total, "bold"))
        widths = [max(cell_len(cells[n]) for cells, _ in rows) for n in range(columns)]
        text = Text()
        for number, (cells, style) in enumerate(rows):
            line = cells[0] + " " * (widths[0] - cell_len(cells[0]))
            for n in range(1, columns):
                line += GAP + " " * (widths[n] - cell_len(cells[n])) + cells[n]
            text.append(("\n" if number else "") + line.rstrip(), style=style)
        return text
