"""The scan-to-pay QR widget, decoded as a phone would read it.

Real orders are made on the live backend for every channel; the code the widget draws
(one ``▀`` per two module rows, fg = upper module, bg = lower module) is rebuilt into a
module matrix, scaled up to a picture and decoded with zxing-cpp. Alongside: explicit
black and white whatever the theme, a quiet zone of 4 modules, segno level M without
boost, and a sentence instead of a code when the terminal is too small.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import segno
import zxingcpp
from PIL import Image
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot
from textual.reactive import reactive
from textual.strip import Strip
from textual.worker import WorkerState

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.i18n import tr
from epay_tui.screens.confirm_order import ConfirmOrderScreen
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.pay import PayScreen
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.qr import QrCode
from tests.conftest import CHEN, solve_login
from tests.payment_flows import log_in, orders_of
from tests.pilot_helpers import until

SIZE = (80, 24)
CHANNELS = ("wechat", "alipay", "ccb")
CHANNEL_KEYS = {"wechat": "1", "alipay": "2", "ccb": "3"}
DARK, LIGHT = "#000000", "#ffffff"
HALF_BLOCK = "▀"
PIXELS_PER_MODULE = 8
QUIET = 4


# ---------------------------------------------------------------------------- helpers
class QrApp(App[None]):
    """A bare app holding one QrCode; ``language`` is what the widget's words follow."""

    language: reactive[str] = reactive("zh")

    def __init__(self, data: str) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        yield QrCode(self.data, id="qr")


async def chen_order(server: BackgroundServer, channel: str) -> tuple[str, str]:
    """CHEN logs in on a device, orders the agency fees and asks for ``channel``'s QR.

    Returns ``(order_no, qr_url)`` as the backend stored them.
    """
    async with ApiClient(server.url) as api:
        await solve_login(api, *CHEN)
        fees = await api.fees()
        agency = [i.id for t in fees.tags for i in t.items if i.kind == "agency"]
        assert len(agency) == 3
        order = await api.create_order(agency, new_idempotency_key())
        qr = await api.pay_order(order.order_no, channel)  # type: ignore[arg-type]
        stored = await api.get_order(order.order_no)
    assert stored.payment is not None
    assert (stored.payment.channel, stored.payment.qr_url) == (channel, qr.qr_url)
    return order.order_no, qr.qr_url


def widget_strips(qr: QrCode) -> list[Strip]:
    """What the widget renders, line by line (``render_line``)."""
    return [qr.render_line(y) for y in range(qr.size.height)]


def matrix_from_strips(strips: Sequence[Strip]) -> list[list[bool]]:
    """Module rows rebuilt from half blocks: two rows per strip, ``True`` for dark.

    Every cell must be ``▀`` with an explicit pure black or white colour on both halves.
    """
    rows: list[list[bool]] = []
    for y, strip in enumerate(strips):
        upper: list[bool] = []
        lower: list[bool] = []
        for segment in strip:
            style = segment.style
            assert style is not None and style.color is not None and style.bgcolor is not None, (
                f"line {y}: a cell without explicit colours: {segment!r}"
            )
            fg, bg = style.color.name.lower(), style.bgcolor.name.lower()
            assert fg in (DARK, LIGHT) and bg in (DARK, LIGHT), f"line {y}: colours {fg} / {bg}"
            for char in segment.text:
                assert char == HALF_BLOCK, f"line {y}: {char!r} is not a half block"
                upper.append(fg == DARK)
                lower.append(bg == DARK)
        rows += [upper, lower]
    widths = {len(r) for r in rows}
    assert len(widths) == 1, f"ragged QR rows: {sorted(widths)}"
    return rows


def picture(modules: list[list[bool]], scale: int = PIXELS_PER_MODULE) -> Image.Image:
    """The matrix as a greyscale picture, ``scale`` pixels per module (no numpy)."""
    height, width = len(modules), len(modules[0])
    small = Image.new("L", (width, height))
    small.putdata([0 if dark else 255 for row in modules for dark in row])
    return small.resize((width * scale, height * scale), Image.Resampling.NEAREST)


def decode(modules: list[list[bool]]) -> zxingcpp.Barcode:
    found = zxingcpp.read_barcodes(picture(modules), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"{len(found)} QR codes decoded"
    return found[0]


def segno_matrix(url: str) -> list[list[bool]]:
    """The reference: segno at level M without boost, quiet zone 4."""
    code = segno.make_qr(url, error="m", boost_error=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=QUIET)]


def without_padding(modules: list[list[bool]]) -> list[list[bool]]:
    """Drop the half-block padding row (odd module count) to get a square matrix."""
    width = len(modules[0])
    assert len(modules) in (width, width + 1), (len(modules), width)
    if len(modules) == width + 1:
        assert not any(modules[-1]), "the padding row under an odd matrix must be light"
    return modules[:width]


def screen_strips(app: App) -> list[Strip]:
    """Every line of the terminal as composed (what the user sees)."""
    return app.screen._compositor.render_strips()


def on_screen(app: App, region: Region) -> list[Strip]:
    """The composed terminal cropped to ``region``."""
    return [
        strip.crop(region.x, region.right) for strip in screen_strips(app)[region.y : region.bottom]
    ]


def idle(app: App) -> bool:
    """No worker runs but the pay screen's long poll (which never ends while open)."""
    return not any(
        w.state in (WorkerState.PENDING, WorkerState.RUNNING) and w.group != "follow"
        for w in app.workers
    )


async def log_in_chen(pilot: Pilot, server: BackgroundServer) -> None:
    app = pilot.app
    await log_in(pilot, server, *CHEN)
    await until(pilot, lambda: isinstance(app.screen, MenuScreen) and idle(app))


# ---------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("channel", CHANNELS)
async def test_widget_decodes_to_the_orders_qr_url(ui_server, channel):
    _, qr_url = await chen_order(ui_server, channel)
    app = QrApp(qr_url)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        qr = app.query_one(QrCode)
        assert qr.fits
        modules = matrix_from_strips(widget_strips(qr))
        barcode = decode(modules)
        assert barcode.text == qr_url
        assert barcode.ec_level == "M"
        # what the terminal shows at the widget's place decodes the same
        shown = matrix_from_strips(on_screen(app, qr.region))
        assert shown == modules
        assert decode(shown).text == qr_url


@pytest.mark.parametrize("channel", CHANNELS)
async def test_pay_screen_qr_decodes_to_the_orders_qr_url(make_ui_app, ui_server, channel):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in_chen(pilot, ui_server)
        await pilot.press("1")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, FeesScreen) and app.screen.fees is not None and idle(app)
            ),
        )
        await pilot.press("a", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmOrderScreen))
        await pilot.press(CHANNEL_KEYS[channel], "enter")
        await until(pilot, lambda: isinstance(app.screen, PayScreen))
        screen = app.screen
        assert isinstance(screen, PayScreen)
        (order,) = orders_of(ui_server, CHEN[0])
        assert (order["order_no"], order["status"], order["pay_channel"]) == (
            screen.order.order_no,
            "open",
            channel,
        )
        qr = screen.query_one(QrCode)
        await until(pilot, lambda: qr.display and qr.fits and qr.region.width > 0)
        assert qr.data == order["qr_url"]
        from_widget = matrix_from_strips(widget_strips(qr))
        assert decode(from_widget).text == order["qr_url"]
        # and from the composed screen: not clipped, not recoloured by the screen around it
        from_screen = matrix_from_strips(on_screen(app, qr.region))
        assert from_screen == from_widget
        assert decode(from_screen).text == order["qr_url"]


# ---------------------------------------------------------------------------- shape
async def test_quiet_zone_of_four_light_modules_and_level_m_without_boost(ui_server):
    _, qr_url = await chen_order(ui_server, "wechat")
    app = QrApp(qr_url)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        modules = without_padding(matrix_from_strips(widget_strips(app.query_one(QrCode))))
    size = len(modules)
    unboosted = segno.make_qr(qr_url, error="m", boost_error=False)
    assert unboosted.designator == f"{unboosted.version}-M"
    assert size == 17 + 4 * unboosted.version + 2 * QUIET
    assert modules == segno_matrix(qr_url)
    # a quiet zone of exactly four light modules on every side
    for k in range(QUIET):
        assert not any(modules[k]), f"row {k} of the quiet zone"
        assert not any(modules[size - 1 - k]), f"row {size - 1 - k} of the quiet zone"
        assert not any(row[k] for row in modules), f"column {k} of the quiet zone"
        assert not any(row[size - 1 - k] for row in modules), f"column {size - 1 - k}"
    # the finder patterns start right after it: top-left, top-right, bottom-left corners
    assert modules[QUIET][QUIET] and modules[QUIET][size - 1 - QUIET]
    assert modules[size - 1 - QUIET][QUIET]
    assert decode(modules).ec_level == "M"
    boosted = segno.make_qr(qr_url, error="m")
    if boosted.error != "M":  # boost would have raised the level: the widget must not
        assert decode(modules).ec_level != boosted.error


async def test_colours_are_explicit_black_and_white_whatever_the_theme(ui_server):
    _, qr_url = await chen_order(ui_server, "alipay")
    app = QrApp(qr_url)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        qr = app.query_one(QrCode)
        dark_theme = app.theme
        raw_before = widget_strips(qr)
        shown_before = on_screen(app, qr.region)
        for theme in ("textual-light", "solarized-light", "catppuccin-latte"):
            if theme not in app.available_themes:
                continue
            app.theme = theme
            await pilot.pause()
            assert app.theme == theme and theme != dark_theme
            assert widget_strips(qr) == raw_before, f"strips changed under {theme}"
            shown = on_screen(app, qr.region)
            assert [list(s) for s in shown] == [list(s) for s in shown_before], theme
            assert decode(matrix_from_strips(shown)).text == qr_url
        assert "textual-light" in app.available_themes  # at least one light theme was tried


async def test_a_terminal_too_small_shows_the_sentence_not_the_code(ui_server):
    _, qr_url = await chen_order(ui_server, "ccb")
    app = QrApp(qr_url)
    async with app.run_test(size=(40, 15)) as pilot:
        await pilot.pause()
        qr = app.query_one(QrCode)
        width, height = qr.needed
        assert (width, height) == (len(segno_matrix(qr_url)[0]), (width + 1) // 2)
        assert not qr.fits
        room_x, room_y = qr.around  # the room its screen needs beside/around the code
        sentence = tr("zh", "qr.too_small", width=width + room_x, height=height + room_y)
        lines = [strip.text for strip in screen_strips(app)]
        assert not any(HALF_BLOCK in line for line in lines), "a clipped code is drawn"
        visible = "".join("".join(line.split()) for line in lines)
        assert "".join(sentence.split()) in visible, (
            f"the sentence is not wholly on screen:\n{sentence}\n--- screen ---\n"
            + "\n".join(lines)
        )
