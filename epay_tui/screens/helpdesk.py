"""The helpdesk: student search, the student's page with staff actions, reconcile, audit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input

from epay_tui.api import rules
from epay_tui.api.models import AuditLog, ReconcileResult, StudentDetail, StudentList
from epay_tui.i18n import has, tr
from epay_tui.screens.base import EpayScreen
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.texts import Tr


def _table(columns: Iterable[tuple[str, int]], lang: str, table_id: str) -> DataTable:
    table: DataTable = DataTable(id=table_id, cursor_type="row", cell_padding=1)
    for key, width in columns:
        table.add_column(tr(lang, f"staff.col.{key}"), key=key, width=width)
    return table


def _relabel(table: DataTable, columns: Iterable[tuple[str, int]], lang: str) -> None:
    for key, _ in columns:
        table.columns[key].label = Text(tr(lang, f"staff.col.{key}"))


def _keep_cursor(table: DataTable, fill) -> None:
    """Refill ``table`` and put the cursor back on the row it was on (by key)."""
    key = None
    if table.row_count:
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    fill()
    if key is not None and key in table.rows:
        table.move_cursor(row=table.get_row_index(key))


class HelpdeskHome(EpayScreen):
    TITLE_KEY = "staff.home_title"
    HELP = "help.helpdesk"
    KEY_HINTS = (
        ("Enter", "staff.search"),
        ("F5", "staff.reconcile"),
        ("F6", "staff.audit"),
        ("F9", "menu.logout"),
    )
    BINDINGS = [
        Binding("f5", "reconcile", "reconcile", id="reconcile"),
        Binding("f6", "audit", "audit", id="audit"),
        Binding("f9", "logout", "logout", id="logout"),
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
        yield _table(self.COLUMNS, self.app.language, "students")

    found: StudentList | None = None

    def on_mount(self) -> None:
        self.query_one("#search", Input).focus()

    def retranslate(self) -> None:
        _relabel(self.query_one("#students", DataTable), self.COLUMNS, self.app.language)
        if self.found is not None:
            self._fill(self.found)

    @on(Input.Submitted, "#search")
    def search(self, event: Input.Submitted) -> None:
        query = event.value.strip()
        self.load(lambda api: api.staff_students(query), self._show, group="search")

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

        _keep_cursor(table, rows)

    @on(DataTable.RowSelected, "#students")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(StudentPage(event.row_key.value or ""))

    def action_reconcile(self) -> None:
        self.app.push_screen(ReconcileScreen())

    def action_audit(self) -> None:
        self.app.push_screen(AuditScreen())

    async def action_logout(self) -> None:
        """Log out and forget a remembered login on this counter."""
        from epay_tui.screens.staff_login import keyring_set

        account = self.epay.settings.server or "embedded"
        await self.run_worker(lambda: keyring_set(account, None), thread=True).wait()
        await self.epay.end_session(notice="menu.logged_out")


class StudentPage(EpayScreen):
    """Profile, fees and orders of one student; 重置密码, 解除锁定, 查询支付结果."""

    TITLE_KEY = "staff.student_title"
    HELP = "help.helpdesk"
    KEY_HINTS = (
        ("F3", "staff.reset_password"),
        ("F4", "staff.unlock"),
        ("F7", "staff.query_payment"),
        ("Esc", "key.back"),
    )
    BINDINGS = [
        Binding("f3", "reset_password", "reset password", id="reset_password"),
        Binding("f4", "unlock", "unlock", id="unlock"),
        Binding("f7", "query_payment", "query payment", id="query_payment"),
        Binding("escape", "back", "back", id="back"),
    ]
    COLUMNS = (("order_no", 18), ("items", 18), ("total", 11), ("status", 8), ("created", 11))

    def __init__(self, username: str) -> None:
        super().__init__()
        self.username = username
        self.detail: StudentDetail | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield Tr(id="who")
        yield Tr(id="contacts", classes="muted")
        yield Tr(id="fees-line", classes="muted")
        yield Tr(id="result")
        yield _table(self.COLUMNS, self.app.language, "student-orders")

    def on_mount(self) -> None:
        self.query_one("#student-orders", DataTable).focus()
        self.reload()

    def reload(self) -> None:
        name = self.username
        self.load(lambda api: api.staff_student(name), self._show, group="student")

    def _show(self, detail: StudentDetail) -> None:
        self.detail = detail
        p = detail.profile
        self.query_one("#who", Tr).show(
            "staff.who",
            name=p.name,
            username=p.username,
            class_name=p.class_name,
            id_card=p.id_card_masked,
        )
        problems = ", ".join(p.profile_problems) or "✓"
        self.query_one("#contacts", Tr).show(
            "staff.contacts", phone=p.phone or "-", email=p.email or "-", problems=problems
        )
        items = [i for tag in detail.fees.tags for i in tag.items]
        owed = sum(i.outstanding for i in items)
        self.query_one("#fees-line", Tr).show(
            "staff.fees_line",
            count=len(items),
            owed=rules.format_fen(owed),
            paying=sum(i.state == "in_order" for i in items),
        )
        self._fill_orders(detail)

    def _fill_orders(self, detail: StudentDetail) -> None:
        lang = self.app.language
        table = self.query_one("#student-orders", DataTable)

        def rows() -> None:
            for order in detail.orders:
                table.add_row(
                    order.order_no,
                    "、".join(i.name for i in order.items),
                    Text(rules.format_fen(order.total), justify="right"),
                    tr(lang, f"orders.status.{order.status}"),
                    order.created_at.strftime("%m-%d %H:%M"),
                    key=order.order_no,
                )

        _keep_cursor(table, rows)

    def retranslate(self) -> None:
        _relabel(self.query_one("#student-orders", DataTable), self.COLUMNS, self.app.language)
        if self.detail is not None:
            self._fill_orders(self.detail)

    def _confirm(self, question: str, then, **values) -> None:
        self.app.push_screen(
            Choice(question, [("yes", "staff.confirm"), ("no", "fees.cancel")], **values),
            lambda answer: then() if answer == "yes" else None,
        )

    def action_reset_password(self) -> None:
        name = self.username

        def run() -> None:
            self.call_api(
                lambda api: api.staff_reset_password(name),
                lambda _: self._done("staff.reset_done"),
                group="action",
            )

        self._confirm("staff.reset_question", run, username=name)

    def action_unlock(self) -> None:
        name = self.username

        def run() -> None:
            self.call_api(
                lambda api: api.staff_unlock(name),
                lambda _: self._done("staff.unlock_done"),
                group="action",
            )

        self._confirm("staff.unlock_question", run, username=name)

    def action_query_payment(self) -> None:
        table = self.query_one("#student-orders", DataTable)
        if table.row_count == 0:
            self.say("staff.no_order")
            return
        order_no = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""

        def run() -> None:
            self.call_api(
                lambda api: api.staff_query_order(order_no),
                lambda order: self._done(
                    "staff.query_done",
                    order_no=order_no,
                    status=lambda lang: tr(lang, f"orders.status.{order.status}"),
                ),
                group="action",
            )

        self._confirm("staff.query_question", run, order_no=order_no)

    def _done(self, key: str, **values) -> None:
        self.query_one("#result", Tr).show(key, severity="ok", **values)
        self.reload()

    def action_back(self) -> None:
        self.dismiss()


class ReconcileScreen(EpayScreen):
    """对账: today unless another date is typed; a confirmation, then the result."""

    TITLE_KEY = "staff.reconcile_title"
    HELP = "help.helpdesk"
    KEY_HINTS = (("Enter", "staff.reconcile"), ("Esc", "key.back"))
    BINDINGS = [Binding("escape", "back", "back", id="back")]

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(classes="form"), Horizontal(classes="field"):
            yield Tr("staff.date", classes="label")
            yield Input(
                self.epay.clock.now().astimezone().date().isoformat(),
                id="date",
                max_length=10,
                compact=True,
            )
        yield Tr(id="reconcile-result")

    def on_mount(self) -> None:
        meta = self.epay.meta
        if meta is not None:  # the school's day, not this machine's
            self.query_one("#date", Input).value = meta.server_time.date().isoformat()
        self.query_one("#date", Input).focus()

    @on(Input.Submitted, "#date")
    def ask(self, event: Input.Submitted) -> None:
        try:
            day = date.fromisoformat(event.value.strip())
        except ValueError:
            self.say("staff.bad_date", severity="error")
            return
        self.app.push_screen(
            Choice(
                "staff.reconcile_question",
                [("yes", "staff.confirm"), ("no", "fees.cancel")],
                day=day.isoformat(),
            ),
            lambda answer: self._run(day) if answer == "yes" else None,
        )

    def _run(self, day: date) -> None:
        self.load(lambda api: api.staff_reconcile(day), self._show, group="reconcile")

    def _show(self, result: ReconcileResult) -> None:
        self.query_one("#reconcile-result", Tr).show(
            "staff.reconcile_result",
            severity="ok",
            day=result.date.isoformat(),
            matched=result.matched,
            recovered=", ".join(result.recovered) or "-",
            released=", ".join(result.released) or "-",
            discrepancies="; ".join(f"{d.order_no} {d.kind}" for d in result.discrepancies) or "-",
        )

    def action_back(self) -> None:
        self.dismiss()


class AuditScreen(EpayScreen):
    TITLE_KEY = "staff.audit_title"
    HELP = "help.helpdesk"
    KEY_HINTS = (("Esc", "key.back"),)
    BINDINGS = [Binding("escape", "back", "back", id="back")]
    COLUMNS = (("at", 14), ("actor", 12), ("action", 20), ("target", 20))
    shown_log: AuditLog | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield _table(self.COLUMNS, self.app.language, "audit")

    def on_mount(self) -> None:
        self.query_one("#audit", DataTable).focus()
        self.load(lambda api: api.staff_audit(100), self._show, group="audit")

    def retranslate(self) -> None:
        _relabel(self.query_one("#audit", DataTable), self.COLUMNS, self.app.language)
        if self.shown_log is not None:
            self._show(self.shown_log)

    def _action(self, action: str) -> str:
        """The action in words; one the catalog does not know keeps its code."""
        key = f"audit.{action}"
        return tr(self.app.language, key) if has(key) else action

    def _show(self, log: AuditLog) -> None:
        self.shown_log = log
        table = self.query_one("#audit", DataTable)

        def fill() -> None:
            for index, entry in enumerate(log.entries):
                when = entry.at.strftime("%m-%d %H:%M:%S")
                action = self._action(entry.action)
                table.add_row(when, entry.actor, action, entry.target, key=str(index))

        _keep_cursor(table, fill)

    def action_back(self) -> None:
        self.dismiss()
