"""日结: today's counter payments of the staff member logged in, with the totals for 现金
and POS and their count."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable

from epay_tui.api import rules
from epay_tui.api.models import CashierReport
from epay_tui.flow import money
from epay_tui.screens.base import BACK, EpayScreen
from epay_tui.widgets.money_words import channel_word
from epay_tui.widgets.tables import refill_keeping_cursor, relabel, staff_table
from epay_tui.widgets.texts import Tr


class CashierReportScreen(EpayScreen):
    TITLE_KEY = "cashier.title"
    HELP = "help.staff_money"
    BINDINGS = [BACK]
    COLUMNS = (
        ("time", 5),
        ("order_no", 18),
        ("name", 8),
        ("method", 5),
        ("reference", 10),
        ("total", 11),
    )

    def __init__(self) -> None:
        super().__init__()
        self.report: CashierReport | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield Tr(id="cashier-day")
        yield staff_table(self.COLUMNS, self.app.language, "cashier-payments")
        yield Tr(id="cashier-totals")

    def on_mount(self) -> None:
        self.query_one("#cashier-payments", DataTable).focus()
        self.load(money.cashier_day, self._show, group="report")

    def retranslate(self) -> None:
        relabel(self.query_one("#cashier-payments", DataTable), self.COLUMNS, self.app.language)
        if self.report is not None:
            self._show(self.report)

    def _show(self, report: CashierReport) -> None:
        self.report = report
        lang = self.app.language
        table = self.query_one("#cashier-payments", DataTable)

        def rows() -> None:
            for p in report.payments:
                table.add_row(
                    p.paid_at.strftime("%H:%M"),
                    p.order_no,
                    p.name,
                    channel_word(lang, p.method),
                    p.reference or "",
                    Text(rules.format_fen(p.total), justify="right"),
                    key=p.order_no,
                )

        refill_keeping_cursor(table, rows)
        self.query_one("#cashier-day", Tr).show(
            "cashier.day", day=report.date.isoformat(), cashier=report.cashier
        )
        t = report.totals
        self.query_one("#cashier-totals", Tr).show(
            "cashier.totals",
            cash=rules.format_fen(t.cash),
            pos=rules.format_fen(t.pos),
            count=t.count,
            total=rules.format_fen(t.cash + t.pos),
        )

    def action_back(self) -> None:
        self.dismiss()
