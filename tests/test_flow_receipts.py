"""flow/receipts on its own (no screen) against the live backend: a staff member's view of
a student's receipt, resending it, and printing it — a printer that fails is an answer."""

from __future__ import annotations

import pytest

from epay_tui.api import errors
from epay_tui.api.client import ApiClient
from epay_tui.flow.receipts import Printed, ReceiptDesk
from tests.conftest import CHEN, STAFF, solve_login
from tests.payment_flows import PAYEE, paid_online


async def test_staff_load_resend_and_print_a_students_receipt(server, tmp_path):
    order = await paid_online(server, CHEN, "教材费")
    slip = tmp_path / "slip.bin"
    async with ApiClient(server.url) as staff, ApiClient(server.url) as hooks:
        await solve_login(staff, *STAFF)
        desk = ReceiptDesk(order.order_no, staff=True, printer=f"file:{slip}")
        assert desk.can_print
        assert await desk.print() == Printed(False)  # nothing loaded yet: nothing printed
        assert not slip.exists()
        receipt = await desk.load(staff)
        assert (receipt.order_no, receipt.payer.username, receipt.total) == (
            order.order_no,
            CHEN[0],
            42000,
        )
        assert desk.school and desk.receipt == receipt
        before = len((await hooks.outbox()).messages)
        await desk.resend(staff)
        assert len((await hooks.outbox()).messages) == before + 2
        assert await desk.print() == Printed(True)
        printed = slip.read_bytes().decode("gb18030")
        assert receipt.receipt_no in printed and PAYEE in printed and desk.school in printed


async def test_a_student_cannot_read_another_students_receipt_and_no_printer_prints_nothing(
    server, login
):
    order = await paid_online(server, CHEN, "体检费")
    other = await login("2024010003", "123456", new_password="Wanglei2026x")  # 王磊
    desk = ReceiptDesk(order.order_no)
    assert not desk.can_print
    with pytest.raises(errors.ApiError) as refused:
        await desk.load(other)
    assert refused.value.code == "ORDER_NOT_FOUND"
    assert desk.receipt is None
    assert await desk.print() == Printed(False)


async def test_a_printer_that_fails_gives_its_reason_and_the_receipt_stays(server, tmp_path):
    order = await paid_online(server, CHEN, "保险费")
    async with ApiClient(server.url) as chen:
        await solve_login(chen, *CHEN)
        desk = ReceiptDesk(order.order_no, printer=f"file:{tmp_path}/gone/slip.bin")
        receipt = await desk.load(chen, school="常州工程职业技术学院")
        failed = await desk.print()
        assert not failed.ok and "no such file or directory" in failed.reason
        assert desk.receipt == receipt
        (tmp_path / "gone").mkdir()
        assert await desk.print() == Printed(True)
