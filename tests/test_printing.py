"""Receipt printing: printer targets, the settings that name one, the slip's bytes, and
sending them to a file, a network printer that answers and one that does not."""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from epay_tui.api.models import Receipt
from epay_tui.config import SettingsError, load_settings
from epay_tui.printing import (
    COLUMNS,
    PrinterTarget,
    PrintFailed,
    parse_target,
    print_receipt,
    render_slip,
    send,
    slip_lines,
)

SCHOOL = "常州工程职业技术学院"


def make_receipt(**changes) -> Receipt:
    fields = {
        "receipt_no": "R2025090187654321",
        "check_code": "042917",
        "receipt_type": "fiscal",
        "order_no": "E2025090100000017",
        "payer": {"username": "2023010101", "name": "欧阳娜娜"},
        "payee": SCHOOL,
        "items": [
            {"id": "tuition", "name": "2025-2026学年学费", "amount": 650000, "refunded": 0},
            {"id": "dorm", "name": "住宿费", "amount": 120000, "refunded": 0},
        ],
        "total": 770000,
        "refunded": 0,
        "channel": "alipay",
        "transaction_id": "2088" + "3" * 24,
        "paid_at": datetime(2025, 9, 1, 9, 5, 7, tzinfo=timezone(timedelta(hours=8))),
        "status": "issued",
    }
    fields.update(changes)
    return Receipt.model_validate(fields)


def width(text: str) -> int:
    """Printer columns in Chinese mode: a GB character (two bytes or four) takes two."""
    return sum(min(len(ch.encode("gb18030")), 2) for ch in text)


# ------------------------------------------------------------------------------ targets
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("usb:04b8:0202", PrinterTarget("usb", vendor_id=0x04B8, product_id=0x0202)),
        ("USB:0x0416:5011", PrinterTarget("usb", vendor_id=0x0416, product_id=0x5011)),
        ("network:192.168.1.50", PrinterTarget("network", host="192.168.1.50", port=9100)),
        ("network:printer.lan:4242", PrinterTarget("network", host="printer.lan", port=4242)),
        ("network:[::1]", PrinterTarget("network", host="::1", port=9100)),
        ("network:[fe80::1]:9101", PrinterTarget("network", host="fe80::1", port=9101)),
        ("serial:/dev/ttyS0", PrinterTarget("serial", path="/dev/ttyS0")),
        ("file:/dev/usb/lp0", PrinterTarget("file", path="/dev/usb/lp0")),
        (" file:slips/今天.bin ", PrinterTarget("file", path="slips/今天.bin")),
    ],
)
def test_each_target_form_parses_and_prints_back(text, expected):
    target = parse_target(text)
    assert target == expected
    assert parse_target(str(target)) == target  # str() is a form parse_target reads


def test_str_of_a_target_is_its_canonical_form():
    assert str(parse_target("USB:0x4B8:202")) == "usb:04b8:0202"
    assert str(parse_target("network:10.0.0.9")) == "network:10.0.0.9:9100"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "unknown kind"),
        ("lp0", "unknown kind"),
        ("lpt:1", "unknown kind"),
        ("usb:", "nothing after usb:"),
        ("usb:04b8", "two hex numbers"),
        ("usb:04b8:0202:1", "two hex numbers"),
        ("usb:04g8:0202", "two hex numbers"),
        ("usb:104b8:0202", "two hex numbers"),
        ("usb:0000:0202", "id of 0"),
        ("network:", "nothing after network:"),
        ("network::9100", "not a host name"),
        ("network:printer:", "is not a number"),
        ("network:printer:http", "is not a number"),
        ("network:printer:0", "not 1-65535"),
        ("network:printer:65536", "not 1-65535"),
        ("network:[::1", "not [IPv6 address]"),
        ("network:[1.2.3.4]:9100", "not [IPv6 address]"),
        ("network:[::1]9100", "not [IPv6 address]"),
        ("network:::1", "not a host name"),
        ("network:bad host", "not a host name"),
        ("serial:", "nothing after serial:"),
        ("file:", "nothing after file:"),
        ("file:/tmp/a\x00b", "control character"),
    ],
)
def test_bad_targets_are_refused_naming_the_accepted_forms(text, why):
    with pytest.raises(ValueError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert why in message
    assert repr(text.strip()) in message or repr(text) in message
    for form in ("usb:VID:PID", "network:HOST[:PORT]", "serial:", "file:PATH"):
        assert form in message


# ----------------------------------------------------------------------------- settings
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_printer_by_default(tmp_path):
    assert load_settings({}, env={}, config_path=write(tmp_path, "")).printer is None


def test_printer_from_toml_table_then_env_then_flag(tmp_path):
    config = write(tmp_path, '[printer]\ntarget = "file:/dev/usb/lp0"\n')
    assert load_settings({}, env={}, config_path=config).printer == "file:/dev/usb/lp0"
    env = {"EPAY_PRINTER": "network:10.1.2.3"}
    assert load_settings({}, env=env, config_path=config).printer == "network:10.1.2.3"
    flags = {"printer": "usb:04b8:0202"}
    assert load_settings(flags, env=env, config_path=config).printer == "usb:04b8:0202"
    assert load_settings({"printer": None}, env=env, config_path=config).printer == (
        "network:10.1.2.3"  # a flag not given does not count
    )


def test_an_empty_env_printer_means_none(tmp_path):
    config = write(tmp_path, '[printer]\ntarget = "serial:/dev/ttyS0"\n')
    assert load_settings({}, env={"EPAY_PRINTER": ""}, config_path=config).printer is None


@pytest.mark.parametrize(
    ("flags", "env", "toml", "words"),
    [
        ({"printer": "lpt:1"}, {}, "", ["printer target", "'lpt:1'", "usb:VID:PID"]),
        ({}, {"EPAY_PRINTER": "usb:xyz:1"}, "", ["'usb:xyz:1'", "usb:VID:PID"]),
        ({}, {}, '[printer]\ntarget = "network:p:99999"\n', ["'network:p:99999'", "65535"]),
        ({}, {}, "[printer]\ntarget = 9100\n", ["printer", "9100"]),
        ({}, {}, 'printer = "file:/dev/usb/lp0"\n', ["[printer] table", "target"]),
        ({}, {}, '[printer]\ntraget = "file:x"\n', ["unknown setting", "printer.traget"]),
    ],
)
def test_a_bad_printer_setting_is_a_settings_error_naming_it(tmp_path, flags, env, toml, words):
    with pytest.raises(SettingsError) as caught:
        load_settings(flags, env=env, config_path=write(tmp_path, toml))
    for word in words:
        assert word in str(caught.value)


def test_the_cli_refuses_a_bad_printer_flag(tmp_path, capsys):
    from epay_tui.cli import main

    assert main(["--printer", "bluetooth:AA", "--config", str(write(tmp_path, ""))]) == 2
    assert "'bluetooth:AA'" in capsys.readouterr().err


# --------------------------------------------------------------------------------- slip
def test_the_slip_says_everything_in_gb18030():
    data = render_slip(make_receipt(), SCHOOL)
    text = data.decode("gb18030")
    for word in (
        SCHOOL,
        "收款方",
        "缴费凭证",
        "票据号",
        "R2025090187654321",
        "校验码",
        "042917",
        "学号",
        "2023010101",
        "姓名",
        "欧阳娜娜",
        "2025-2026学年学费",
        "￥6,500.00",
        "住宿费",
        "￥1,200.00",
        "合计",
        "￥7,700.00",
        "支付方式",
        "支付宝",
        "交易号",
        "2088" + "3" * 24,
        "支付时间",
        "2025-09-01 09:05:07",
    ):
        assert word in text, word
        assert word.encode("gb18030") in data
    for word in ("缴费凭证", "欧阳娜娜", "合计", "支付时间", "住宿费"):
        assert word.encode("utf-8") not in data  # GB18030, not UTF-8
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "已退款" not in text  # nothing was refunded
    assert "¥" not in text  # the yen sign needs four GB18030 bytes: the fullwidth one has two


def test_the_slip_selects_chinese_mode_before_any_chinese_and_ends_with_a_cut():
    data = render_slip(make_receipt(), SCHOOL)
    assert data.startswith(b"\x1b@")  # ESC @: initialise
    first_chinese = data.index(SCHOOL.encode("gb18030"))
    assert 0 <= data.index(b"\x1c\x26") < first_chinese  # FS &
    assert data.endswith(b"\x1dV\x00")  # GS V 0: full cut


def test_refunds_are_on_the_slip_per_item_and_in_total():
    receipt = make_receipt(
        items=[
            {"id": "tuition", "name": "学费", "amount": 650000, "refunded": 0},
            {"id": "dorm", "name": "住宿费", "amount": 120000, "refunded": 30000},
        ],
        refunded=30000,
        status="partially_refunded",
    )
    _, body = slip_lines(receipt, SCHOOL)
    dorm = next(i for i, line in enumerate(body) if line.startswith("住宿费"))
    assert body[dorm + 1].split() == ["已退款", "￥300.00"]  # under the item it belongs to
    assert any(line.split() == ["已退款", "￥300.00"] for line in body[dorm + 2 :])  # total
    assert render_slip(receipt, SCHOOL).decode("gb18030").count("已退款") == 2


@pytest.mark.parametrize(
    ("channel", "word"),
    [
        ("wechat", "微信支付"),
        ("alipay", "支付宝"),
        ("ccb", "建行龙支付"),
        ("cash", "现金"),
        ("pos", "POS"),
    ],
)
def test_the_channel_is_named_in_chinese(channel, word):
    _, body = slip_lines(make_receipt(channel=channel), SCHOOL)
    assert [line.split()[-1] for line in body if line.startswith("支付方式")] == [word]


def test_every_line_fits_58mm_paper_even_long_names():
    long_item = "住宿费（2025-2026学年，四人间，含空调）"
    receipt = make_receipt(
        payer={"username": "2023010101", "name": "阿卜杜热合曼·买买提艾力江吐"},
        items=[{"id": "x", "name": long_item, "amount": 1, "refunded": 0}],
        total=1,
    )
    head, body = slip_lines(receipt, SCHOOL + "继续教育学院")
    assert all(width(line) <= COLUMNS for line in head + body), [
        line for line in head + body if width(line) > COLUMNS
    ]
    joined = "".join(line.strip() for line in body)
    assert "阿卜杜热合曼·买买提艾力江吐" in joined  # wrapped, nothing lost
    assert long_item in joined
    assert "交易号" in body and body[body.index("交易号") + 1].strip() == "2088" + "3" * 24


def test_control_characters_in_names_never_reach_the_printer():
    receipt = make_receipt(
        payer={"username": "2023010101", "name": "张\x1bi三\x1dV\x00"},  # ESC i, GS V 0: cuts
        items=[{"id": "x", "name": "学费\x1c.", "amount": 100, "refunded": 0}],
        total=100,
    )
    data = render_slip(receipt, SCHOOL)
    assert b"\x1bi" not in data
    assert data.count(b"\x1dV") == 1 and data.endswith(b"\x1dV\x00")  # only the real cut
    assert data.count(b"\x1c.") == 1  # only leaving Chinese mode at the end
    assert "张?i三?V?" in data.decode("gb18030")


# ------------------------------------------------------------------------------ sending
def test_print_to_a_file_appends_the_rendered_slip(tmp_path):
    receipt = make_receipt()
    out = tmp_path / "lp0"
    target = parse_target(f"file:{out}")
    print_receipt(target, receipt, SCHOOL)
    slip = render_slip(receipt, SCHOOL)
    assert out.read_bytes() == slip
    print_receipt(target, receipt, SCHOOL)
    assert out.read_bytes() == slip + slip  # appended, as a device node would take it


def test_a_file_in_a_missing_directory_is_print_failed(tmp_path):
    target = parse_target(f"file:{tmp_path / 'no-such-dir' / 'lp0'}")
    with pytest.raises(PrintFailed) as caught:
        print_receipt(target, make_receipt(), SCHOOL)
    assert "no such file or directory" in caught.value.reason
    assert str(target) in caught.value.reason
    assert not (tmp_path / "no-such-dir").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_network_printer_that_is_not_there_is_print_failed():
    target = parse_target(f"network:127.0.0.1:{free_port()}")
    with pytest.raises(PrintFailed) as caught:
        print_receipt(target, make_receipt(), SCHOOL, timeout=5)
    assert "refused" in caught.value.reason
    assert str(target) in caught.value.reason


def test_a_network_printer_gets_the_slip_and_the_connection_is_closed():
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)

        def printer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                while chunk := conn.recv(4096):  # ends only when the client closes
                    received.append(chunk)

        thread = threading.Thread(target=printer, daemon=True)
        thread.start()
        print_receipt(
            parse_target(f"network:127.0.0.1:{server.getsockname()[1]}"),
            make_receipt(),
            SCHOOL,
            timeout=5,
        )
        thread.join(10)
    assert not thread.is_alive()
    assert b"".join(received) == render_slip(make_receipt(), SCHOOL)


def test_usb_without_pyusb_is_print_failed_saying_so(monkeypatch):
    from escpos import printer

    monkeypatch.setattr(printer.Usb, "is_usable", staticmethod(lambda: False))
    with pytest.raises(PrintFailed) as caught:
        send(parse_target("usb:04b8:0202"), b"x")
    assert "pyusb" in caught.value.reason


def test_any_driver_error_is_print_failed(monkeypatch):
    from escpos import printer

    def broken(self, msg: bytes) -> None:
        raise AssertionError  # what escpos's _raw does when its device has gone

    monkeypatch.setattr(printer.Network, "_raw", broken)
    with socket.create_server(("127.0.0.1", 0)) as server, pytest.raises(PrintFailed) as caught:
        send(parse_target(f"network:127.0.0.1:{server.getsockname()[1]}"), b"x")
    assert caught.value.reason.startswith("network:127.0.0.1:")
