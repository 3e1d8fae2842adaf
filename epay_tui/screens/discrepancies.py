"""差异: open discrepancies (money the gateway took that paid nothing); ``enter`` on one
starts 退费申请 for its trade, unless a refund of it is already asked for."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.widget import Widget
from textual.widgets import DataTable

from epay_tui.api import rules
from epay_tui.api.models import DiscrepancyEntry
from epay_tui.flow import money
from epay_tui.i18n import in_words
from epay_tui.screens.base import BACK, EpayScreen, enter_key
from epay_tui.widgets.tables import cursor_key, refill_keeping_cursor, relabel, staff_table
from epay_tui.widgets.texts import Tr


class DiscrepanciesScreen(EpayScreen):
    TITLE_KEY = "diff.title"
    HELP = "help.staff_money"
    BINDINGS = [enter_key("refund_request", "open_row"), BACK]
    COLUMNS = (("order_no", 18), ("kind", 10), ("trade_no", 17), ("amount", 11))

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, DiscrepancyEntry] = {}

    def compose_body(self) -> Iterable[Widget]:
        yield staff_table(self.COLUMNS, self.app.language, "discrepancies")
        yield Tr(id="discrepancy-detail", classes="muted")

    def on_mount(self) -> None:
        self.query_one("#discrepancies", DataTable).focus()
        self.reload()

    def reload(self) -> None:
        self.load(money.open_discrepancies, self._show, group="discrepancies")

    def on_screen_resume(self) -> None:
        """Back from 退费申请: a trade being refunded is no longer open."""
        self.reload()

    def retranslate(self) -> None:
        relabel(self.query_one("#discrepancies", DataTable), self.COLUMNS, self.app.language)
        self._fill()

    def _show(self, found: list[DiscrepancyEntry]) -> None:
        self.found = {str(d.id): d for d in found}
        self._fill()
        if not found:
            self.say("diff.none_open")
        elif self.message.key == "diff.none_open":
            self.message.clear()

    def _fill(self) -> None:
        lang = self.app.language
        table = self.query_one("#discrepancies", DataTable)

        def rows() -> None:
            for key, d in self.found.items():
                table.add_row(
                    d.order_no,
                    in_words(lang, "discrepancy", d.kind),
                    d.trade_no or "",
                    Text(rules.format_fen(d.amount or 0), justify="right"),
                    key=key,
                )

        refill_keeping_cursor(table, rows)
        self._show_detail()

    @on(DataTable.RowHighlighted, "#discrepancies")
    def _show_detail(self) -> None:
        d = self._highlighted()
        line = self.query_one("#discrepancy-detail", Tr)
        if d is None:
            line.clear()
        elif d.refund_no:
            line.show("diff.detail_refund", at=d.at.strftime("%m-%d %H:%M"), refund_no=d.refund_no)
        else:
            amount = rules.format_fen(d.amount or 0)
            line.show("diff.detail", at=d.at.strftime("%m-%d %H:%M"), amount=amount)

    def _highlighted(self) -> DiscrepancyEntry | None:
        return self.found.get(cursor_key(self.query_one("#discrepancies", DataTable)) or "")

    @on(DataTable.RowSelected, "#discrepancies")
    def _open(self) -> None:
        d = self._highlighted()
        if d is None or not d.trade_no:
            self.say("diff.none_open")
            return
        if d.refund_no:
            self.say("diff.refund_asked", severity="error", refund_no=d.refund_no)
            return
        self.epay.go("refund_request", order_no=d.order_no, trade_no=d.trade_no)

    def action_back(self) -> None:
        self.dismiss()
