"""审计日志: the newest 100 entries, each action in words."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import DataTable

from epay_tui.api.models import AuditLog
from epay_tui.flow import helpdesk
from epay_tui.i18n import in_words
from epay_tui.screens.base import BACK, EpayScreen
from epay_tui.widgets.tables import refill_keeping_cursor, relabel, staff_table


class AuditScreen(EpayScreen):
    TITLE_KEY = "staff.audit_title"
    HELP = "help.helpdesk"
    BINDINGS = [BACK]
    COLUMNS = (("at", 14), ("actor", 12), ("action", 20), ("target", 20))
    shown_log: AuditLog | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield staff_table(self.COLUMNS, self.app.language, "audit")

    def on_mount(self) -> None:
        self.query_one("#audit", DataTable).focus()
        self.load(helpdesk.audit_log, self._show, group="audit")

    def retranslate(self) -> None:
        relabel(self.query_one("#audit", DataTable), self.COLUMNS, self.app.language)
        if self.shown_log is not None:
            self._show(self.shown_log)

    def _show(self, log: AuditLog) -> None:
        self.shown_log = log
        table = self.query_one("#audit", DataTable)

        def fill() -> None:
            for index, entry in enumerate(log.entries):
                when = entry.at.strftime("%m-%d %H:%M:%S")
                action = in_words(self.app.language, "audit", entry.action)
                table.add_row(when, entry.actor, action, entry.target, key=str(index))

        refill_keeping_cursor(table, fill)

    def action_back(self) -> None:
        self.dismiss()
