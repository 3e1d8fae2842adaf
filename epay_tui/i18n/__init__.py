"""Message catalogs: zh_CN (default) and en, and the error-code sentences.

``tr(lang, key, **values)`` formats a catalog entry; a missing key is a bug that the
catalog test catches, never a raw key on screen (it falls back to Chinese). A catalog is
loaded when its language is first asked for: the other one stays out of start-up.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
_MODULES = {"zh": "epay_tui.i18n.zh_CN", "en": "epay_tui.i18n.en"}
_loaded: dict[str, dict[str, str]] = {}


def catalog(lang: str) -> dict[str, str]:
    """The messages of ``lang`` (Chinese for a language there is no catalog of)."""
    found = _loaded.get(lang)
    if found is None:
        module = importlib.import_module(_MODULES.get(lang, _MODULES["zh"]))
        found = _loaded[lang] = module.MESSAGES
    return found


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def tr(lang: str, key: str, **values: Any) -> str:
    """The catalog text for ``key`` in ``lang``, with ``{placeholders}`` filled."""
    text = catalog(lang).get(key) or catalog("zh").get(key)
    if text is None:
        raise KeyError(f"no catalog entry {key!r}")
    return text.format_map(_Blank(values)) if values else text


def has(key: str) -> bool:
    return key in catalog("zh")


def in_words(lang: str, kind: str, code: str) -> str:
    """A code the backend sends (an audit action, a discrepancy kind ...) in words; one
    that no catalog knows yet keeps its code rather than showing nothing."""
    key = f"{kind}.{code}"
    return tr(lang, key) if has(key) else code


def other(lang: str) -> Language:
    """The language ``f2`` switches to."""
    return "en" if lang == "zh" else "zh"
