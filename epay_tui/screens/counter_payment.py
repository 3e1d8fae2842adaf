"""现场缴费: a student's unpaid items (the receipt-type rule as in 自助缴费), 现金 or POS
with its 凭证号, a confirmation showing the total, then the receipt."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input, RadioButton, RadioSet

from epay_tui.api import errors, rules
from epay_tui.api.models import CounterMethod, FeeItem, StudentDetail
from epay_tui.flow import helpdesk, money
from epay_tui.i18n import tr
from epay_tui.screens.base import BACK, EpayScreen
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.money_words import channel_word
from epay_tui.widgets.tables import cursor_key, relabel, staff_table
from epay_tui.widgets.texts import Tr

METHODS: tuple[CounterMethod, ...] = ("cash", "pos")


class CounterPaymentScreen(EpayScreen):
    """Pick, choose 现金 or POS, confirm: one payment per confirmation (its key kept)."""

    TITLE_KEY = "counter.title"
    HELP = "help.counter"
    BINDINGS = [
        bar_key("space", "toggle", "check", "Space"),
        *(bar_key(str(n), f"method('{m}')", "method", "1/2") for n, m in enumerate(METHODS, 1)),
        bar_key("enter", "submit", "take_payment", "Enter", priority=True),
        BACK,
    ]
    COLUMNS = (("mark", 3), ("tag", 9), ("fee", 12), ("receipt", 8), ("outstanding", 11))

    def __init__(self, username: str) -> None:
        super().__init__()
        self.username = username
        self.payment = money.CounterPayment(username)
        self.items: dict[str, FeeItem] = {}
        self.tags: dict[str, str] = {}
        self.checked: dict[str, FeeItem] = {}
        self.paying = False

    def compose_body(self) -> Iterable[Widget]:
        yield Tr(id="who")
        yield staff_table(self.COLUMNS, self.app.language, "counter-items")
        yield Tr(id="counter-total")
        with Vertical(classes="form"):
            with Horizontal(classes="field"):
                yield Tr("counter.method", classes="label")
                yield RadioSet(
                    *(
                        RadioButton(self._method_label(m), value=(m == "cash"), name=m)
                        for m in METHODS
                    ),
                    id="method",
                )
            with Horizontal(classes="field"):
                yield Tr("counter.reference", classes="label")
                yield Input(id="reference", max_length=rules.REFERENCE_MAX, compact=True)

    def _method_label(self, method: str) -> str:
        return f"{METHODS.index(method) + 1} {channel_word(self.app.language, method)}"

    def on_mount(self) -> None:
        self.query_one("#counter-items", DataTable).focus()
        name = self.username
        self.load(lambda api: helpdesk.open_student(api, name), self._show, group="student")

    def retranslate(self) -> None:
        relabel(self.query_one("#counter-items", DataTable), self.COLUMNS, self.app.language)
        for button in self.query(RadioButton):
            button.label = self._method_label(button.name or "cash")
        self._fill()

    # ----------------------------------------------------------------- items
    def _show(self, detail: StudentDetail) -> None:
        p = detail.profile
        self.query_one("#who", Tr).show("counter.who", name=p.name, username=p.username)
        unpaid = money.unpaid_items(detail.fees)
        self.items = {item.id: item for _, item in unpaid}
        self.tags = {item.id: tag for tag, item in unpaid}
        self.checked = {k: v for k, v in self.checked.items() if k in self.items}
        self._fill()
        if not unpaid:
            self.say("counter.nothing_owed")

    def _fill(self) -> None:
        lang = self.app.language
        table = self.query_one("#counter-items", DataTable)
        row = table.cursor_row
        table.clear()
        for item in self.items.values():
            table.add_row(
                "[✓]" if item.id in self.checked else "[ ]",
                self.tags[item.id][:9],
                item.name,
                tr(lang, f"fees.receipt.{item.receipt_type}"),
                Text(rules.format_fen(item.outstanding), justify="right"),
                key=item.id,
            )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        total = sum(i.outstanding for i in self.checked.values())
        self.query_one("#counter-total", Tr).show(
            "counter.total", count=len(self.checked), total=rules.format_fen(total)
        )

    def action_toggle(self) -> None:
        key = cursor_key(self.query_one("#counter-items", DataTable))
        if key is None:
            return
        item = self.items[key]
        if item.id in self.checked:
            del self.checked[item.id]
        elif rules.conflicts_with_selection(self.checked.values(), item):
            self.app.push_screen(
                Choice("fees.mixed", [("switch", "fees.switch"), ("cancel", "fees.cancel")]),
                lambda answer: self._switch_to(item) if answer == "switch" else None,
            )
            return
        else:
            self.checked[item.id] = item
        self.message.clear()
        self._fill()

    def _switch_to(self, item: FeeItem) -> None:
        self.checked = {item.id: item}
        self._fill()

    def action_method(self, method: str) -> None:
        for button in self.query(RadioButton):
            if button.name == method:
                button.value = True
        if method == "pos":
            self.query_one("#reference", Input).focus()

    @property
    def method(self) -> CounterMethod:
        pressed = self.query_one(RadioSet).pressed_button
        return "pos" if pressed is not None and pressed.name == "pos" else "cash"

    # ----------------------------------------------------------------- paying
    def action_submit(self) -> None:
        """确定收款: check, ask showing the total, then pay (once)."""
        if self.paying:
            return
        if not self.checked:
            self.say("counter.nothing_checked", severity="error")
            return
        method = self.method
        reference = self.query_one("#reference", Input).value.strip()
        problem = money.reference_problem(method, reference)
        if problem:
            self.say(problem, severity="error")
            self.query_one("#reference", Input).focus()
            return
        items = list(self.checked.values())
        total = sum(i.outstanding for i in items)
        question = "counter.question_pos" if method == "pos" else "counter.question_cash"
        self.app.push_screen(
            Choice(
                question,
                [("yes", "staff.confirm"), ("no", "fees.cancel")],
                count=len(items),
                total=rules.format_fen(total),
                reference=reference,
                username=self.username,
            ),
            lambda answer: self._pay(items, method, reference) if answer == "yes" else None,
        )

    def _pay(self, items: list[FeeItem], method: CounterMethod, reference: str) -> None:
        if self.paying:
            return
        self.paying = True
        self.say("counter.paying")
        self.call_api(
            lambda api: self.payment.pay(api, items, method, reference),
            self._paid,
            failed=self._failed,
            group="pay",
        )

    def _paid(self, order) -> None:
        self.say("counter.paid", severity="ok", order_no=order.order_no)
        self.epay.go_instead("receipt", order_no=order.order_no, staff=True)

    def _failed(self, exc: errors.ApiError) -> bool:
        self.paying = False
        if isinstance(exc, errors.ValidationFailed) and "reference" in exc.details.get(
            "fields", {}
        ):
            self.say("counter.bad_reference", severity="error")
            self.query_one("#reference", Input).focus()
            return True
        if isinstance(exc, errors.ItemAlreadyPaid | errors.ItemInOpenOrder):
            name = self.username
            self.load(lambda api: helpdesk.open_student(api, name), self._show, group="student")
        return False

    def action_back(self) -> None:
        self.dismiss()
