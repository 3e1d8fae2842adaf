"""Receipt slips (缴费凭证) on an ESC/POS thermal printer, 58 mm paper, 32 columns.

No Textual and no rich: the ``flow`` layer calls this. ``escpos`` is imported inside
the functions that need it (its printer profiles take ~0.15 s to load), so importing
this module, as the settings do, costs nothing.

Chinese goes to the printer as GB18030 bytes in the printer's Chinese character mode
(FS &), sent raw: escpos's code-page guessing has no Chinese code page to pick.
"""

from __future__ import annotations

import contextlib
import re
import socket
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from epay_tui.api.models import Receipt

PrinterKind = Literal["usb", "network", "serial", "file"]
DEFAULT_NETWORK_PORT = 9100
COLUMNS = 32
"""A 58 mm printer's line in its 12x24 font: 32 ASCII characters or 16 CJK ones."""

CHANNEL_NAMES = {
    "wechat": "微信支付",
    "alipay": "支付宝",
    "ccb": "建行龙支付",
    "cash": "现金",
    "pos": "POS",
}

FS_CHINESE_ON = b"\x1c\x26"  # FS &: two-byte (GB) characters from here on
FS_CHINESE_OFF = b"\x1c\x2e"  # FS .
GS_SIZE_DOUBLE = b"\x1d\x21\x11"  # GS !: double width and height, Chinese characters too
GS_SIZE_NORMAL = b"\x1d\x21\x00"

_FORMS = (
    "usb:VID:PID (hex, e.g. usb:04b8:0202), network:HOST[:PORT] (port 9100 if none;"
    " [IPv6]:PORT),"
    " serial:DEVICE (e.g. serial:/dev/ttyS0) or file:PATH (e.g. file:/dev/usb/lp0)"
)
_HEX_ID = re.compile(r"(?:0x)?([0-9a-fA-F]{1,4})")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?")


class PrintFailed(Exception):
    """The slip did not reach the printer; ``reason`` is short, for the screen and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PrinterTarget:
    """Where slips go; ``str()`` gives it back in the form ``parse_target`` reads."""

    kind: PrinterKind
    vendor_id: int | None = None
    """usb: the printer's USB vendor id."""
    product_id: int | None = None
    """usb: its product id."""
    host: str | None = None
    """network: host name, IPv4 or IPv6 address (no brackets)."""
    port: int | None = None
    """network: TCP port, 9100 unless told."""
    path: str | None = None
    """serial: the port's device; file: the file or device node appended to."""

    def __str__(self) -> str:
        if self.kind == "usb":
            return f"usb:{self.vendor_id:04x}:{self.product_id:04x}"
        if self.kind == "network":
            host = f"[{self.host}]" if ":" in (self.host or "") else self.host
            return f"network:{host}:{self.port}"
        return f"{self.kind}:{self.path}"


def parse_target(text: str) -> PrinterTarget:
    """``usb:04b8:0202``, ``network:HOST[:PORT]``, ``serial:/dev/ttyS0`` or ``file:PATH``.

    Raises ``ValueError`` naming the accepted forms for anything else.
    """

    def refuse(why: str) -> ValueError:
        return ValueError(f"printer target {text!r}: {why}; use {_FORMS}")

    if not isinstance(text, str):
        raise refuse("not text")
    kind, sep, rest = text.strip().partition(":")
    kind = kind.lower()
    if not sep or kind not in ("usb", "network", "serial", "file"):
        raise refuse("unknown kind")
    if not rest:
        raise refuse(f"nothing after {kind}:")
    if any(unicodedata.category(ch).startswith("C") for ch in rest):
        raise refuse("control character")
    if kind == "usb":
        ids = rest.split(":")
        matches = [_HEX_ID.fullmatch(part) for part in ids]
        if len(ids) != 2 or not all(matches):
            raise refuse("a USB printer is usb:VID:PID, two hex numbers of up to 4 digits")
        vendor, product = (int(m.group(1), 16) for m in matches if m)
        if not vendor or not product:
            raise refuse("a USB id of 0 would match any device")
        return PrinterTarget("usb", vendor_id=vendor, product_id=product)
    if kind == "network":
        if rest.startswith("["):  # [IPv6]:PORT
            host, bracket, after = rest[1:].partition("]")
            if not bracket or not _is_ipv6(host) or after[:1] not in ("", ":"):
                raise refuse(f"{rest!r} is not [IPv6 address] or [IPv6 address]:PORT")
            colon, port_text = after[:1], after[1:]
        else:
            host, colon, port_text = rest.partition(":")
            if not _HOST.fullmatch(host):
                raise refuse(f"{host!r} is not a host name or IPv4 address")
        port = DEFAULT_NETWORK_PORT
        if colon:
            if not port_text.isascii() or not port_text.isdigit():
                raise refuse(f"port {port_text!r} is not a number")
            port = int(port_text)
            if not 1 <= port <= 65535:
                raise refuse(f"port {port} is not 1-65535")
        return PrinterTarget("network", host=host, port=port)
    return PrinterTarget(kind, path=rest)


def _is_ipv6(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------- slip
def _width(text: str) -> int:
    """Columns on the printer: in Chinese mode every non-ASCII character is a two-byte
    GB character printed two columns wide, even those a terminal draws narrow (·, ×)."""
    return sum(1 if ch.isascii() else 2 for ch in text)


def _clean(text: str) -> str:
    """No control characters to the printer (an ESC in a name would be a command)."""
    return "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in text)


def _wrap(text: str, width: int = COLUMNS) -> list[str]:
    """Cut ``text`` into lines of at most ``width`` columns, never inside a character."""
    lines, line, used = [], "", 0
    for ch in text:
        w = _width(ch)
        if used + w > width and line:
            lines.append(line)
            line, used = "", 0
        line += ch
        used += w
    return [*lines, line] if line or not lines else lines


def _pair(label: str, value: str) -> list[str]:
    """``label`` left and ``value`` right on one line; when both do not fit, the value
    goes right-aligned on the line(s) below."""
    label, value = _clean(label), _clean(value)
    gap = COLUMNS - _width(label) - _width(value)
    if gap >= 1:
        return [label + " " * gap + value]
    below = _wrap(value)
    return [*_wrap(label), *(" " * (COLUMNS - _width(part)) + part for part in below)]


def _money(fen: int) -> str:
    """``￥6,500.00``: the fullwidth yen, two bytes in GB2312 (U+00A5 takes four in
    GB18030, which printers that only know GBK print as junk)."""
    from epay_tui.api.rules import format_fen

    return format_fen(fen).replace("¥", "￥")


def slip_lines(receipt: Receipt, school: str) -> tuple[list[str], list[str]]:
    """The slip as text: the centred head (school, title) and the left-aligned body."""
    head = [*_wrap(_clean(school)), "缴费凭证"]
    rule = "-" * COLUMNS
    body = [
        *_pair("收款方", receipt.payee),
        rule,
        *_pair("票据号", receipt.receipt_no),
        *_pair("校验码", receipt.check_code),
        *_pair("学号", receipt.payer.username),
        *_pair("姓名", receipt.payer.name),
        rule,
    ]
    for item in receipt.items:
        body += _pair(item.name, _money(item.amount))
        if item.refunded > 0:
            body += _pair("  已退款", _money(item.refunded))
    body.append(rule)
    body += _pair("合计", _money(receipt.total))
    if receipt.refunded > 0:
        body += _pair("已退款", _money(receipt.refunded))
    body += [
        *_pair("支付方式", CHANNEL_NAMES.get(receipt.channel, receipt.channel)),
        *_pair("交易号", receipt.transaction_id),
        *_pair("支付时间", f"{receipt.paid_at:%Y-%m-%d %H:%M:%S}"),
    ]
    return head, body


def render_slip(receipt: Receipt, school: str) -> bytes:
    """The slip as the ESC/POS bytes a printer takes: initialise, Chinese mode, the
    text in GB18030, feed and cut."""
    from escpos.printer import Dummy

    head, body = slip_lines(receipt, school)
    printer = Dummy()

    def line(text: str) -> None:
        printer._raw(text.encode("gb18030") + b"\n")

    printer.hw("INIT")
    printer._raw(FS_CHINESE_ON)
    printer.set(align="center")
    for text in head[:-1]:
        line(text)
    printer.set(bold=True)
    printer._raw(GS_SIZE_DOUBLE)
    line(head[-1])
    printer._raw(GS_SIZE_NORMAL)
    printer.set(align="left", bold=False)
    for text in body:
        line(text)
    printer._raw(FS_CHINESE_OFF)
    printer.cut()
    return printer.output


# ----------------------------------------------------------------------------- sending
def print_receipt(
    target: PrinterTarget, receipt: Receipt, school: str, *, timeout: float = 10.0
) -> None:
    """Render the slip and send it to ``target``; any failure is ``PrintFailed``.

    ``timeout`` bounds a network printer's connect and send, in seconds.
    """
    send(target, render_slip(receipt, school), timeout=timeout)


def send(target: PrinterTarget, data: bytes, *, timeout: float = 10.0) -> None:
    """Raw bytes to ``target``, the device closed whatever happens.

    A ``file:`` target is opened for appending and written, nothing more. The others go
    through python-escpos's printer classes, whose drivers raise many kinds of error
    (escpos's own, OSError, pyusb's ValueError when libusb is missing, an assert when a
    device vanished), so every one of them becomes ``PrintFailed``.
    """
    if target.kind == "file":
        assert target.path is not None
        try:
            with open(target.path, "ab") as out:
                out.write(data)
        except (OSError, ValueError) as exc:
            raise PrintFailed(f"{target}: {_why(exc)}") from exc
        return
    device = None
    try:
        device = _device(target, timeout)
        if target.kind == "network":
            # escpos's own open() leaves the socket of a refused connect unclosed
            device.device = socket.create_connection((target.host, target.port), timeout)
        else:
            device.open()
        if target.kind == "serial":  # escpos sets only the read timeout: a write waiting
            device.device.write_timeout = timeout  # for DSR would block for ever
        device._raw(data)
    except PrintFailed:
        raise
    except Exception as exc:
        raise PrintFailed(f"{target}: {_why(exc)}") from exc
    finally:
        if device is not None:
            with contextlib.suppress(Exception):  # the outcome is decided above
                device.close()


def _device(target: PrinterTarget, timeout: float):
    """The python-escpos printer for ``target``, not yet open."""
    from escpos import printer

    if target.kind == "usb":
        if not printer.Usb.is_usable():
            raise PrintFailed(f"{target}: USB printing needs pyusb (python-escpos[usb])")
        return printer.Usb(target.vendor_id, target.product_id, timeout=int(timeout * 1000))
    if target.kind == "serial":
        if not printer.Serial.is_usable():
            raise PrintFailed(f"{target}: serial printing needs pyserial (python-escpos[serial])")
        return printer.Serial(devfile=target.path, timeout=timeout)
    return printer.Network(host=target.host, port=target.port, timeout=timeout)


def _why(exc: BaseException) -> str:
    """A short reason: the operating system's words where there are some."""
    seen: BaseException | None = exc
    while seen is not None:  # escpos wraps the OSError that says what happened
        if isinstance(seen, TimeoutError):
            return "timed out"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    from escpos.exceptions import DeviceNotFoundError

    if isinstance(exc, DeviceNotFoundError):
        return "printer not found"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
