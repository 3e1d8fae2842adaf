"""欠费: who still owes in the current tag, filtered by 院系 / 班级, with the totals;
**导出** writes the CSV (Excel's UTF-8 with a BOM) to the path typed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input

from epay_tui.api import rules
from epay_tui.api.models import Arrears
from epay_tui.flow import money
from epay_tui.screens.base import BACK, EpayScreen, enter_key
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.tables import refill_keeping_cursor, relabel, staff_table
from epay_tui.widgets.texts import Tr


def shown_path(path: Path) -> str:
    """A path under the home folder as ``~/…`` (shorter, and typed back the same)."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


class ArrearsScreen(EpayScreen):
    TITLE_KEY = "arrears.title"
    HELP = "help.staff_money"
    BINDINGS = [enter_key("filter"), bar_key("f8", "export", "export", "F8"), BACK]
    COLUMNS = (
        ("username", 12),
        ("name", 8),
        ("department", 14),
        ("class_name", 10),
        ("outstanding", 11),
    )

    def __init__(self) -> None:
        super().__init__()
        self.where = money.ArrearsFilter()
        self.shown: Arrears | None = None
        self.exporting = False

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(classes="form"):
            with Horizontal(classes="field"):
                yield Tr("arrears.department", classes="label")
                yield Input(id="department", max_length=64, compact=True)
            with Horizontal(classes="field"):
                yield Tr("arrears.class_name", classes="label")
                yield Input(id="class_name", max_length=64, compact=True)
        yield staff_table(self.COLUMNS, self.app.language, "arrears")
        yield Tr(id="arrears-total")
        with Vertical(classes="form"), Horizontal(classes="field"):
            yield Tr("arrears.export_path", classes="label")
            yield Input(id="export-path", max_length=1024, compact=True, classes="path")
        yield Tr(id="result")

    def on_mount(self) -> None:
        self.query_one("#department", Input).focus()
        self.reload()

    def reload(self) -> None:
        where = self.where
        self.load(lambda api: money.arrears(api, where), self._show, group="arrears")

    def retranslate(self) -> None:
        relabel(self.query_one("#arrears", DataTable), self.COLUMNS, self.app.language)
        if self.shown is not None:
            self._show(self.shown)

    @on(Input.Submitted, "#department, #class_name")
    def action_submit(self) -> None:
        """筛选: the 院系 and 班级 typed (either may be empty)."""
        self.where = money.ArrearsFilter(
            self.query_one("#department", Input).value,
            self.query_one("#class_name", Input).value,
        )
        self.reload()

    def _show(self, arrears: Arrears) -> None:
        self.shown = arrears
        table = self.query_one("#arrears", DataTable)

        def rows() -> None:
            for s in arrears.students:
                table.add_row(
                    s.username,
                    s.name,
                    s.department,
                    s.class_name,
                    Text(rules.format_fen(s.outstanding), justify="right"),
                    key=s.username,
                )

        refill_keeping_cursor(table, rows)
        self.query_one("#arrears-total", Tr).show(
            "arrears.totals",
            tag=arrears.tag,
            count=arrears.count,
            total=rules.format_fen(arrears.total_outstanding),
        )
        path = self.query_one("#export-path", Input)
        if not path.value:  # the documents folder, the tag and the school's day
            day = self.epay.server_now().date()
            path.value = shown_path(money.default_export_path(arrears.tag, day))

    @on(Input.Submitted, "#export-path")
    def action_export(self) -> None:
        """导出: the arrears as filtered now, written to the path typed."""
        if self.exporting:
            return
        self.exporting = True
        where, typed = self.where, self.query_one("#export-path", Input).value

        async def export(api):
            try:
                return await money.export_arrears(api, where, typed)
            except money.ExportFailed as failed:
                return failed

        self.say("arrears.exporting")
        self.call_api(export, self._exported, failed=self._failed, group="export")

    def _exported(self, result) -> None:
        self.exporting = False
        self.message.clear()
        line = self.query_one("#result", Tr)
        if isinstance(result, money.ExportFailed):
            line.show(result.key, severity="error", path=result.path)
            self.query_one("#export-path", Input).focus()
            return
        path, size = result
        line.show("arrears.exported", severity="ok", path=str(path), size=size)

    def _failed(self, _exc) -> bool:
        self.exporting = False
        return False

    def action_back(self) -> None:
        self.dismiss()
