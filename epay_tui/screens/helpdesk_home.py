"""服务台: search students by number or name; 退费审批, 日结, 对账, 审计日志, 欠费, 差异 and
log out from here."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input

from epay_tui.api.models import StudentList
from epay_tui.flow import helpdesk
from epay_tui.flow.remember import remember_token
from epay_tui.i18n import tr
from epay_tui.screens.base import EpayScreen, enter_key
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.tables import refill_keeping_cursor, relabel, staff_table
from epay_tui.widgets.texts import Tr


class HelpdeskHome(EpayScreen):
    TITLE_KEY = "staff.home_title"
    HELP = "help.helpdesk"
    BINDINGS = [
        enter_key("search"),
        bar_key("f3", "open('refund_approval')", "refund_approval", "F3"),
        bar_key("f4", "open('cashier_report')", "cashier_report", "F4"),
        bar_key("f5", "reconcile", "reconcile", "F5"),
        bar_key("f6", "audit", "audit", "F6"),
        bar_key("f7", "open('arrears')", "arrears", "F7"),
        bar_key("f8", "open('discrepancies')", "discrepancies", "F8"),
        bar_key("f9", "logout", "logout", "F9"),
    ]
    COLUMNS = (
        ("username", 12),
        ("name", 10),
        ("department", 16),
        ("class_name", 12),
        ("locked", 8),
    )

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(classes="form"), Horizontal(classes="field"):
            yield Tr("staff.search_label", classes="label")
            yield Input(id="search", max_length=32, compact=True)
        yield staff_table(self.COLUMNS, self.app.language, "students")

    found: StudentList | None = None

    def on_mount(self) -> None:
        self.query_one("#search", Input).focus()

    def retranslate(self) -> None:
        relabel(self.query_one("#students", DataTable), self.COLUMNS, self.app.language)
        if self.found is not None:
            self._fill(self.found)

    @on(Input.Submitted, "#search")
    def action_submit(self) -> None:
        query = self.query_one("#search", Input).value
        self.load(lambda api: helpdesk.find_students(api, query), self._show, group="search")

    def _show(self, found: StudentList) -> None:
        self.found = found
        self._fill(found)
        table = self.query_one("#students", DataTable)
        if found.students:
            self.message.clear()
            table.focus()
        else:
            self.say("staff.none_found")

    def _fill(self, found: StudentList) -> None:
        lang = self.app.language
        table = self.query_one("#students", DataTable)

        def rows() -> None:
            for s in found.students:
                locked = tr(lang, "staff.locked") if s.locked else ""
                table.add_row(
                    s.username,
                    s.name,
                    s.department,
                    s.class_name,
                    Text(locked, style="bold red"),
                    key=s.username,
                )

        refill_keeping_cursor(table, rows)

    @on(DataTable.RowSelected, "#students")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.epay.go("student", username=event.row_key.value or "")

    def action_open(self, name: str) -> None:
        """退费审批, 日结, 欠费 or 差异, by name."""
        self.epay.go(name)

    def action_reconcile(self) -> None:
        self.epay.go("reconcile")

    def action_audit(self) -> None:
        self.epay.go("audit")

    async def action_logout(self) -> None:
        """Log out and forget a remembered login on this counter."""
        account = self.epay.settings.server or "embedded"
        await self.run_worker(lambda: remember_token(account, None), thread=True).wait()
        await self.epay.end_session(notice="menu.logged_out")
