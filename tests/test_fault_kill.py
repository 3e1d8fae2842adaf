"""The real client killed (SIGKILL) mid-payment, then started again.

``python -m epay_tui.cli --server URL`` runs on the slave side of a pty (80x24,
TERM=xterm-256color, private XDG dirs and HOME, shared by both runs as on one machine).
Keys are written to the master side; a reader thread feeds everything the client prints
into a ``pyte`` terminal emulator, whose cells are what the assertions read (words, and
the QR code decoded from the cells' colours). The backend is the in-process
``ui_server``, read in-process (captcha answers, orders, item locks, gateway trades); it
keeps real time here, as the client process does, so the countdown on screen is right.

Every wait has a deadline and polls; every client is killed and reaped at the end.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyte
import pytest
import zxingcpp
from PIL import Image

from epay_tui.api.client import ApiClient
from epay_tui.server.runner import BackgroundServer
from tests.conftest import NEW_ZHANG, TEN_AM, ZHANG, RunningClock
from tests.invariants import assert_store_invariants, rows
from tests.payment_flows import AGENCY, FISCAL, fee_states, orders_of

ROWS, COLS = 24, 80
DEADLINE = 30.0
CAPTCHA_ROW = "▀" * 64
DARK = "000000"


# ---------------------------------------------------------------------------- the terminal
def text_of(screen: pyte.Screen) -> list[str]:
    """The screen's rows; the empty stub cell after a wide (CJK) glyph is dropped."""
    return [
        "".join(screen.buffer[y][x].data for x in range(screen.columns))
        for y in range(screen.lines)
    ]


def squeezed(text: str) -> str:
    """``text`` without any whitespace (ASCII or the ideographic space)."""
    return "".join(text.split())


class Terminal:
    """One client process on a pty; its output is read in a thread into a pyte screen."""

    def __init__(self, url: str, env: dict[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "epay_tui.cli", "--server", url],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group: killed as a whole
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master
        self.screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.Stream(self.screen)
        self._raw: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._pump, name="pty-reader", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        """Drain the pty until EOF (a full pty would block the client)."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the client and all its children are gone
                chunk = b""
            text = decoder.decode(chunk, final=not chunk)
            with self._lock:
                self._raw.append(text)
                self._stream.feed(text)
            if not chunk:
                return

    # ------------------------------------------------------------ reading
    def rows(self) -> list[str]:
        with self._lock:
            return text_of(self.screen)

    def text(self) -> str:
        """What the screen shows now, whitespace removed (compare words, not layout)."""
        return squeezed("\n".join(self.rows()))

    def raw(self) -> str:
        """Everything the client wrote to the terminal so far."""
        with self._lock:
            return "".join(self._raw)

    def qr_text(self) -> str | None:
        """The text a phone reads from the half-block QR code on screen (None: no code)."""
        with self._lock:
            cells = [
                [self.screen.buffer[y][x] for x in range(COLS)]
                for y in range(ROWS)
                if any(self.screen.buffer[y][x].data == "▀" for x in range(COLS))
            ]
        if not cells:
            return None
        modules: list[list[bool]] = []
        for row in cells:
            code = [c for c in row if c.data == "▀"]
            modules += [[c.fg == DARK for c in code], [c.bg == DARK for c in code]]
        width = max(len(r) for r in modules)
        modules = [r + [False] * (width - len(r)) for r in modules]
        small = Image.new("L", (width, len(modules)))
        small.putdata([0 if dark else 255 for row in modules for dark in row])
        big = small.resize((width * 8, len(modules) * 8), Image.Resampling.NEAREST)
        found = zxingcpp.read_barcodes(big)
        return found[0].text if len(found) == 1 else None

    def dump(self) -> str:
        return "\n".join(f"|{row}|" for row in self.rows())

    # ------------------------------------------------------------ driving
    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
        """Poll ``condition()`` until it is truthy; fail with the screen if it never is."""
        deadline = time.monotonic() + timeout
        while True:
            got = condition()
            if got:
                return got
            if self.process.poll() is not None:
                pytest.fail(
                    f"client exited ({self.process.returncode}) before: {what}\n"
                    f"{self.dump()}\n{self.raw()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"never reached within {timeout} s: {what}\n{self.dump()}")
            time.sleep(0.05)

    def shows(self, *words: str, timeout: float = DEADLINE) -> None:
        self.wait(
            lambda: all(squeezed(w) in self.text() for w in words), f"screen shows {words}", timeout
        )

    # ------------------------------------------------------------ ending
    def kill(self) -> int:
        """SIGKILL to the client's process group; reaped; the reader sees EOF."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        else:
            self.process.wait()
            self._reader.join(timeout=DEADLINE)
        if not self._reader.is_alive():
            os.close(self.master)


@pytest.fixture
def clock() -> RunningClock:
    """The backend runs in real time from 10:00 on a term day: the client, in another
    process on this machine's clock, follows it by /meta (so 剩余支付时间 is 14:xx at any
    hour, never cut short by a closing time near midnight)."""
    return RunningClock(TEN_AM)


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: private XDG dirs and HOME, xterm-256color, UTF-8, no keyring."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EPAY_", "TEXTUAL", "XDG_", "LC_"))
        and k not in ("COLUMNS", "LINES", "LANGUAGE", "COLORTERM")
    }
    home = tmp_path / "home"
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        folder = home / name.lower()
        folder.mkdir(parents=True)
        env[f"XDG_{name}_HOME"] = str(folder)
    env.update(
        HOME=str(home),
        TERM="xterm-256color",
        COLORTERM="truecolor",  # exact #000000/#ffffff, so the QR reads back from the cells
        LANG="C.UTF-8",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return env


@pytest.fixture
def start_client(ui_server: BackgroundServer, client_env, tmp_path) -> Iterator:
    """``start_client()`` -> a Terminal running the client against ``ui_server``."""
    started: list[Terminal] = []

    def _start() -> Terminal:
        terminal = Terminal(ui_server.url, client_env, tmp_path)
        started.append(terminal)
        return terminal

    yield _start
    for terminal in started:
        terminal.close()


def assert_no_traceback(*terminals: Terminal) -> None:
    for terminal in terminals:
        assert "Traceback" not in terminal.raw(), terminal.raw()[-3000:]


# ---------------------------------------------------------------------------- backend
def orders(server: BackgroundServer) -> list[dict[str, Any]]:
    return orders_of(server, ZHANG[0])


def newest_captcha(server: BackgroundServer) -> tuple[int, str]:
    """(seq, answer) of the last captcha the backend issued; (0, "") before any."""
    found = rows(server, "SELECT seq, answer FROM captchas ORDER BY seq DESC LIMIT 1")
    return (found[0]["seq"], found[0]["answer"]) if found else (0, "")


def locked_by(server: BackgroundServer, order_no: str) -> list[str]:
    """Names of the fee items ``order_no`` holds in ``item_locks``."""
    return sorted(
        r["name"]
        for r in rows(
            server,
            "SELECT f.name FROM item_locks l JOIN fee_items f ON f.id = l.item_id"
            " WHERE l.order_no=?",
            order_no,
        )
    )


def successful_trades(server: BackgroundServer, order_no: str) -> list[dict[str, Any]]:
    """The gateway's trades for ``order_no`` that took the money."""
    return rows(server, "SELECT * FROM gw_trades WHERE order_no=? AND state='SUCCESS'", order_no)


def phone_pays(server: BackgroundServer, qr_url: str) -> None:
    """The payer's phone pays on the pay link; then the gateway's notify is recorded.

    The backend's tick may be the one delivering that notify, so the answer can come
    before the order is marked paid: wait for it.
    """

    async def pay() -> str:
        async with ApiClient(server.url) as phone:
            return (await phone.sandbox_pay(qr_url, "success")).trade_state

    assert asyncio.run(pay()) == "SUCCESS"
    deadline = time.monotonic() + DEADLINE
    while orders(server)[0]["status"] != "paid":
        assert time.monotonic() < deadline, f"the payment was never recorded: {orders(server)}"
        time.sleep(0.05)


# ---------------------------------------------------------------------------- flows
def log_in(term: Terminal, server: BackgroundServer, password: str, captchas_before: int) -> None:
    """On 学生缴费登录: wait for this client's captcha on screen, type 学号, 密码, 验证码."""
    term.shows("学生缴费登录")
    term.wait(
        lambda: (
            newest_captcha(server)[0] > captchas_before
            and any(CAPTCHA_ROW in row for row in term.rows())
        ),
        "the captcha drawn",
    )
    _, answer = newest_captcha(server)
    term.type(f"{ZHANG[0]}\t{password}\t{answer}\r")


def pay_and_kill(term: Terminal, server: BackgroundServer) -> dict[str, Any]:
    """Forced 修改密码, 自助缴费, 全选, 去支付, 提交支付; SIGKILL once the order has a QR."""
    log_in(term, server, ZHANG[1], captchas_before=0)
    term.shows("修改密码", "确认新密码")
    term.type(f"{NEW_ZHANG}\t{NEW_ZHANG}\r")
    term.shows("自助缴费", "退出登录")
    term.type("1")
    term.shows("去支付", "学费", "住宿费", "未缴")
    term.type("a")
    term.shows("合计¥7,700.00")
    term.type("\r")
    term.shows("确认订单", "提交支付")
    term.type("\r")
    (order,) = term.wait(
        lambda: [o for o in orders(server) if o["qr_url"]], "an order with a QR link"
    )
    assert term.kill() == -signal.SIGKILL
    return order


def assert_open_and_locked(server: BackgroundServer, order_no: str) -> None:
    """Exactly one order, still open with its QR; its items locked by it; nothing paid."""
    (order,) = orders(server)
    assert (order["order_no"], order["status"]) == (order_no, "open")
    assert order["qr_url"] and order["receipt_no"] is None and order["paid_at"] is None
    assert locked_by(server, order_no) == sorted(FISCAL)
    assert fee_states(server, ZHANG[0]) == {
        **dict.fromkeys(FISCAL, "in_order"),
        **dict.fromkeys(AGENCY, "unpaid"),
    }
    assert successful_trades(server, order_no) == []
    assert_store_invariants(server, settled=False)


def assert_paid_once(server: BackgroundServer, order_no: str) -> dict[str, Any]:
    """Exactly one order, paid once, receipted; its items paid and no longer locked."""
    (order,) = orders(server)
    assert (order["order_no"], order["status"]) == (order_no, "paid")
    assert order["receipt_no"] and order["transaction_id"]
    assert locked_by(server, order_no) == []
    assert fee_states(server, ZHANG[0]) == {
        **dict.fromkeys(FISCAL, "paid"),
        **dict.fromkeys(AGENCY, "unpaid"),
    }
    (trade,) = successful_trades(server, order_no)
    assert trade["transaction_id"] == order["transaction_id"]
    assert_store_invariants(server, settled=True)  # recorded, receipted by SMS and e-mail
    return order


# ---------------------------------------------------------------------------- tests
def test_killed_on_pay_screen_then_restarted_shows_the_same_open_order(ui_server, start_client):
    """Killed with a QR issued: the order stays open and locked; the next run reopens it."""
    first = start_client()
    order = pay_and_kill(first, ui_server)
    number = order["order_no"]
    assert_open_and_locked(ui_server, number)

    again = start_client()
    log_in(again, ui_server, NEW_ZHANG, captchas_before=newest_captcha(ui_server)[0])
    again.shows("扫码支付", f"订单号{number}", "金额¥7,700.00", "剩余支付时间14:")
    again.wait(lambda: again.qr_text() == order["qr_url"], "the order's QR, whole, on screen")
    assert_open_and_locked(ui_server, number)  # reopening made no order, paid nothing
    assert again.process.poll() is None
    assert_no_traceback(first, again)


def test_paid_from_the_phone_while_killed_then_restarted_shows_success(ui_server, start_client):
    """Paid while no client runs: the payment is kept once; the next run shows no QR for
    it, and 我的订单 says 已支付 and opens its receipt (电子票据) with its number.

    (Only an unfinished order opens by itself after a restart, as ui.md says: the client
    keeps no record of which order it was showing when it died.)
    """
    first = start_client()
    order = pay_and_kill(first, ui_server)
    number = order["order_no"]
    assert_open_and_locked(ui_server, number)

    phone_pays(ui_server, order["qr_url"])
    paid = assert_paid_once(ui_server, number)

    again = start_client()
    log_in(again, ui_server, NEW_ZHANG, captchas_before=newest_captcha(ui_server)[0])
    again.shows("菜单", "我的订单", "退出登录")
    again.type("2")
    again.shows("我的订单", number, "学费、住宿费", "¥7,700.00", "已支付")
    again.type("\r")
    again.shows("电子票据", f"票据号{paid['receipt_no']}", f"订单号{number}", "补发票据")
    assert "扫码支付" not in again.raw()  # never a pay screen, nor a QR, for a paid order
    assert not any("▀" in row for row in again.rows())
    assert assert_paid_once(ui_server, number) == paid  # the restart changed nothing
    assert again.process.poll() is None
    assert_no_traceback(first, again)
