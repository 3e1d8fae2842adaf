"""Widgets whose words follow the app's language, switched live with f2.

Anything with a ``retranslate()`` method is re-rendered by the app when the language
changes (no per-widget watchers: those would keep closed screens alive).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from rich.cells import cell_len
from textual.widgets import Button, Static

from epay_tui.i18n import tr


@runtime_checkable
class Retranslatable(Protocol):
    """A widget or screen whose words the app redraws when the language changes."""

    def retranslate(self) -> None: ...


class Tr(Static):
    """A line of catalog text; ``show(key, **values)`` changes it, ``clear()`` empties it."""

    def __init__(self, key: str = "", *, id: str | None = None, classes: str = "", **values: Any):
        super().__init__("", id=id, classes=classes, markup=False)
        self.key, self.values = key, values

    def on_mount(self) -> None:
        self.retranslate()

    def text(self) -> str:
        """The entry in the current language; callable values are given the language."""
        if not self.key:
            return ""
        lang = self.app.language  # type: ignore[attr-defined]
        values = {k: v(lang) if callable(v) else v for k, v in self.values.items()}
        return tr(lang, self.key, **values)

    def retranslate(self) -> None:
        old, new = self.content, self.text()
        if new == old:
            return
        self.update(new, layout=not self._same_box(old, new))

    def _same_box(self, old: object, new: str) -> bool:
        """Whether ``new`` takes the room ``old`` took: both one line that fits the width
        (and, for a widget as wide as its text, as wide as each other). Then the screen
        needs a repaint of this line, not a new layout (a key on 自助缴费 changes 合计)."""
        width = self.content_size.width
        if not isinstance(old, str) or width <= 0 or "\n" in old or "\n" in new:
            return False
        if cell_len(old) > width or cell_len(new) > width:
            return False
        return (
            not self.styles.width
            or not self.styles.width.is_auto
            or (cell_len(old) == cell_len(new))
        )

    def show(self, key: str, *, severity: str | None = None, **values: Any) -> None:
        """Show ``key``; ``severity`` (``error``/``ok``) colours it."""
        self.key, self.values = key, values
        self.set_class(severity == "error", "-error")
        self.set_class(severity == "ok", "-ok")
        if self.is_mounted:
            self.retranslate()

    def clear(self) -> None:
        self.show("")


class TrButton(Button):
    """A button labelled from the catalog."""

    def __init__(self, key: str, *, id: str | None = None, variant: str = "default", **kw: Any):
        super().__init__("", id=id, variant=variant, compact=True, **kw)  # type: ignore[arg-type]
        self.key = key

    def on_mount(self) -> None:
        self.retranslate()

    def retranslate(self) -> None:
        self.label = tr(self.app.language, self.key)  # type: ignore[attr-defined]
