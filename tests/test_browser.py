"""``epay-tui web`` in real headless Chromium, as a kiosk runs it.

The real ``epay-tui web`` runs as a subprocess against the in-process ``ui_server`` (dev
hooks on: the test reads captcha answers from ``/sandbox/captcha/latest``). Chromium is
the system's (Debian's ``chromium``, installed by ``.ci/run`` from ``.ci/apt-packages``),
driven by Playwright for Python; no browser is downloaded.

The test's eyes: xterm.js draws on a canvas, so the text on screen is read from the very
bytes the page's websocket receives, fed into a ``pyte`` terminal of the page's size;
the QR code is decoded with zxing-cpp from a screenshot of the page. Keys are typed
into the page and nothing is ever clicked.

Every wait polls with a deadline; the server and every client process it started are
ended (by their process group) at the end.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen

import pyte
import pytest
import zxingcpp
from PIL import Image

from epay_tui.api.client import ApiClient
from epay_tui.server.runner import BackgroundServer
from tests.conftest import CHEN, TEN_AM, RunningClock, solve_login

REPO = Path(__file__).resolve().parents[1]
DEADLINE = 30.0
CHROMIUM = os.environ.get("EPAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


# ---------------------------------------------------------------------------- processes
def web_env(tmp_path: Path) -> dict[str, str]:
    """Private XDG dirs and HOME; this checkout's package first on the path (so the
    server and every client process it starts run this code, installed or not)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EPAY_", "TEXTUAL", "XDG_")) and k not in ("COLUMNS", "LINES")
    }
    home = tmp_path / "home"
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        (home / name.lower()).mkdir(parents=True, exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(home / name.lower())
    env.update(
        HOME=str(home),
        LANG="C.UTF-8",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return env


class Output:
    """A pipe drained in a thread (a full pipe would stall the process)."""

    def __init__(self, stream: Any) -> None:
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self._lock:
                self._chunks.append(chunk)

    def bytes(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    def text(self) -> str:
        return self.bytes().decode("utf-8", "replace")

    def join(self) -> None:
        self._thread.join(timeout=DEADLINE)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := condition()):
        assert time.monotonic() < deadline, f"never within {timeout} s: {what}"
        time.sleep(0.05)
    return got


class Web:
    """``epay-tui web`` as a subprocess in a process group of its own."""

    def __init__(self, args: list[str], tmp_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "epay_tui", "web", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=web_env(tmp_path),
            cwd=tmp_path,
            start_new_session=True,
        )
        self.stdout, self.stderr = Output(self.process.stdout), Output(self.process.stderr)

    def url(self) -> str:
        """The address it says it serves, once it says so."""

        def said() -> str | None:
            if self.process.poll() is not None:
                pytest.fail(f"epay-tui web exited: {self.stdout.text()} {self.stderr.text()}")
            for line in self.stdout.text().splitlines():
                if line.startswith("epay-tui web: serving "):
                    return line.split()[3]
            return None

        return wait_for(said, "epay-tui web says where it serves")

    def clients(self) -> list[int]:
        """Process ids of the client processes running under it (one per page)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                pgid = int(stat.rsplit(")", 1)[1].split()[2])
                client = cmdline[1:3] == [b"-m", b"epay_tui"] and b"web" not in cmdline
                if pgid == self.process.pid and client:
                    found.append(int(entry.name))
        return found

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=DEADLINE)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.stdout.join()
            self.stderr.join()


@pytest.fixture
def clock() -> RunningClock:
    """Real time from 10:00 on a term day (the client processes keep real time)."""
    return RunningClock(TEN_AM)


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[Callable[..., Web]]:
    started: list[Web] = []

    def _start(*args: str) -> Web:
        web = Web(list(args), tmp_path)
        started.append(web)
        return web

    yield _start
    for web in started:
        web.close()


@pytest.fixture
def web(ui_server: BackgroundServer, start_web) -> Web:
    return start_web("--port", "0", "--server", ui_server.url)


# ---------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's chromium (listed in"
            " .ci/apt-packages; .ci/run installs it) or set EPAY_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


class Screen:
    """What a page's terminal shows: the bytes its websocket receives, in pyte."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.sockets = 0
        self.size: tuple[int, int] = (0, 0)
        self.screen = pyte.Screen(80, 24)
        self._stream = pyte.Stream(self.screen)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        page.on("websocket", self._opened)

    def _opened(self, socket: Any) -> None:
        query = parse_qs(urlsplit(socket.url).query)
        self.size = (int(query["width"][0]), int(query["height"][0]))
        self.sockets += 1
        self.screen = pyte.Screen(*self.size)
        self._stream = pyte.Stream(self.screen)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        socket.on("framereceived", self._frame)
        socket.on("framesent", self._sent)

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self._stream.feed(self._decoder.decode(payload))

    def _sent(self, payload: str | bytes) -> None:
        message = json.loads(payload)
        if message[0] == "resize":
            self.size = (message[1]["width"], message[1]["height"])
            self.screen.resize(self.size[1], self.size[0])

    def text(self) -> str:
        """The screen's words, whitespace removed."""
        rows = (
            "".join(self.screen.buffer[y][x].data for x in range(self.screen.columns))
            for y in range(self.screen.lines)
        )
        return "".join("".join(rows).split())

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
        """Poll ``condition()`` (letting the page's events in) until it is truthy."""
        deadline = time.monotonic() + timeout
        while not (got := condition()):
            if time.monotonic() > deadline:
                pytest.fail(f"never within {timeout} s: {what}\n{self.text()}")
            self.page.wait_for_timeout(50)
        return got

    def shows(self, *words: str) -> None:
        self.wait(lambda: all("".join(w.split()) in self.text() for w in words), f"{words}")

    def qr(self) -> str | None:
        """The text of the one QR code in a screenshot of the page, if any."""
        shot = Image.open(io.BytesIO(self.page.screenshot())).convert("L")
        found = zxingcpp.read_barcodes(shot, formats=zxingcpp.BarcodeFormat.QRCode)
        return found[0].text if len(found) == 1 else None


@pytest.fixture
def open_page(chromium) -> Iterator[Callable[[str], tuple[Any, Screen, list[str]]]]:
    """``open_page(url)`` -> (page, its Screen, every URL it requested), at 1280x800."""
    contexts = []

    def _open(url: str) -> tuple[Any, Screen, list[str]]:
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        page = context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("websocket", lambda socket: requested.append(socket.url))
        screen = Screen(page)
        page.goto(url)
        return page, screen, requested

    yield _open
    for context in contexts:
        context.close()


# ---------------------------------------------------------------------------- the backend
def api(server: BackgroundServer, call: Callable[[ApiClient], Any]) -> Any:
    """``call(client)`` with a fresh client, in a thread of its own (Playwright's sync API
    holds this thread's event loop)."""

    async def run() -> Any:
        async with ApiClient(server.url) as client:
            return await call(client)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=DEADLINE)


def captchas_issued(server: BackgroundServer) -> str | None:
    """The id of the last captcha the backend issued (None before any)."""
    from epay_tui.api.errors import NotFound

    async def latest(client: ApiClient) -> str | None:
        try:
            return (await client.latest_captcha()).captcha_id
        except NotFound:
            return None

    return api(server, latest)


def chens_orders(server: BackgroundServer) -> list[Any]:
    """陈静's orders, asked by her own client (another device of hers)."""

    async def orders(client: ApiClient) -> list[Any]:
        await solve_login(client, *CHEN)
        return (await client.list_orders()).orders

    return api(server, orders)


def off_host(requested: list[str], url: str) -> list[str]:
    host = urlsplit(url).netloc
    return [r for r in requested if not r.startswith("data:") and urlsplit(r).netloc != host]


# ---------------------------------------------------------------------------- tests
def test_a_kiosk_browser_logs_in_by_keys_alone_and_pays_by_the_qr_on_its_screen(
    ui_server: BackgroundServer, web: Web, open_page
) -> None:
    url = web.url()
    before = captchas_issued(ui_server)
    page, screen, requested = open_page(url)
    school = api(ui_server, lambda client: client.meta()).school
    assert page.title() == school

    # Typed at once, before the client has drawn anything, with no click: the keys are
    # held and land in 学号 and 密码.
    page.keyboard.type(CHEN[0])
    page.keyboard.press("Tab")
    page.keyboard.type(CHEN[1])
    page.keyboard.press("Tab")
    captcha = screen.wait(
        lambda: (issued := captchas_issued(ui_server)) != before and issued, "a captcha"
    )
    answer = api(ui_server, lambda client: client.latest_captcha())
    assert answer.captcha_id == captcha
    cols, rows = screen.size
    assert cols >= 80 and rows >= 24, screen.size
    screen.shows("学生缴费登录", "验证码")
    page.keyboard.type(answer.answer)
    page.keyboard.press("Enter")

    screen.shows("自助缴费", "退出登录")
    page.keyboard.press("1")
    screen.shows("去支付", "教材费", "¥420.00")  # her unpaid items loaded (not the headings)
    page.keyboard.press("a")
    screen.shows("已选3项", "合计¥630.00")  # 教材费, 保险费, 体检费 (the rest is paid)
    page.keyboard.press("Enter")
    screen.shows("确认订单", "提交支付")
    page.keyboard.press("Enter")
    screen.shows("扫码支付")

    qr = screen.wait(screen.qr, "a QR code that decodes from a screenshot of the page")
    (order,) = chens_orders(ui_server)
    assert order.status == "open" and order.payment is not None
    assert order.payment.qr_url == qr

    paid = api(ui_server, lambda phone: phone.sandbox_pay(qr, "success"))
    assert paid.trade_state == "SUCCESS"
    screen.wait(lambda: chens_orders(ui_server)[0].status == "paid", "the order paid")
    screen.shows("支付成功", order.order_no)
    assert screen.wait(lambda: screen.qr() is None, "the QR gone from the page")

    assert off_host(requested, url) == []
    assert screen.sockets == 1
    assert "Traceback" not in web.stdout.text() + web.stderr.text()


def test_the_page_says_when_its_client_ends_and_a_reload_starts_a_new_one(
    ui_server: BackgroundServer, web: Web, open_page
) -> None:
    url = web.url()
    page, screen, requested = open_page(url)
    screen.shows("学生缴费登录")
    (first,) = screen.wait(web.clients, "one client process")
    assert not page.locator("#ended").is_visible()

    page.keyboard.press("Control+q")
    screen.wait(lambda: page.locator("#ended").is_visible(), "the page says the session ended")
    ended = page.locator("#ended").inner_text()
    assert "会话已结束，请刷新页面" in ended and "Session ended" in ended
    screen.wait(lambda: web.clients() == [], "the client process gone")

    with page.expect_navigation():
        page.keyboard.press("Enter")  # any key starts again
    screen.wait(lambda: screen.sockets == 2, "the reloaded page's own connection")
    screen.shows("学生缴费登录")  # drawn anew: the screen read from the new connection only
    (second,) = screen.wait(web.clients, "a new client process")
    assert second != first
    assert not page.locator("#ended").is_visible()
    assert off_host(requested, url) == []


def test_without_a_server_one_sandbox_backend_serves_every_page(start_web, open_page) -> None:
    web = start_web("--port", "0")
    url = web.url()
    with urlopen(f"{url}/health", timeout=DEADLINE) as answer:  # what autostart waits on
        assert json.load(answer) == {"status": "ok"}
    pages = [open_page(url) for _ in range(2)]
    for page, screen, _ in pages:
        assert page.title() == "常州工程职业技术学院"  # the demo college's /meta
        screen.shows("学生缴费登录", "沙箱")
    backend = web.stdout.text().split("(backend ", 1)[1].split(")", 1)[0]
    commands = [
        (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0") for pid in web.clients()
    ]
    assert len(commands) == 2
    assert all(c[3:5] == [b"--server", backend.encode()] for c in commands), commands


# ---------------------------------------------------------------------------- the command
def test_a_non_loopback_host_needs_public_and_is_warned_about(start_web) -> None:
    refused = start_web("--host", "0.0.0.0", "--port", "0")
    assert refused.process.wait(timeout=DEADLINE) == 2
    refused.stderr.join()
    assert "not a loopback address" in refused.stderr.text()
    assert "--public" in refused.stderr.text()
    assert refused.stdout.text() == ""

    public = start_web("--host", "0.0.0.0", "--port", "0", "--public")
    url = public.url()
    assert url.startswith("http://0.0.0.0:")
    warning = " ".join(public.stderr.text().split())
    assert "WARNING" in warning
    assert "anyone who reaches" in warning and "no login of its own" in warning


def test_the_client_writes_only_textual_serves_protocol_to_stdout(
    ui_server: BackgroundServer, tmp_path: Path
) -> None:
    """Run the client as textual-serve does; its stdout must parse, to the last byte, as
    the prelude then packets: one stray print would break every browser's session."""
    env = web_env(tmp_path)
    env.update(
        TEXTUAL_DRIVER="textual.drivers.web_driver:WebDriver",
        TEXTUAL_COLOR_SYSTEM="truecolor",
        COLUMNS="80",
        ROWS="24",
    )
    before = captchas_issued(ui_server)
    client = subprocess.Popen(
        [sys.executable, "-m", "epay_tui", "--server", ui_server.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        stdout, stderr = Output(client.stdout), Output(client.stderr)
        wait_for(lambda: captchas_issued(ui_server) != before, "the login screen's captcha")
        quit_meta = json.dumps({"type": "quit"}).encode()
        assert client.stdin is not None
        client.stdin.write(b"M" + len(quit_meta).to_bytes(4, "big") + quit_meta)
        client.stdin.flush()
        assert client.wait(timeout=DEADLINE) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(client.pid, signal.SIGKILL)
        client.wait()
    stdout.join()
    stderr.join()
    data = stdout.bytes()
    prelude = b"__GANGLION__\n"
    assert data.startswith(prelude), data[:200]
    at, kinds = len(prelude), set()
    while at < len(data):
        kind, size = data[at : at + 1], int.from_bytes(data[at + 1 : at + 5], "big")
        assert kind in (b"D", b"M", b"P") and at + 5 + size <= len(data), data[at : at + 80]
        kinds.add(kind)
        at += 5 + size
    assert at == len(data) and b"D" in kinds
    assert "Traceback" not in stderr.text(), stderr.text()
