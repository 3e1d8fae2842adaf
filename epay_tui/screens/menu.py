"""≡ 菜单: 自助缴费, 我的订单, 个人信息, 修改密码, 退出登录 on keys 1-5."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.widget import Widget
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from epay_tui.api.models import Orders
from epay_tui.i18n import tr
from epay_tui.screens.base import EpayScreen, arrows, enter_key
from epay_tui.widgets.chrome import bar_key

ENTRIES = ("fees", "orders", "profile", "password", "logout")
SCREEN_OF = {
    "fees": "fees",
    "orders": "orders",
    "profile": "profile",
    "password": "change_password",
}
"""The screen each entry opens (by its name in the app)."""


class MenuScreen(EpayScreen):
    TITLE_KEY = "menu.title"
    HELP = "help.menu"
    BINDINGS = [
        *(
            bar_key(str(n), f"open('{entry}')", "select", "1-5")
            for n, entry in enumerate(ENTRIES, start=1)
        ),
        *arrows("move"),
        enter_key("open", "open_row"),
    ]

    def compose_body(self) -> Iterable[Widget]:
        yield OptionList(*self._options(), id="menu")

    def _options(self) -> list[Option]:
        lang = self.app.language
        return [
            Option(f"{n}  {tr(lang, f'menu.{entry}')}", id=entry)
            for n, entry in enumerate(ENTRIES, start=1)
        ]

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        session = self.epay.session
        if session is not None and not session.looked_for_open_orders:
            session.looked_for_open_orders = True
            self.load(lambda api: api.list_orders(), self._resume_unfinished, group="resume")

    def _resume_unfinished(self, orders: Orders) -> None:
        """Back after a crash or on another device: lead straight to the unfinished order."""
        unfinished = next((o for o in orders.orders if o.unfinished), None)
        if unfinished is not None:
            self.epay.go("pay", order=unfinished)

    def retranslate(self) -> None:
        menu = self.query_one(OptionList)
        highlighted = menu.highlighted
        menu.clear_options()
        menu.add_options(self._options())
        menu.highlighted = highlighted

    @on(OptionList.OptionSelected, "#menu")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.run_action(f"open('{event.option.id}')")

    async def action_open(self, entry: str) -> None:
        if entry == "logout":
            await self.epay.end_session(notice="menu.logged_out")
        else:
            self.epay.go(SCREEN_OF[entry])
