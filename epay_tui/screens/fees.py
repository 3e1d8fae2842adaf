"""自助缴费: fee items per tag, the receipt-type rule, 全选, 合计 and 去支付."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import DataTable

from epay_tui.api import rules
from epay_tui.api.models import FeeItem, Fees
from epay_tui.i18n import tr
from epay_tui.screens.base import BACK, EpayScreen, enter_key
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.tables import RowTable
from epay_tui.widgets.texts import Tr, TrButton

COLUMNS = (
    ("mark", 3),
    ("name", 14),
    ("receipt", 8),
    ("due", 10),
    ("paid", 10),
    ("outstanding", 10),
    ("state", 11),
)
TAG_KEY = "tag:"


class FeesScreen(EpayScreen):
    TITLE_KEY = "fees.title"
    HELP = "help.fees"
    BINDINGS = [
        bar_key("space", "toggle", "check", "Space"),
        bar_key("a", "select_all", "select_all", "A"),
        enter_key("go_pay", "open_row"),
        BACK,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.fees: Fees | None = None
        self.checked: dict[str, FeeItem] = {}
        self.open_tags: set[str] = set()
        self.items: dict[str, FeeItem] = {}

    def compose_body(self) -> Iterable[Widget]:
        yield Tr(id="hours", classes="notice")
        table = RowTable(id="fees", cursor_type="row", zebra_stripes=False, cell_padding=1)
        yield table
        yield Tr(id="detail", classes="muted")
        with Horizontal(classes="buttons", id="fee-actions"):
            yield Tr(id="total", classes="total")
            yield TrButton("fees.select_all", id="select-all")
            yield TrButton("fees.go_pay", id="go-pay", variant="primary")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column, width in COLUMNS:
            table.add_column(self._heading(column), key=column, width=width)
        table.focus()
        self.reload()

    def _heading(self, column: str) -> str:
        return tr(self.app.language, f"fees.col.{column}") if column != "mark" else ""

    def retranslate(self) -> None:
        table = self.query_one(DataTable)
        for column, _ in COLUMNS:
            table.columns[column].label = Text(self._heading(column))
        self._render_rows()

    # ----------------------------------------------------------------- data
    def reload(self) -> None:
        """Fetch fees (and meta for the hours) afresh: on arrival and after every order."""

        async def fetch(api):
            return await api.meta(), await api.fees()

        self.load(fetch, self._loaded, group="fees")

    def _loaded(self, result) -> None:
        meta, fees = result
        self.epay.meta = meta
        first_load = self.fees is None
        self.fees = fees
        self.items = {i.id: i for tag in fees.tags for i in tag.items}
        if first_load and fees.tags:
            self.open_tags = {fees.tags[0].tag}
        self.checked = {
            k: item for k in self.checked if (item := self.items.get(k)) and rules.payable(item)
        }
        session = self.epay.session
        group = session.take_next(self.items) if session is not None else []
        if group:  # the first group was paid: the rest is checked next
            self.checked = {i.id: i for i in group}
            self.say("fees.continue_rest", severity="ok")
        self._render_rows(cursor_on_first_payable=first_load)
        self._show_hours()

    def _show_hours(self) -> None:
        meta = self.epay.meta
        hours = self.query_one("#hours", Tr)
        closed = meta is not None and not meta.payment_hours.open_now
        self.query_one("#go-pay", TrButton).disabled = closed
        if closed:
            hours.show(
                "fees.closed", opens=meta.payment_hours.opens, closes=meta.payment_hours.closes
            )
        else:
            hours.clear()

    # ----------------------------------------------------------------- rows
    def _render_rows(self, cursor_on_first_payable: bool = False) -> None:
        table = self.query_one(DataTable)
        keep = self._cursor_key()
        table.clear()
        if self.fees is None:
            return
        lang = self.app.language
        first_payable = None
        for tag in self.fees.tags:
            is_open = tag.tag in self.open_tags
            hint = "" if is_open else tr(lang, "fees.view_items")
            table.add_row(
                "▾" if is_open else "▸",
                Text(tag.tag, style="bold"),
                "",
                hint,
                "",
                "",
                "",
                key=TAG_KEY + tag.tag,
            )
            if not is_open:
                continue
            for item in tag.items:
                table.add_row(*self._cells(item), key=item.id)
                if first_payable is None and rules.payable(item):
                    first_payable = item.id
        target = first_payable if cursor_on_first_payable else keep
        if target is not None and target in table.rows:
            table.move_cursor(row=table.get_row_index(target))
        self._show_total()
        self._show_detail()

    def _cells(self, item: FeeItem) -> tuple:
        lang = self.app.language
        mark = "[✓]" if item.id in self.checked else "[ ]" if rules.payable(item) else " - "
        state = tr(lang, f"fees.state.{item.state}")
        if item.state == "in_order" and item.order_no:  # the full number is on the detail line
            state += f" …{item.order_no[-4:]}"
        style = {"paid": "green", "in_order": "yellow", "refunded": "magenta"}.get(item.state, "")
        return (
            mark,
            item.name,
            tr(lang, f"fees.receipt.{item.receipt_type}"),
            Text(rules.format_fen(item.amount_due), justify="right"),
            Text(rules.format_fen(item.amount_paid), justify="right"),
            Text(rules.format_fen(item.outstanding), justify="right"),
            Text(state, style=style),
        )

    def _cursor_key(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _show_total(self) -> None:
        total = sum(i.outstanding for i in self.checked.values())
        self.query_one("#total", Tr).show(
            "fees.total", count=len(self.checked), total=rules.format_fen(total)
        )

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        key = self._cursor_key()
        item = self.items.get(key or "")
        detail = self.query_one("#detail", Tr)
        if item is not None and item.state == "in_order":
            detail.show("fees.in_order_detail", order_no=item.order_no or "")
        else:
            detail.clear()

    def _update_row(self, item: FeeItem) -> None:
        self.query_one(RowTable).update_row_cell(item.id, "mark", self._cells(item)[0])
        self._show_total()

    # ----------------------------------------------------------------- checking
    def action_toggle(self) -> None:
        key = self._cursor_key()
        if key is None:
            return
        if key.startswith(TAG_KEY):
            self._toggle_tag(key.removeprefix(TAG_KEY))
            return
        item = self.items[key]
        if item.id in self.checked:
            del self.checked[item.id]
            self._update_row(item)
        elif item.state == "in_order":
            self._offer_resume(item)
        elif item.state == "refunded":
            self.say("fees.refunded")
        elif not rules.payable(item):
            self.say("fees.already_paid")
        elif rules.conflicts_with_selection(self.checked.values(), item):
            self.app.push_screen(
                Choice("fees.mixed", [("switch", "fees.switch"), ("cancel", "fees.cancel")]),
                lambda answer: self._switch_to(item) if answer == "switch" else None,
            )
        else:
            self.checked[item.id] = item
            self.message.clear()
            self._update_row(item)

    def _switch_to(self, item: FeeItem) -> None:
        self.checked = {item.id: item}
        self._render_rows()

    def _toggle_tag(self, tag: str) -> None:
        self.open_tags ^= {tag}
        self._render_rows()

    def action_select_all(self) -> None:
        """全选 over every open tag; a mix takes tuition/accommodation first."""
        if self.fees is None:
            return
        candidates = [
            i
            for t in self.fees.tags
            if t.tag in self.open_tags
            for i in t.items
            if rules.payable(i)
        ]
        now, later = rules.first_group(candidates)
        self.checked = {i.id: i for i in now}
        if self.epay.session is not None:
            self.epay.session.leave_for_later(later)
        if later:
            self.say("fees.fiscal_first", severity="ok")
        else:
            self.message.clear()
        self._render_rows()

    def _offer_resume(self, item: FeeItem) -> None:
        self.offer_resume(item.order_no or "")

    # ----------------------------------------------------------------- paying
    @on(DataTable.RowSelected)
    def _enter(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value or ""
        if key.startswith(TAG_KEY):
            self._toggle_tag(key.removeprefix(TAG_KEY))
        else:
            self.go_pay()

    @on(TrButton.Pressed, "#go-pay")
    def go_pay(self) -> None:
        if self.query_one("#go-pay", TrButton).disabled:
            self._show_hours()
            return
        if not self.checked:
            self.say("fees.nothing_checked", severity="error")
            return
        self.epay.go("confirm_order", items=list(self.checked.values()))

    @on(TrButton.Pressed, "#select-all")
    def _select_all_pressed(self) -> None:
        self.action_select_all()

    def on_screen_resume(self) -> None:
        """Back from an order (paid, closed or left open): the truth comes from the backend."""
        if self.fees is not None:
            self.reload()

    def action_back(self) -> None:
        self.dismiss()
