"""Captcha images: size, determinism and legibility after the client's 64x24 downscale."""

from __future__ import annotations

import io
import math
import random
from functools import cache
from operator import mul

import pytest
from PIL import Image, ImageFont, ImageOps

from epay_tui.server import captcha
from epay_tui.server.captcha import CAPTCHA_ALPHABET, new_answer, render_png

SMALL = (64, 24)  # what the client draws as 64x12 half-block cells
SHIFTS_X = range(-3, 4)
SHIFTS_Y = range(-2, 3)
TEMPLATE_SEEDS = range(5)
CONFUSABLE = set("0O1IL5S2Z8B")


def shrink(png: bytes) -> Image.Image:
    """Do what the client does: LANCZOS to 64x24, grayscale, autocontrast."""
    with Image.open(io.BytesIO(png)) as im:
        return ImageOps.autocontrast(im.convert("L").resize(SMALL, Image.Resampling.LANCZOS))


def _normalized(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    centred = [v - mean for v in values]
    norm = math.sqrt(sum(v * v for v in centred)) or 1.0
    return [v / norm for v in centred]


def _window(pixels: list[list[int]], cx: int, cy: int, w: int, h: int) -> list[float]:
    """Ink values (255 - grey) of a w x h window centred at (cx, cy); outside = no ink."""
    rows, cols = len(pixels), len(pixels[0])
    x0, y0 = cx - w // 2, cy - h // 2
    return [
        255 - pixels[y][x] if 0 <= y < rows and 0 <= x < cols else 0
        for y in range(y0, y0 + h)
        for x in range(x0, x0 + w)
    ]


def _rows(image: Image.Image) -> list[list[int]]:
    data = list(image.get_flattened_data())
    return [data[i : i + image.width] for i in range(0, len(data), image.width)]


@cache
def templates(length: int) -> list[tuple[str, list[float]]]:
    """Each character rendered alone (no noise), shrunk, cut to one column slice.

    A few seeds per character, so the references cover the renderer's slight rotations.
    """
    w, h = SMALL[0] // length, SMALL[1]
    result = []
    for ch in CAPTCHA_ALPHABET:
        for seed in TEMPLATE_SEEDS:
            pixels = _rows(shrink(render_png(ch, seed=seed, noise=False)))
            ink = [(x, y) for y, row in enumerate(pixels) for x, v in enumerate(row) if v < 128]
            cx = round(sum(x for x, _ in ink) / len(ink))
            cy = round(sum(y for _, y in ink) / len(ink))
            result.append((ch, _normalized(_window(pixels, cx, cy, w, h))))
    return result


def read(png: bytes, length: int) -> str:
    """Nearest-template reader: best normalized correlation per column slice."""
    pixels = _rows(shrink(png))
    w, h = SMALL[0] // length, SMALL[1]
    refs = templates(length)
    answer = []
    for i in range(length):
        cx = i * w + w // 2
        windows = [
            _normalized(_window(pixels, cx + dx, h // 2 + dy, w, h))
            for dx in SHIFTS_X
            for dy in SHIFTS_Y
        ]
        best = max(refs, key=lambda ref: max(sum(map(mul, ref[1], win)) for win in windows))
        answer.append(best[0])
    return "".join(answer)


def test_alphabet_has_no_confusables() -> None:
    assert len(set(CAPTCHA_ALPHABET)) == len(CAPTCHA_ALPHABET) >= 10
    assert CAPTCHA_ALPHABET.isupper()
    assert CAPTCHA_ALPHABET.isalnum()
    assert not CONFUSABLE & set(CAPTCHA_ALPHABET)


def test_new_answer() -> None:
    answers = {new_answer() for _ in range(50)}
    assert len(answers) > 40
    assert all(len(a) == 4 and set(a) <= set(CAPTCHA_ALPHABET) for a in answers)
    assert len(new_answer(6)) == 6
    with pytest.raises(ValueError):
        new_answer(0)


def test_png_size_and_format() -> None:
    for length in (4, 5, 6):
        png = render_png(new_answer(length))
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG"
            assert im.size == (160, 60)


def test_rejects_bad_answers() -> None:
    for bad in ("", "AB0", "A B"):
        with pytest.raises(ValueError):
            render_png(bad)


def test_deterministic_for_seed() -> None:
    answer = new_answer()
    assert render_png(answer, seed=7) == render_png(answer, seed=7)
    assert render_png(answer.lower(), seed=7) == render_png(answer, seed=7)
    assert render_png("AC3K", seed=7) != render_png("AC4K", seed=7)
    assert render_png(answer, seed=7) != render_png(answer, seed=8)
    assert render_png(answer) != render_png(answer)  # unseeded: random noise and jitter


def test_legible_after_terminal_downscale() -> None:
    rng = random.Random(20240601)
    total, hits, misses = 30, 0, []
    for n in range(total):
        answer = "".join(rng.choice(CAPTCHA_ALPHABET) for _ in range(4))
        got = read(render_png(answer, seed=n), 4)
        if got == answer:
            hits += 1
        else:
            misses.append((answer, got))
    assert hits / total >= 0.9, misses


def test_noise_is_light() -> None:
    """Noise changes only a small share of pixels."""
    answer = new_answer()
    with (
        Image.open(io.BytesIO(render_png(answer, seed=3))) as noisy,
        Image.open(io.BytesIO(render_png(answer, seed=3, noise=False))) as clean,
    ):
        changed = sum(
            a != b
            for a, b in zip(noisy.get_flattened_data(), clean.get_flattened_data(), strict=True)
        )
    assert 0 < changed < 0.05 * 160 * 60


def test_bitmap_font_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow without FreeType: the enlarged bitmap font still gives a legible image."""
    monkeypatch.setattr(captcha, "_font", ImageFont.load_default_imagefont)
    captcha._glyph_mask.cache_clear()
    templates.cache_clear()
    try:
        rng = random.Random(7)
        answers = ["".join(rng.choice(CAPTCHA_ALPHABET) for _ in range(4)) for _ in range(10)]
        hits = sum(read(render_png(a, seed=n), 4) == a for n, a in enumerate(answers))
        assert hits >= 8
    finally:
        captcha._glyph_mask.cache_clear()
        templates.cache_clear()
