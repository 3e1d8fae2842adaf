"""The app's header (title, SANDBOX, who is logged in) and key bar (this screen's keys)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from epay_tui.i18n import tr


class AppHeader(Widget):
    """One line: the platform's name, the sandbox marker, the student's name and number."""

    DEFAULT_CSS = """
    AppHeader { dock: top; height: 1; background: $primary; color: $text; }
    """

    def retranslate(self) -> None:
        self.refresh()

    def render(self) -> Table:
        app = self.app
        left = Text(" " + tr(app.language, "app.title"), style="bold")
        if app.sandbox:
            left.append("  ")
            left.append(f" {tr(app.language, 'app.sandbox')} ", style="bold black on yellow")
        right = Text("")
        if app.user:
            right = Text(tr(app.language, "app.user", name=app.user[1], username=app.user[0]) + " ")
        bar = Table.grid(expand=True)
        bar.add_column(no_wrap=True)
        bar.add_column(justify="right", no_wrap=True)
        bar.add_row(left, right)
        return bar


class KeyBar(Widget):
    """The keys this screen answers, in the current language, then the global ones."""

    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; color: $text-muted; }
    """

    def retranslate(self) -> None:
        self.refresh()

    def render(self) -> Text:
        """Every key with its word; when that is too wide, the global keys (F1 F2 ^Q,
        the same on every screen) lose their words first, so no key is ever cut off."""
        lang = self.app.language
        own = [(key, tr(lang, word)) for key, word in getattr(self.screen, "KEY_HINTS", ())]
        shared = [(key, tr(lang, word)) for key, word in self.app.global_key_hints()]
        line = self._line([*own, *shared])
        if line.cell_len > self.size.width:
            line = self._line([*own, *((key, "") for key, _ in shared)])
        return line

    @staticmethod
    def _line(keys: list[tuple[str, str]]) -> Text:
        line = Text()
        for key, word in keys:
            line.append(f" {key} ", style="bold reverse")
            line.append(f" {word} " if word else " ")
        return line
