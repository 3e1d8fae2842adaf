"""A captcha PNG drawn with half-block characters, in fixed grays that read in any theme."""

from __future__ import annotations

import io
from functools import lru_cache
from itertools import groupby

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["CELLS_HIGH", "CELLS_WIDE", "HALF_BLOCK", "CaptchaImage", "captcha_cells"]

HALF_BLOCK = "▀"  # foreground paints the top pixel, background the bottom one
CELLS_WIDE, CELLS_HIGH = 64, 12
MAX_PIXELS = 1_000_000  # refuse bigger images before decoding them (server sends 160x60)


def captcha_cells(png: bytes, size: tuple[int, int] = (64, 24)) -> list[list[tuple[int, int]]]:
    """Shrink ``png`` to ``size`` px (grayscale, LANCZOS, autocontrast) and pair pixel rows.

    Returns ``size[1] // 2`` rows of ``size[0]`` ``(top, bottom)`` gray values (0-255).
    Raises ``ValueError`` for a bad ``size`` and for an oversized or unreadable image.
    """
    from PIL import Image, ImageOps  # after the first frame: the image arrives later

    width, height = size
    if width < 1 or height < 2 or height % 2:
        raise ValueError("size must be positive with an even height")
    try:
        with Image.open(io.BytesIO(png)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(f"captcha image too large: {image.width}x{image.height}")
            gray = image.convert("L")
    # UnidentifiedImageError and truncated data are OSError; a bad chunk CRC is SyntaxError.
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    small = ImageOps.autocontrast(gray.resize(size, Image.Resampling.LANCZOS))
    data = small.tobytes()
    rows = [data[y * width : (y + 1) * width] for y in range(height)]
    return [list(zip(rows[y], rows[y + 1], strict=True)) for y in range(0, height, 2)]


@lru_cache(maxsize=4096)
def _cell_style(top: int, bottom: int) -> Style:
    """Explicit RGB grays: never theme colours, so the image looks the same everywhere."""
    return Style(
        color=Color.from_rgb(top, top, top), bgcolor=Color.from_rgb(bottom, bottom, bottom)
    )


def _strip(row: list[tuple[int, int]]) -> Strip:
    """One cell row as a strip, runs of equal cells merged into one segment."""
    segments = [
        Segment(HALF_BLOCK * sum(1 for _ in run), _cell_style(*pair)) for pair, run in groupby(row)
    ]
    return Strip(segments, len(row))


class CaptchaImage(Widget):
    """A 64x12-cell captcha (dark ink on a light ground) or, without one, a placeholder."""

    DEFAULT_CSS = """
    CaptchaImage {
        width: 64;
        height: 12;
        color: $text-muted;
        background: $surface;
    }
    """

    placeholder: reactive[str] = reactive("")
    """Text shown centred in the same 64x12 area while there is no image."""

    def __init__(
        self,
        png: bytes | None = None,
        *,
        placeholder: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.set_reactive(CaptchaImage.placeholder, placeholder)
        self._strips: list[Strip] | None = None
        self.set_png(png)

    @property
    def has_image(self) -> bool:
        """Whether an image (rather than the placeholder) is shown."""
        return self._strips is not None

    def set_png(self, png: bytes | None) -> None:
        """Show ``png``; ``None`` or an unreadable image shows the placeholder instead."""
        try:
            cells = None if png is None else captcha_cells(png, (CELLS_WIDE, 2 * CELLS_HIGH))
        except ValueError:
            cells = None
        self._strips = None if cells is None else [_strip(row) for row in cells]
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """Return the cached image row ``y``, or a placeholder row."""
        if self._strips is not None:
            if 0 <= y < len(self._strips):
                return self._strips[y]
            return Strip.blank(CELLS_WIDE, self.rich_style)
        style = self.rich_style
        text = " ".join(self.placeholder.split())  # one line: no newlines or tabs
        if y != (CELLS_HIGH - 1) // 2 or not text:
            return Strip.blank(CELLS_WIDE, style)
        left = max(0, (CELLS_WIDE - cell_len(text)) // 2)
        return Strip([Segment(" " * left, style), Segment(text, style)]).crop_extend(
            0, CELLS_WIDE, style
        )
