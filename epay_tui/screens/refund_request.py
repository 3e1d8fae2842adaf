"""退费申请: items of a paid order, or one of its open discrepancies' trades; 原因;
a confirmation; then the pending refund, which another staff member must approve."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input

from epay_tui.api import rules
from epay_tui.api.models import Refund
from epay_tui.flow import money
from epay_tui.i18n import in_words, tr
from epay_tui.screens.base import BACK, EpayScreen
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.money_words import channel_word
from epay_tui.widgets.tables import cursor_key, relabel, staff_table
from epay_tui.widgets.texts import Tr

TRADE = "trade:"


class RefundRequestScreen(EpayScreen):
    """What can go back of ``order_no``; ``trade_no`` (from 差异) starts checked."""

    TITLE_KEY = "refund.request_title"
    HELP = "help.refund_request"
    BINDINGS = [
        bar_key("space", "toggle", "check", "Space"),
        bar_key("enter", "submit", "refund_request", "Enter", priority=True),
        BACK,
    ]
    COLUMNS = (("mark", 3), ("what", 30), ("amount", 11), ("refund_state", 10))

    def __init__(self, order_no: str, trade_no: str | None = None) -> None:
        super().__init__()
        self.order_no = order_no
        self.application = money.RefundApplication(order_no)
        self.source: money.RefundSource | None = None
        self.items: set[str] = set()
        self.trade: str | None = trade_no
        self.sending = False

    def compose_body(self) -> Iterable[Widget]:
        yield Tr(id="refund-order")
        yield staff_table(self.COLUMNS, self.app.language, "refund-items")
        with Vertical(classes="form"), Horizontal(classes="field"):
            yield Tr("refund.reason", classes="label")
            yield Input(id="reason", max_length=rules.REASON_MAX, compact=True)
        yield Tr(id="result")

    def on_mount(self) -> None:
        self.query_one("#refund-items", DataTable).focus()
        self.reload()

    def reload(self) -> None:
        order_no = self.order_no
        self.load(lambda api: money.refund_source(api, order_no), self._show, group="source")

    def retranslate(self) -> None:
        relabel(self.query_one("#refund-items", DataTable), self.COLUMNS, self.app.language)
        self._fill()

    def _show(self, source: money.RefundSource) -> None:
        self.source = source
        self.items = {i for i in self.items if source.refundable(i)}
        if self.trade and all(d.trade_no != self.trade for d in source.trades):
            self.trade = None
        self._fill()

    def _fill(self) -> None:
        source = self.source
        if source is None:
            return
        lang = self.app.language
        r = source.receipt
        self.query_one("#refund-order", Tr).show(
            "refund.order_line",
            order_no=r.order_no,
            name=r.payer.name,
            username=r.payer.username,
            channel=lambda lang: channel_word(lang, r.channel),
            total=rules.format_fen(r.total),
            refunded=rules.format_fen(r.refunded),
        )
        table = self.query_one("#refund-items", DataTable)
        row = table.cursor_row
        table.clear()
        for item in r.items:
            left = item.amount - item.refunded
            state = "refund.state.refunded" if left <= 0 else "refund.state.paid"
            table.add_row(
                "[✓]" if item.id in self.items else "[ ]" if left > 0 else " - ",
                item.name,
                Text(rules.format_fen(item.amount), justify="right"),
                tr(lang, state),
                key=item.id,
            )
        for d in source.trades:
            what = tr(
                lang,
                "refund.trade_line",
                kind=in_words(lang, "discrepancy", d.kind),
                trade_no=d.trade_no or "",
            )
            table.add_row(
                "[✓]" if d.trade_no == self.trade else "[ ]",
                what,
                Text(rules.format_fen(d.amount or 0), justify="right"),
                tr(lang, "refund.state.open_trade"),
                key=TRADE + (d.trade_no or ""),
            )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def action_toggle(self) -> None:
        key = cursor_key(self.query_one("#refund-items", DataTable))
        if self.source is None or key is None:
            return
        if key.startswith(TRADE):  # a trade goes back alone
            trade = key.removeprefix(TRADE)
            self.trade = None if self.trade == trade else trade
            self.items.clear()
        elif key in self.items:
            self.items.discard(key)
        elif not self.source.refundable(key):
            self.say("refund.already_refunded", severity="error")
            return
        else:
            self.items.add(key)
            self.trade = None
        self.message.clear()
        self._fill()

    def _amount(self) -> int:
        assert self.source is not None
        if self.trade:
            return sum(d.amount or 0 for d in self.source.trades if d.trade_no == self.trade)
        return sum(i.amount - i.refunded for i in self.source.receipt.items if i.id in self.items)

    @on(Input.Submitted, "#reason")
    def action_submit(self) -> None:
        """提交申请: check, ask showing the amount and channel, then request (once)."""
        if self.sending or self.source is None:
            return
        if not self.items and not self.trade:
            self.say("refund.nothing_checked", severity="error")
            return
        reason = self.query_one("#reason", Input).value.strip()
        problem = money.reason_problem(reason)
        if problem:
            self.say(problem, severity="error")
            self.query_one("#reason", Input).focus()
            return
        items, trade = sorted(self.items), self.trade
        channel = self.source.receipt.channel
        self.app.push_screen(
            Choice(
                "refund.question",
                [("yes", "staff.confirm"), ("no", "fees.cancel")],
                order_no=self.order_no,
                amount=rules.format_fen(self._amount()),
                channel=lambda lang: channel_word(lang, channel),
            ),
            lambda answer: self._send(reason, items, trade) if answer == "yes" else None,
        )

    def _send(self, reason: str, items: list[str], trade: str | None) -> None:
        self.sending = True
        self.call_api(
            lambda api: self.application.request(api, reason, items, trade),
            self._requested,
            failed=self._failed,
            group="request",
        )

    def _requested(self, refund: Refund) -> None:
        self.sending = False
        self.items, self.trade = set(), None
        self.query_one("#reason", Input).value = ""
        self.message.clear()
        self.query_one("#result", Tr).show(
            "refund.requested",
            severity="ok",
            refund_no=refund.refund_no,
            amount=rules.format_fen(refund.amount),
            channel=lambda lang: channel_word(lang, refund.channel),
        )
        self.query_one("#refund-items", DataTable).focus()
        self.reload()

    def _failed(self, _exc) -> bool:
        self.sending = False
        return False

    def action_back(self) -> None:
        self.dismiss()
