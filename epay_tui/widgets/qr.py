"""A scan-to-pay QR code drawn with half blocks, black on white whatever the theme.

segno at level M without boost (boost silently grows the code), quiet zone of 4
modules, one ``▀`` per two module rows: the foreground is the upper module, the
background the lower one, both explicit black or white. When the widget is too small
for the whole code it says so in words instead of drawing a code no phone can read.
"""

from __future__ import annotations

import re

import segno
from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from epay_tui.i18n import tr

QUIET_ZONE = 4
SENTENCE_WIDTH = 30
HALF_BLOCK = "▀"
_DARK, _LIGHT = "#000000", "#ffffff"
_STYLES = {
    (top, bottom): Style(color=_DARK if top else _LIGHT, bgcolor=_DARK if bottom else _LIGHT)
    for top in (False, True)
    for bottom in (False, True)
}


def qr_modules(data: str) -> list[list[bool]]:
    """The code's modules with the quiet zone, ``True`` for dark."""
    code = segno.make_qr(data, error="m", boost_error=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=QUIET_ZONE)]


def qr_strips(modules: list[list[bool]]) -> list[Strip]:
    """Two module rows per terminal row; the odd last row pairs with the light zone."""
    strips = []
    for y in range(0, len(modules), 2):
        top = modules[y]
        bottom = modules[y + 1] if y + 1 < len(modules) else [False] * len(top)
        segments: list[Segment] = []
        for pair in zip(top, bottom, strict=True):
            style = _STYLES[pair]
            if segments and segments[-1].style is style:
                segments[-1] = Segment(segments[-1].text + HALF_BLOCK, style)
            else:
                segments.append(Segment(HALF_BLOCK, style))
        strips.append(Strip(segments, len(top)))
    return strips


class QrCode(Widget):
    """Shows ``data`` as a QR code sized to fit, or a sentence when it cannot fit."""

    DEFAULT_CSS = "QrCode { width: auto; height: auto; }"

    def __init__(
        self, data: str = "", *, around: tuple[int, int] = (0, 0), id: str | None = None
    ) -> None:
        """``around`` is the room the screen needs beside and above/below the code, so the
        "too small" sentence can name the whole terminal size that is needed."""
        super().__init__(id=id)
        self.around = around
        self.modules: list[list[bool]] = []
        self._strips: list[Strip] = []
        self.data = ""
        self.fits = True
        if data:
            self.set_data(data)

    def retranslate(self) -> None:
        self.refresh()

    def set_data(self, data: str) -> None:
        self.data = data
        self.modules = qr_modules(data) if data else []
        self._strips = qr_strips(self.modules)
        self.refresh(layout=True)

    @property
    def needed(self) -> tuple[int, int]:
        """Cells needed: ``(width, height)``."""
        return (len(self.modules[0]) if self.modules else 0, len(self._strips))

    def get_content_width(self, container: Size, viewport: Size) -> int:
        """The code's width when the container has room for the whole code, else all of it."""
        width, height = self.needed
        self.fits = width <= container.width and height <= container.height
        return width if self.fits else min(container.width, SENTENCE_WIDTH)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.needed[1] if self.fits else len(self._sentence(width))

    def _sentence(self, width: int) -> list[str]:
        """The "too small" sentence, wrapped at spaces (or anywhere in CJK) by cells."""
        need_width, need_height = self.needed
        text = tr(
            self.app.language,
            "qr.too_small",
            width=need_width + self.around[0],
            height=need_height + self.around[1],
        )
        width = max(width, 1)
        lines, line = [], ""
        for word in re.findall(r"\S+\s*|\s+", text):
            if cell_len(line + word.rstrip()) <= width:
                line += word
                continue
            if line.strip():
                lines.append(line.rstrip())
                line = ""
            for char in word:  # a word (or a CJK run) longer than a line
                if cell_len(line + char) > width:
                    lines.append(line.rstrip())
                    line = ""
                line += char
        return [*lines, line.rstrip()]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not self._strips:
            return Strip.blank(width)
        if self.fits:
            return self._strips[y] if y < len(self._strips) else Strip.blank(width)
        lines = self._sentence(width)
        text = lines[y] if y < len(lines) else ""
        return Strip([Segment(text)], cell_len(text)).extend_cell_length(width)
