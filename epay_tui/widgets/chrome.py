"""The app's header (title, SANDBOX, who is logged in) and key bar (this screen's keys)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import actions
from textual.app import App
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
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


def bar_key(keys: str, action: str, word: str, display: str, *, priority: bool = False) -> Binding:
    """A binding the key bar draws: ``display`` (``Enter``, ``F5``, ``1-5`` for a group
    of keys sharing ``word``) and the catalog's ``key.<word>``. ``word`` is the binding's
    id and, in English, its description for Textual's own key lists."""
    return Binding(keys, action, word, id=word, key_display=display, priority=priority)


class KeyBar(Widget):
    """The keys this screen answers now, drawn from its bindings: every shown binding
    with an id, once per id (a group of keys such as 1-5 shares one id and one
    ``key_display``), its word the catalog's ``key.<id>`` in the current language; the
    app's own keys (F1 F2 ^Q) last. A binding the screen's ``check_action`` hides is not
    drawn."""

    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: auto; max-height: 3; background: $panel; color: $text-muted; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: object) -> None:
        self.refresh()

    def retranslate(self) -> None:
        self.refresh()

    def keys(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(this screen's keys, the app's keys) as (key as shown, catalog key), in the
        order the bindings are declared. A focused field that takes a key first (a form's
        ``enter``) does not hide it: the screen's binding says what the key is for."""
        return self._drawn(self.screen), self._drawn(self.app)

    def _drawn(self, node: Screen[Any] | App[Any]) -> list[tuple[str, str]]:
        drawn: list[tuple[str, str]] = []
        seen: set[str] = set()
        for binding in Binding.make_bindings(node.BINDINGS):
            if not binding.show or binding.id is None or binding.id in seen:
                continue
            namespace, action, parameters = actions.parse(binding.action)
            if not namespace and node.check_action(action, parameters) is False:
                continue  # hidden by the screen (扫码支付's Y C X once the order is paid)
            seen.add(binding.id)
            drawn.append((self.app.get_key_display(binding), f"key.{binding.id}"))
        return drawn

    def render(self) -> Text:
        """Every key with its word; when that is too wide, the global keys (F1 F2 ^Q,
        the same on every screen) lose their words first; when even that is too wide
        (a helpdesk page with many actions), the keys go on over more lines, never cut."""
        return self._drawn_lines(self.size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._drawn_lines(width).split())

    def _drawn_lines(self, width: int) -> Text:
        lang = self.app.language
        own_keys, shared_keys = self.keys()
        own = [(key, tr(lang, word)) for key, word in own_keys]
        shared = [(key, tr(lang, word)) for key, word in shared_keys]
        line = self._line([*own, *shared])
        if line.cell_len <= width or not width:
            return line
        short = self._line([*own, *((key, "") for key, _ in shared)])
        if short.cell_len <= width:
            return short
        return self._wrapped([*own, *shared], width)

    @classmethod
    def _wrapped(cls, keys: list[tuple[str, str]], width: int) -> Text:
        """``keys`` over as many lines as they need, a key never split from its word."""
        lines: list[Text] = []
        for key in keys:
            piece = cls._line([key])
            if lines and lines[-1].cell_len + piece.cell_len <= width:
                lines[-1].append_text(piece)
            else:
                lines.append(piece)
        return Text("\n").join(lines)

    @staticmethod
    def _line(keys: list[tuple[str, str]]) -> Text:
        line = Text()
        for key, word in keys:
            line.append(f" {key} ", style="bold reverse")
            line.append(f" {word} " if word else " ")
        return line
