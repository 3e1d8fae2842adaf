"""CaptchaImage: half-block cells from a server captcha, placeholder, round trip, snapshot."""

from __future__ import annotations

import io
from itertools import pairwise

from PIL import Image, ImageOps
from rich.color import ColorType
from textual.app import App, ComposeResult
from textual.strip import Strip

from epay_tui.server.captcha import render_png
from epay_tui.widgets.captcha import HALF_BLOCK, CaptchaImage, captcha_cells

PNG = render_png("K7XM", seed=1)
LOADING = "加载中…"


class CaptchaApp(App[None]):
    """Just the widget, as a screen would compose it."""

    def __init__(self, png: bytes | None = None) -> None:
        super().__init__()
        self.png = png

    def compose(self) -> ComposeResult:
        yield CaptchaImage(self.png, placeholder=LOADING)


def _gray(color) -> int:
    """The gray level of an explicit truecolor gray."""
    assert color is not None and color.type is ColorType.TRUECOLOR
    red, green, blue = color.triplet
    assert red == green == blue
    return red


def _cells_from_strips(strips: list[Strip]) -> list[list[tuple[int, int]]]:
    """Read (top, bottom) grays back from the rendered colours, one pair per cell."""
    rows = []
    for strip in strips:
        row = []
        for segment in strip:
            pair = (_gray(segment.style.color), _gray(segment.style.bgcolor))
            row.extend([pair] * len(segment.text))
        rows.append(row)
    return rows


def _text(strip: Strip) -> str:
    return "".join(segment.text for segment in strip)


def test_cells_shape_and_dark_ink_on_light_ground() -> None:
    cells = captcha_cells(PNG)
    assert len(cells) == 12
    assert all(len(row) == 64 for row in cells)
    values = sorted(v for row in cells for pair in row for v in pair)
    assert values[0] == 0 and values[-1] >= 250  # autocontrast stretches the range
    assert values[len(values) // 2] > 200  # the median pixel is light ground
    ink = sum(v < 128 for v in values) / len(values)
    assert 0.05 < ink < 0.4  # glyphs present, but the ground dominates


def test_cells_reject_bad_input() -> None:
    for bad in (b"", b"not a png", PNG[:100]):
        try:
            captcha_cells(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad[:12]!r}")
    try:
        captcha_cells(PNG, size=(64, 23))
    except ValueError:
        pass
    else:
        raise AssertionError("accepted an odd height")


async def test_widget_draws_half_blocks_in_explicit_grays_and_placeholder() -> None:
    app = CaptchaApp()
    async with app.run_test(size=(80, 20)) as pilot:
        widget = app.query_one(CaptchaImage)
        assert tuple(widget.size) == (64, 12)
        assert not widget.has_image
        placeholder = [_text(widget.render_line(y)) for y in range(12)]
        assert [line.strip() for line in placeholder].count(LOADING) == 1
        assert all(HALF_BLOCK not in line for line in placeholder)

        widget.set_png(PNG)
        await pilot.pause()
        assert widget.has_image
        strips = [widget.render_line(y) for y in range(12)]
        for strip in strips:
            assert _text(strip) == HALF_BLOCK * 64
            assert strip.cell_length == 64
            for segment in strip:
                _gray(segment.style.color)
                _gray(segment.style.bgcolor)

        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        assert [widget.render_line(y) for y in range(12)] == strips  # no theme colours

        for nothing in (None, b"broken"):
            widget.set_png(nothing)
            await pilot.pause()
            assert not widget.has_image
            assert LOADING in _text(widget.render_line(5))


async def test_strips_round_trip_to_the_downscaled_image() -> None:
    app = CaptchaApp(PNG)
    async with app.run_test(size=(80, 20)):
        widget = app.query_one(CaptchaImage)
        cells = _cells_from_strips([widget.render_line(y) for y in range(12)])
    assert cells == captcha_cells(PNG)
    rebuilt = Image.new("L", (64, 24))
    rebuilt.putdata([pair[half] for row in cells for half in (0, 1) for pair in row])
    with Image.open(io.BytesIO(PNG)) as original:  # the pipeline of stack-notes.md, redone
        small = original.convert("L").resize((64, 24), Image.Resampling.LANCZOS)
    assert rebuilt.tobytes() == ImageOps.autocontrast(small).tobytes()


def test_snapshot(snap_compare) -> None:
    assert snap_compare(CaptchaApp(PNG), terminal_size=(70, 14))


def test_snapshot_placeholder(snap_compare) -> None:
    assert snap_compare(CaptchaApp(), terminal_size=(70, 14))


def test_equal_neighbour_cells_share_one_segment() -> None:
    strip = CaptchaImage(PNG).render_line(0)
    assert strip.cell_length == 64
    assert all(a.style != b.style for a, b in pairwise(strip))
