"""退费审批: pending refunds (and those still processing at the gateway); 同意 / 驳回 with
a reason, never one's own request; 查询 for a refund still processing."""

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
from epay_tui.screens.base import BACK, EpayScreen, arrows
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.money_words import channel_word, refund_kind, refund_status
from epay_tui.widgets.tables import cursor_key, refill_keeping_cursor, relabel, staff_table
from epay_tui.widgets.texts import Tr

RESULTS = {
    "succeeded": "refund.approved_succeeded",
    "processing": "refund.approved_processing",
    "failed": "refund.approved_failed",
    "rejected": "refund.rejected_done",
}


class RefundApprovalScreen(EpayScreen):
    TITLE_KEY = "refund.approval_title"
    HELP = "help.refund_approval"
    BINDINGS = [
        *arrows("move"),
        bar_key("y", "approve", "approve", "Y"),
        bar_key("n", "reject", "reject", "N"),
        bar_key("q", "query", "query_refund", "Q"),
        BACK,
    ]
    COLUMNS = (
        ("refund_no", 20),
        ("kind", 6),
        ("amount", 11),
        ("channel", 8),
        ("requested_by", 10),
        ("refund_status", 6),
    )

    def __init__(self) -> None:
        super().__init__()
        self.refunds: dict[str, Refund] = {}

    def compose_body(self) -> Iterable[Widget]:
        yield staff_table(self.COLUMNS, self.app.language, "refunds")
        yield Tr(id="refund-detail", classes="muted")
        with Vertical(classes="form"), Horizontal(classes="field"):
            yield Tr("refund.reject_reason", classes="label")
            yield Input(id="reject-reason", max_length=rules.REASON_MAX, compact=True)
        yield Tr(id="result")

    def on_mount(self) -> None:
        self.query_one("#refunds", DataTable).focus()
        self.reload()

    def reload(self) -> None:
        self.load(money.refunds_to_decide, self._show, group="refunds")

    def retranslate(self) -> None:
        relabel(self.query_one("#refunds", DataTable), self.COLUMNS, self.app.language)
        self._fill()

    def _show(self, refunds: list[Refund]) -> None:
        self.refunds = {r.refund_no: r for r in refunds}
        self._fill()
        if not refunds:
            self.say("refund.none_pending")
        elif self.message.key == "refund.none_pending":
            self.message.clear()

    def _fill(self) -> None:
        lang = self.app.language
        table = self.query_one("#refunds", DataTable)

        def rows() -> None:
            for r in self.refunds.values():
                table.add_row(
                    r.refund_no,
                    refund_kind(lang, r.kind),
                    Text(rules.format_fen(r.amount), justify="right"),
                    channel_word(lang, r.channel),
                    r.requested_by,
                    refund_status(lang, r.status),
                    key=r.refund_no,
                )

        refill_keeping_cursor(table, rows)
        self._show_detail()

    @on(DataTable.RowHighlighted, "#refunds")
    def _show_detail(self) -> None:
        refund = self._highlighted()
        detail = self.query_one("#refund-detail", Tr)
        if refund is None:
            detail.clear()
            return
        detail.show(
            "refund.detail",
            order_no=refund.order_no,
            at=refund.requested_at.strftime("%m-%d %H:%M"),
            reason=refund.reason,
        )

    def _highlighted(self) -> Refund | None:
        return self.refunds.get(cursor_key(self.query_one("#refunds", DataTable)) or "")

    def _staff(self) -> str | None:
        session = self.epay.session
        return session.username if session is not None else None

    def _pending(self) -> Refund | None:
        refund = self._highlighted()
        if refund is None:
            self.say("refund.none_pending")
            return None
        if refund.status != "pending":
            self.say("refund.not_pending", severity="error")
            return None
        return refund

    # ----------------------------------------------------------------- 同意
    def action_approve(self) -> None:
        refund = self._pending()
        if refund is None:
            return
        if money.own_request(refund, self._staff()):  # said before asking
            self.say("refund.own_request", severity="error")
            return
        self.app.push_screen(
            Choice(
                "refund.approve_question",
                [("yes", "staff.confirm"), ("no", "fees.cancel")],
                refund_no=refund.refund_no,
                amount=rules.format_fen(refund.amount),
                channel=lambda lang: channel_word(lang, refund.channel),
            ),
            lambda answer: self._decided(money.approve, refund) if answer == "yes" else None,
        )

    # ----------------------------------------------------------------- 驳回
    @on(Input.Submitted, "#reject-reason")
    def action_reject(self) -> None:
        refund = self._pending()
        if refund is None:
            return
        field = self.query_one("#reject-reason", Input)
        reason = field.value.strip()
        problem = money.reason_problem(reason)
        if problem:
            self.say("refund.type_reject_reason" if not reason else problem, severity="error")
            field.focus()
            return

        def reject(api, refund_no: str):
            return money.reject(api, refund_no, reason)

        self.app.push_screen(
            Choice(
                "refund.reject_question",
                [("yes", "staff.confirm"), ("no", "fees.cancel")],
                refund_no=refund.refund_no,
                reason=reason,
            ),
            lambda answer: self._decided(reject, refund) if answer == "yes" else None,
        )

    def _decided(self, step, refund: Refund) -> None:
        refund_no = refund.refund_no
        self.call_api(lambda api: step(api, refund_no), self._result, group="decide")

    def _result(self, refund: Refund) -> None:
        self.message.clear()
        self.query_one("#reject-reason", Input).value = ""
        self.query_one("#refunds", DataTable).focus()
        self.query_one("#result", Tr).show(
            RESULTS.get(refund.status, "refund.status_line"),
            severity="error" if refund.status == "failed" else "ok",
            refund_no=refund.refund_no,
            amount=rules.format_fen(refund.amount),
            channel=lambda lang: channel_word(lang, refund.channel),
            status=lambda lang: refund_status(lang, refund.status),
        )
        self.reload()

    # ----------------------------------------------------------------- 查询
    def action_query(self) -> None:
        refund = self._highlighted()
        if refund is None or refund.status != "processing":
            self.say("refund.nothing_to_query", severity="error")
            return
        refund_no = refund.refund_no
        self.call_api(lambda api: money.query_refund(api, refund_no), self._result, group="decide")

    def action_back(self) -> None:
        self.dismiss()
