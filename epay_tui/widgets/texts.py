"""Widgets whose words follow the app's language, switched live with f2.

Anything with a ``retranslate()`` method is re-rendered by the app when the language
changes (no per-widget watchers: those would keep closed screens alive).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

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
        self.update(self.text())

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
