"""A student at the helpdesk: profile, fees and orders; 重置密码, 解除锁定, 查询支付结果,
现场缴费, and on a paid order 补发票据, 打印 and 退费申请."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable

from epay_tui.api import rules
from epay_tui.api.models import StudentDetail
from epay_tui.flow import helpdesk
from epay_tui.i18n import in_words, tr
from epay_tui.screens.base import BACK, EpayScreen
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.tables import refill_keeping_cursor, relabel, staff_table
from epay_tui.widgets.texts import Tr


class StudentPage(EpayScreen):
    """Profile, fees and orders of one student; 重置密码, 解除锁定, 查询支付结果, 现场缴费;
    补发票据, 打印 and 退费申请 on the paid order under the cursor."""

    TITLE_KEY = "staff.student_title"
    HELP = "help.helpdesk"
    BINDINGS = [
        bar_key("f3", "reset_password", "reset_password", "F3"),
        bar_key("f4", "unlock", "unlock", "F4"),
        bar_key("f5", "counter_payment", "counter_payment", "F5"),
        bar_key("f6", "receipt", "desk_resend", "F6"),
        bar_key("f7", "query_payment", "query_payment", "F7"),
        bar_key("f8", "print_slip", "desk_print", "F8"),
        bar_key("f9", "refund", "refund_request", "F9"),
        BACK,
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
        yield staff_table(self.COLUMNS, self.app.language, "student-orders")

    def on_mount(self) -> None:
        self.query_one("#student-orders", DataTable).focus()
        self.reload()

    def reload(self) -> None:
        name = self.username
        self.load(lambda api: helpdesk.open_student(api, name), self._show, group="student")

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
        problems = list(p.profile_problems)
        self.query_one("#contacts", Tr).show(
            "staff.contacts",
            phone=p.phone or "-",
            email=p.email or "-",
            problems=lambda lang: (
                tr(lang, "staff.problem_separator").join(
                    in_words(lang, "staff.problem", x) for x in problems
                )
                or "✓"
            ),
        )
        glance = helpdesk.FeesAtAGlance.of(detail.fees)
        self.query_one("#fees-line", Tr).show(
            "staff.fees_line",
            count=glance.count,
            owed=rules.format_fen(glance.owed),
            paying=glance.paying,
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

        refill_keeping_cursor(table, rows)

    def retranslate(self) -> None:
        relabel(self.query_one("#student-orders", DataTable), self.COLUMNS, self.app.language)
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
                lambda api: helpdesk.reset_password(api, name),
                lambda _: self._done("staff.reset_done"),
                group="action",
            )

        self._confirm("staff.reset_question", run, username=name)

    def action_unlock(self) -> None:
        name = self.username

        def run() -> None:
            self.call_api(
                lambda api: helpdesk.unlock(api, name),
                lambda _: self._done("staff.unlock_done"),
                group="action",
            )

        self._confirm("staff.unlock_question", run, username=name)

    def _order_no(self) -> str | None:
        """The order under the cursor (None, said so, when the student has none)."""
        table = self.query_one("#student-orders", DataTable)
        if table.row_count == 0:
            self.say("staff.no_order")
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""

    def _paid_order_no(self) -> str | None:
        """The paid order under the cursor, or None, said why."""
        order_no = self._order_no()
        if order_no is None or self.detail is None:
            return None
        order = next((o for o in self.detail.orders if o.order_no == order_no), None)
        if order is None or order.status != "paid":
            self.say("staff.not_paid", severity="error", order_no=order_no)
            return None
        return order_no

    def action_counter_payment(self) -> None:
        self.epay.go("counter_payment", username=self.username)

    def action_receipt(self) -> None:
        """补发票据 and 打印: the receipt screen holds both keys."""
        order_no = self._paid_order_no()
        if order_no is not None:
            self.epay.go("receipt", order_no=order_no, staff=True)

    def action_print_slip(self) -> None:
        """打印: the paid order's receipt, whose ``p`` prints it."""
        self.action_receipt()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No printer configured: no print key (ui.md)."""
        if action == "print_slip":
            return self.epay.settings.printer is not None
        return True

    def action_refund(self) -> None:
        order_no = self._paid_order_no()
        if order_no is not None:
            self.epay.go("refund_request", order_no=order_no)

    def on_screen_resume(self) -> None:
        """Back from 现场缴费, the receipt or 退费申请: the page as it is now."""
        if self.detail is not None:
            self.reload()

    def action_query_payment(self) -> None:
        order_no = self._order_no()
        if order_no is None:
            return

        def run() -> None:
            self.call_api(
                lambda api: helpdesk.query_payment(api, order_no),
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
