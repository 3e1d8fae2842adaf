"""Message catalogs: zh_CN (default) and en, and the error-code sentences.

``tr(lang, key, **values)`` formats a catalog entry; a missing key is a bug that the
catalog test catches, never a raw key on screen (it falls back to Chinese).
"""

from __future__ import annotations

from typing import Any, Literal

from epay_tui.i18n import en, zh_CN

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
CATALOGS: dict[str, dict[str, str]] = {"zh": zh_CN.MESSAGES, "en": en.MESSAGES}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def tr(lang: str, key: str, **values: Any) -> str:
    """The catalog text for ``key`` in ``lang``, with ``{placeholders}`` filled."""
    text = CATALOGS.get(lang, zh_CN.MESSAGES).get(key) or zh_CN.MESSAGES.get(key)
    if text is None:
        raise KeyError(f"no catalog entry {key!r}")
    return text.format_map(_Blank(values)) if values else text


def has(key: str) -> bool:
    return key in zh_CN.MESSAGES


def in_words(lang: str, kind: str, code: str) -> str:
    """A code the backend sends (an audit action, a discrepancy kind ...) in words; one
    that no catalog knows yet keeps its code rather than showing nothing."""
    key = f"{kind}.{code}"
    return tr(lang, key) if has(key) else code


def other(lang: str) -> Language:
    """The language ``f2`` switches to."""
    return "en" if lang == "zh" else "zh"
