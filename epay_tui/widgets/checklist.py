"""The live password checklist: each rule of api/rules.py ticks as the student types."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from epay_tui.api import rules
from epay_tui.i18n import tr

CHECKED_RULES = (
    "TOO_SHORT",
    "NEEDS_LETTER",
    "NEEDS_DIGIT",
    "CONTAINS_USERNAME",
    "INITIAL_PATTERN",
    "COMMON",
)
"""The six items of ui.md (TOO_LONG shares the 8-32 line with TOO_SHORT)."""


class PasswordChecklist(Widget):
    DEFAULT_CSS = "PasswordChecklist { height: auto; min-height: 1; }"

    def __init__(self, username: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.username = username
        self.failed: set[str] = set(CHECKED_RULES)
        self.typed = False

    def retranslate(self) -> None:
        self.refresh()

    def check(self, password: str) -> list[str]:
        """Re-check ``password``; returns the failed reasons (api/rules.py)."""
        reasons = rules.password_problems(password, self.username)
        self.failed = {"TOO_SHORT" if r == "TOO_LONG" else r for r in reasons}
        self.typed = bool(password)
        self.refresh()
        return reasons

    def render(self) -> Text:
        """The items packed into lines; an item is never split between two lines."""
        lines = [Text()]
        for rule in CHECKED_RULES:
            ok = self.typed and rule not in self.failed
            item = Text(
                "✓ " if ok else "✗ " if self.typed else "· ",
                style="bold green" if ok else "bold red" if self.typed else "dim",
            )
            item.append(tr(self.app.language, f"rule.{rule}") + "  ")
            if lines[-1].cell_len and lines[-1].cell_len + item.cell_len - 2 > self.size.width:
                lines.append(Text())
            lines[-1].append_text(item)
        return Text("\n").join(lines)
