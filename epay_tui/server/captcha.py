"""Captcha answers and PNG images that stay legible when shrunk to terminal half-blocks.

The client shrinks the 160x60 image to 64x24 px (LANCZOS, grayscale, autocontrast) and
draws it as 64x12 half-block cells, so the image uses big bold glyphs, dark ink on a
light ground, little noise and an alphabet without confusable characters.
"""

from __future__ import annotations

import io
import random
import secrets
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["CAPTCHA_ALPHABET", "HEIGHT", "WIDTH", "new_answer", "render_png"]

# 16 symbols, 16 bits per 4-character answer. Left out as confusable: 0/O/D/Q, 1/I/L/J,
# T (7, Y), 2/Z, 5/S, 8/B, G (6), U/V, F and R (E, P).
CAPTCHA_ALPHABET = "34679ACEHKMNPWXY"

WIDTH, HEIGHT = 160, 60
_MARGIN = 6  # px left and right of the glyph row
_FONT_SIZE = 46
_STROKE = 2  # px; turns the default (regular) font bold
_MAX_ROTATION = 8.0  # degrees
_MAX_SHIFT = 3  # px, vertical jitter per glyph
_INK_RANGE = (15, 70)
_GROUND_RANGE = (232, 252)


def new_answer(length: int = 4, rng: random.Random | None = None) -> str:
    """Return a random answer of ``length`` characters from ``CAPTCHA_ALPHABET``.

    ``rng`` is for deterministic test servers only; by default answers come from
    ``secrets``.
    """
    if length < 1:
        raise ValueError("length must be at least 1")
    choose = rng.choice if rng is not None else secrets.choice
    return "".join(choose(CAPTCHA_ALPHABET) for _ in range(length))


def render_png(answer: str, seed: int | None = None, *, noise: bool = True) -> bytes:
    """Render ``answer`` as a 160x60 grayscale PNG; the same ``seed`` gives the same bytes.

    ``noise=False`` leaves out the lines and dots (for building reference glyphs).
    """
    text = answer.upper()
    if not text or any(ch not in CAPTCHA_ALPHABET for ch in text):
        raise ValueError("answer must be non-empty and use only CAPTCHA_ALPHABET")
    # Layout jitter and noise are not secrets: a seedable PRNG keeps tests reproducible.
    rng = random.Random(secrets.randbits(64) if seed is None else seed)  # noqa: S311
    noise_rng = random.Random(rng.getrandbits(64))  # noqa: S311 - glyphs same with/without noise

    ground = rng.randint(*_GROUND_RANGE)
    ink = rng.randint(*_INK_RANGE)
    image = Image.new("L", (WIDTH, HEIGHT), ground)
    draw = ImageDraw.Draw(image)
    if noise:
        for _ in range(2):  # thin mid-grey lines across the row, under the glyphs
            y0, y1 = noise_rng.randint(8, HEIGHT - 8), noise_rng.randint(8, HEIGHT - 8)
            draw.line([(0, y0), (WIDTH - 1, y1)], fill=noise_rng.randint(130, 170), width=1)

    slot = (WIDTH - 2 * _MARGIN) / len(text)
    box = (int((WIDTH - 2 * _MARGIN) / max(len(text), 4)), HEIGHT - 2 * _MAX_SHIFT)
    for i, ch in enumerate(text):
        glyph = _glyph_mask(ch)
        fit = (min(glyph.width, box[0]), min(glyph.height, box[1]))
        if fit != glyph.size:  # condense wide glyphs (M, W); same size alone or in a row
            glyph = glyph.resize(fit, Image.Resampling.LANCZOS)
        glyph = glyph.rotate(
            rng.uniform(-_MAX_ROTATION, _MAX_ROTATION), Image.Resampling.BICUBIC, expand=True
        )
        x = round(_MARGIN + slot * i + (slot - glyph.width) / 2)
        y = (HEIGHT - glyph.height) // 2 + rng.randint(-_MAX_SHIFT, _MAX_SHIFT)
        image.paste(ink, (x, min(max(y, 0), HEIGHT - glyph.height)), glyph)

    if noise:
        for _ in range(30):  # single-pixel speckles, light and dark
            xy = (noise_rng.randrange(WIDTH), noise_rng.randrange(HEIGHT))
            draw.point(xy, fill=noise_rng.choice((ink + 60, ground - 70)))

    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@lru_cache(maxsize=64)
def _glyph_mask(ch: str) -> Image.Image:
    """Return a tight ``L`` mask (255 = ink) of one bold glyph, about 44 px tall."""
    font = _font()
    if isinstance(font, ImageFont.FreeTypeFont):
        left, top, right, bottom = font.getbbox(ch, stroke_width=_STROKE)
        mask = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask).text(
            (-left, -top), ch, font=font, fill=255, stroke_width=_STROKE, stroke_fill=255
        )
        return mask
    # Pillow without FreeType: enlarge the built-in bitmap font, blocky but legible.
    left, top, right, bottom = font.getbbox(ch)
    small = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(small).text((-left, -top), ch, font=font, fill=255)
    scale = max(1, round(_FONT_SIZE * 0.8 / small.height))
    big = small.resize(
        (small.width * scale * 3 // 2, small.height * scale), Image.Resampling.NEAREST
    )
    return big.filter(ImageFilter.MaxFilter(3))  # a little bolder


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font (no files or network needed)."""
    return ImageFont.load_default(size=_FONT_SIZE)
