"""Server error codes (and transport failures) to catalog entries with their values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from epay_tui.api import errors
from epay_tui.i18n import has, tr


def rule_list(reasons: list[str]) -> Callable[[str], str]:
    """The failed password rules, named in whatever language is current."""

    def render(lang: str) -> str:
        names = dict.fromkeys(tr(lang, f"rule.{r}") for r in reasons if has(f"rule.{r}"))
        return "、".join(names) if lang == "zh" else ", ".join(names)

    return render


def _hhmm(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%H:%M")
    except ValueError:
        return str(value)


def describe(exc: errors.ApiError) -> tuple[str, dict[str, Any]]:
    """``(catalog key, values)`` for an error; unknown codes keep their code visible."""
    if isinstance(exc, errors.TransportError):
        return "app.busy", {}
    details = dict(exc.details)
    if exc.code == "ACCOUNT_LOCKED":
        details["until"] = _hhmm(details.get("locked_until", ""))
    if exc.code == "WEAK_PASSWORD":
        details["items"] = rule_list(list(details.get("reasons", [])))
    key = f"error.{exc.code}"
    if not has(key):
        return "error.UNKNOWN", {"code": exc.code}
    return key, details
