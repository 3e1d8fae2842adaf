"""对账: the gateway's statement of a day against the recorded orders, after a question."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input

from epay_tui.api.models import ReconcileResult
from epay_tui.flow import helpdesk
from epay_tui.i18n import in_words
from epay_tui.screens.base import BACK, EpayScreen, enter_key
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.texts import Tr


class ReconcileScreen(EpayScreen):
    """对账: today unless another date is typed; a confirmation, then the result."""

    TITLE_KEY = "staff.reconcile_title"
    HELP = "help.helpdesk"
    BINDINGS = [enter_key("reconcile"), BACK]

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
    def action_submit(self) -> None:
        try:
            day = date.fromisoformat(self.query_one("#date", Input).value.strip())
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
        self.load(lambda api: helpdesk.reconcile(api, day), self._show, group="reconcile")

    def _show(self, result: ReconcileResult) -> None:
        self.query_one("#reconcile-result", Tr).show(
            "staff.reconcile_result",
            severity="ok",
            day=result.date.isoformat(),
            matched=result.matched,
            recovered=", ".join(result.recovered) or "-",
            released=", ".join(result.released) or "-",
            discrepancies=lambda lang: (
                "; ".join(
                    f"{d.order_no} {in_words(lang, 'discrepancy', d.kind)}"
                    for d in result.discrepancies
                )
                or "-"
            ),
        )

    def action_back(self) -> None:
        self.dismiss()
