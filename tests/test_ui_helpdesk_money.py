"""The helpdesk's money from the keyboard against the live backend: 现场缴费 (cash, POS and
its 凭证号, the receipt-type rule, one payment however often 确定 is pressed), 退费申请 and
退费审批 with two staff members (never one's own), 驳回 with a reason, 日结, 欠费 with its
filter and CSV export, 差异 and a trade refund started from it.

After a counter payment and on F6/F8 the real receipt screen opens with the staff's
calls (its receipt loaded from the backend). Waits are bounded loops on conditions, never
sleeps.
"""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.screens.arrears import ArrearsScreen
from epay_tui.screens.cashier_report import CashierReportScreen
from epay_tui.screens.counter_payment import CounterPaymentScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.discrepancies import DiscrepanciesScreen
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.receipt import ReceiptScreen
from epay_tui.screens.refund_approval import RefundApprovalScreen
from epay_tui.screens.refund_request import RefundRequestScreen
from epay_tui.screens.staff_login import StaffLoginScreen
from epay_tui.server.runner import BackgroundServer
from tests.conftest import CHEN, LI, STAFF, ZHANG, solve_login
from tests.helpdesk_flows import (
    chen_paid,
    confirm,
    message_key,
    open_student,
    opened,
    paid_twice,
    result_shown,
    rows,
    staff_home,
    submit_staff_login,
)
from tests.pilot_helpers import fill, message, screen_text, until

FINANCE = ("finance01", "Finance2026")
SIZE = (80, 24)


async def receipt_shown(pilot: Pilot, what: str) -> ReceiptScreen:
    """The receipt screen, its receipt loaded through the staff's calls."""
    app = pilot.app
    await on_screen(pilot, ReceiptScreen, what)
    screen = app.screen
    await until(pilot, lambda: screen.desk.receipt is not None, f"{what}: loaded")
    assert screen.staff is True and screen.desk.staff is True
    assert screen.desk.receipt.receipt_no in screen_text(app)
    return screen


# ---------------------------------------------------------------------------- helpers
async def staff_api(server: BackgroundServer, account=STAFF) -> ApiClient:
    api = ApiClient(server.url)
    await solve_login(api, *account)
    return api


async def item_state(server: BackgroundServer, username: str, code: str) -> str:
    async with await staff_api(server) as staff:
        detail = await staff.staff_student(username)
    return next(i.state for t in detail.fees.tags for i in t.items if i.id.endswith(f"-{code}"))


async def on_screen(pilot: Pilot, kind: type, what: str) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, kind), what)


async def counter_screen(pilot: Pilot, server: BackgroundServer, username: str):
    await staff_home(pilot, server)
    await open_student(pilot, username)
    await pilot.press("f5")
    await on_screen(pilot, CounterPaymentScreen, "现场缴费")
    screen = pilot.app.screen
    table = screen.query_one("#counter-items", DataTable)
    await until(pilot, lambda: table.row_count > 0, "the unpaid items")
    return screen, table


async def chen_page_with(pilot: Pilot, server: BackgroundServer, order_no: str) -> None:
    """helpdesk01 on 陈静's page, ``order_no`` first in her orders."""
    await staff_home(pilot, server)
    page = await open_student(pilot, CHEN[0])
    assert rows(page.query_one("#student-orders", DataTable))[0][0] == order_no


async def finance_home(pilot: Pilot, server: BackgroundServer) -> None:
    await submit_staff_login(pilot, server, FINANCE)
    await on_screen(pilot, HelpdeskHome, "服务台 of finance01")


# ---------------------------------------------------------------------------- 现场缴费
async def test_counter_cash_keeps_the_receipt_type_rule_and_pays_once(make_ui_app, ui_server):
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await counter_screen(pilot, ui_server, ZHANG[0])
        assert [r[2] for r in rows(table)] == ["学费", "住宿费", "教材费", "保险费", "体检费"]
        await pilot.press("space", "down", "space", "down", "space")  # 学费 住宿费, then 教材费
        await until(pilot, lambda: isinstance(app.screen, Choice), "the receipt-type rule")
        assert "学费、住宿费的票据类型与其它费用项不同，不能一起支付" in screen_text(app)
        assert "切换选择" in screen_text(app)
        await pilot.press("escape")  # 取消: the selection stays
        await on_screen(pilot, CounterPaymentScreen, "back")
        assert sorted(screen.checked) == [
            f"{ZHANG[0]}-2026-accommodation",
            f"{ZHANG[0]}-2026-tuition",
        ]
        assert "合计 ¥7,700.00" in screen_text(app)
        assert "Enter" in screen_text(app) and "确定收款" in screen_text(app)

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, Choice), "the question")
        assert "收取现金 ¥7,700.00" in screen_text(app)
        await pilot.press("enter", "enter", "enter")  # 确定, and twice more at once
        order_no = (await receipt_shown(pilot, "the receipt")).order_no

    async with await staff_api(ui_server) as staff:
        report = await staff.staff_cashier_report()
        detail = await staff.staff_student(ZHANG[0])
    assert [(p.order_no, p.method, p.total) for p in report.payments] == [
        (order_no, "cash", 770000)
    ]
    order = next(o for o in detail.orders if o.order_no == order_no)
    assert (order.status, order.channel) == ("paid", "cash")
    assert report.cashier == STAFF[0]


async def test_counter_pos_needs_its_slip_number_and_switching_keeps_one_type(
    make_ui_app, ui_server
):
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await counter_screen(pilot, ui_server, ZHANG[0])
        await pilot.press("space", "down", "down", "space")  # 学费, then 教材费
        await until(pilot, lambda: isinstance(app.screen, Choice), "the receipt-type rule")
        await pilot.press("right", "left", "enter")  # 切换选择 (the first button)
        await on_screen(pilot, CounterPaymentScreen, "back")
        assert list(screen.checked) == [f"{ZHANG[0]}-2026-textbook"]

        await pilot.press("2", "enter")  # POS, no slip number
        await until(pilot, lambda: message_key(app) == "counter.need_reference", "refused")
        assert "POS 收款须填写凭证号" in message(app)
        assert not isinstance(app.screen, Choice)
        assert app.focused is screen.query_one("#reference", Input)

        await pilot.press(*"POS20261126A", "enter")
        await confirm(pilot, "enter", "以 POS 收取 ¥420.00（1 项，凭证号 POS20261126A）")
        order_no = (await receipt_shown(pilot, "the receipt")).order_no

    async with await staff_api(ui_server) as staff:
        detail = await staff.staff_student(ZHANG[0])
    order = next(o for o in detail.orders if o.order_no == order_no)
    assert (order.status, order.channel, order.transaction_id, order.total) == (
        "paid",
        "pos",
        "POS20261126A",
        42000,
    )


async def test_cashier_report_totals_two_counter_payments(make_ui_app, ui_server):
    async with await staff_api(ui_server) as staff:
        ids = {
            i.name: i.id
            for t in (await staff.staff_student(ZHANG[0])).fees.tags
            for i in t.items
            if i.state == "unpaid"
        }
        await staff.staff_counter_payment(
            ZHANG[0], [ids["学费"], ids["住宿费"]], "cash", None, new_idempotency_key()
        )
        await staff.staff_counter_payment(
            ZHANG[0], [ids["保险费"]], "pos", "SLIP-77", new_idempotency_key()
        )
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await staff_home(pilot, ui_server)
        table = await opened(pilot, "f4", CashierReportScreen, "cashier-payments", 2)
        totals = str(app.screen.query_one("#cashier-totals").render())
        assert totals == "现金 ¥7,700.00  POS ¥150.00  共 2 笔  合计 ¥7,850.00"
        assert sorted(r[3:] for r in rows(table)) == [  # both at 10:00
            ["POS", "SLIP-77", "¥150.00"],
            ["现金", "", "¥7,700.00"],
        ]


# ---------------------------------------------------------------------------- 退费
async def test_two_staff_members_refund_a_paid_item(make_ui_app, ui_server):
    """helpdesk01 asks, cannot approve it himself (said before any question); finance01
    approves; the backend refunded the item."""
    order = await chen_paid(ui_server, "textbook")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await chen_page_with(pilot, ui_server, order.order_no)
        await pilot.press("f9")
        await on_screen(pilot, RefundRequestScreen, "退费申请")
        table = app.screen.query_one("#refund-items", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the order's items")
        await pilot.press("enter")  # nothing checked yet
        await until(pilot, lambda: message_key(app) == "refund.nothing_checked", "refused")
        await pilot.press("space", "tab", *"退学", "enter")
        await confirm(
            pilot, "enter", f"申请退回订单 {order.order_no} 的 ¥420.00（原路退回 微信支付）"
        )
        words = await result_shown(pilot, "refund.requested")
        assert "须由另一位工作人员" in words

        await pilot.press("escape")
        await pilot.press("escape")
        await on_screen(pilot, HelpdeskHome, "服务台")
        refunds = await opened(pilot, "f3", RefundApprovalScreen, "refunds", 1)
        assert rows(refunds)[0][1:] == ["费用项", "¥420.00", "微信支付", "helpdesk01", "待审批"]
        await pilot.press("y")
        await until(pilot, lambda: message_key(app) == "refund.own_request", "own request")
        assert not isinstance(app.screen, Choice)
        assert "不能由你审批" in message(app)

        await pilot.press("escape")
        await on_screen(pilot, HelpdeskHome, "服务台")
        await pilot.press("f9")  # log out
        await on_screen(pilot, StaffLoginScreen, "the login")
        await finance_home(pilot, ui_server)
        refunds = await opened(pilot, "f3", RefundApprovalScreen, "refunds", 1)
        refund_no = rows(refunds)[0][0]
        await pilot.press("y")
        await confirm(pilot, "enter", f"同意退费 {refund_no}：¥420.00 原路退回 微信支付")
        words = await result_shown(pilot, "refund.approved_succeeded")
        assert words == f"退费 {refund_no} 已退款：¥420.00 退回 微信支付"
        await until(pilot, lambda: refunds.row_count == 0, "nothing left to decide")

    async with await staff_api(ui_server, FINANCE) as finance:
        refund = await finance.staff_refund(refund_no)
    assert (refund.status, refund.requested_by, refund.decided_by) == (
        "succeeded",
        STAFF[0],
        FINANCE[0],
    )
    assert await item_state(ui_server, CHEN[0], "textbook") == "refunded"


async def test_a_refund_is_rejected_with_a_reason(make_ui_app, ui_server):
    async with await staff_api(ui_server) as staff:
        [item] = [
            i.id
            for t in (await staff.staff_student(ZHANG[0])).fees.tags
            for i in t.items
            if i.name == "体检费" and i.state == "unpaid"
        ]
        paid = await staff.staff_counter_payment(
            ZHANG[0], [item], "cash", None, new_idempotency_key()
        )
        asked = await staff.staff_request_refund(
            paid.order_no, "收错了", new_idempotency_key(), item_ids=[item]
        )
    app = make_ui_app(lang="en", helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await finance_home(pilot, ui_server)
        await opened(pilot, "f3", RefundApprovalScreen, "refunds", 1)
        assert "reason: 收错了" in screen_text(app)
        await pilot.press("n")  # no reason typed yet
        await until(pilot, lambda: message_key(app) == "refund.type_reject_reason", "asks")
        assert app.focused is app.screen.query_one("#reject-reason", Input)
        await pilot.press(*"paid twice by mistake", "enter")
        await confirm(pilot, "enter", f"Reject refund request {asked.refund_no}")
        words = await result_shown(pilot, "refund.rejected_done")
        assert asked.refund_no in words

    async with await staff_api(ui_server, FINANCE) as finance:
        refund = await finance.staff_refund(asked.refund_no)
        audit = (await finance.staff_audit()).entries
    assert (refund.status, refund.decided_by) == ("rejected", FINANCE[0])
    assert any(e.action == "refund.rejected" and "paid twice by mistake" in e.detail for e in audit)
    assert await item_state(ui_server, ZHANG[0], "medical") == "paid"


# ---------------------------------------------------------------------------- 欠费
async def test_arrears_filter_and_export(make_ui_app, ui_server, tmp_path):
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await staff_home(pilot, ui_server)
        table = await opened(pilot, "f7", ArrearsScreen, "arrears", 4)
        screen = app.screen
        path_field = screen.query_one("#export-path", Input)
        assert path_field.value.endswith("/欠费-2026-2027学年-2026-11-26.csv")
        assert "2026-2027学年：4 人欠费" in screen_text(app)

        await fill(pilot, class_name="机电2499")
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count == 0, "nobody in that class")
        assert "0 人欠费，合计 ¥0.00" in screen_text(app)
        await fill(pilot, department="智能制造学院", class_name="机电2401")
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count == 4, "the class again")

        target = tmp_path / "exports" / "arrears.csv"
        await fill(pilot, **{"export-path": str(target)})
        await pilot.press("f8")
        words = await result_shown(pilot, "arrears.exported")
        assert str(target) in words
        data = target.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")
        header, *lines = data[3:].decode("utf-8").splitlines()
        assert header == "学号,姓名,院系,班级,未缴金额"
        assert len(lines) == 4
        assert target.stat().st_mode & 0o077 == 0

        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        await fill(pilot, **{"export-path": str(blocker / "arrears.csv")})
        await pilot.press("enter")
        words = await result_shown(pilot, "arrears.export_no_folder")
        assert "路径中有一段不是文件夹" in words
        assert blocker.read_text() == "not a folder"  # nothing lost
        assert target.read_bytes() == data


# ---------------------------------------------------------------------------- 差异
async def test_a_discrepancy_starts_a_trade_refund(make_ui_app, ui_server):
    order, trade_no = await paid_twice(ui_server, "insurance")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await staff_home(pilot, ui_server)
        table = await opened(pilot, "f8", DiscrepanciesScreen, "discrepancies", 1)
        assert rows(table)[0] == [order.order_no, "重复支付", trade_no, "¥150.00"]
        await pilot.press("enter")
        await on_screen(pilot, RefundRequestScreen, "退费申请 for the trade")
        screen = app.screen
        items = screen.query_one("#refund-items", DataTable)
        await until(pilot, lambda: items.row_count == 2, "the item and the trade")
        assert screen.trade == trade_no
        await fill(pilot, reason="重复缴费")
        await pilot.press("enter")
        await confirm(pilot, "enter", "¥150.00")
        await result_shown(pilot, "refund.requested")
        await pilot.press("escape")
        await on_screen(pilot, DiscrepanciesScreen, "差异 again")
        detail = app.screen.query_one("#discrepancy-detail")
        await until(pilot, lambda: "已申请退费 RF" in str(detail.render()), "its refund named")
        await pilot.press("enter")  # not asked twice
        await until(pilot, lambda: message_key(app) == "diff.refund_asked", "refused")
        assert isinstance(app.screen, DiscrepanciesScreen)

    async with await staff_api(ui_server) as staff:
        [refund] = (await staff.staff_refunds("pending")).refunds
    assert (refund.kind, refund.trade_no, refund.amount, refund.order_no) == (
        "trade",
        trade_no,
        15000,
        order.order_no,
    )


async def test_receipt_keys_need_a_paid_order(make_ui_app, ui_server, tmp_path):
    """F6 / F8 open the receipt of a paid order, F9 its refund; an open order is refused.
    F8 打印 is there only with a printer configured."""
    paid = await chen_paid(ui_server, "medical")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await chen_page_with(pilot, ui_server, paid.order_no)
        assert "打印" not in screen_text(app) and "补发票据" in screen_text(app)
        await pilot.press("f8")  # no printer: no print key, nothing happens
        await pilot.pause()
        assert type(app.screen).__name__ == "StudentPage"
    app = make_ui_app(helpdesk=True, printer=f"file:{tmp_path / 'slip.bin'}")
    async with app.run_test(size=SIZE) as pilot:
        await chen_page_with(pilot, ui_server, paid.order_no)
        page = app.screen
        assert "打印" in screen_text(app)
        for key in ("f6", "f8"):
            await pilot.press(key)
            assert (await receipt_shown(pilot, "the receipt")).order_no == paid.order_no
            app.pop_screen()
            await on_screen(pilot, type(page), "the student page")
    async with ApiClient(ui_server.url) as chen:
        await solve_login(chen, *CHEN)
        items = [i for t in (await chen.fees()).tags for i in t.items if i.state == "unpaid"]
        open_order = await chen.create_order([items[0].id], new_idempotency_key())
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await chen_page_with(pilot, ui_server, open_order.order_no)
        page = app.screen
        await pilot.press("f9")
        await until(pilot, lambda: message_key(app) == "staff.not_paid", "refused")
        assert isinstance(app.screen, type(page))


async def test_a_resend_to_contacts_that_are_not_valid_says_what_to_do(make_ui_app, ui_server):
    """李娜 paid at the counter with a bad phone and no e-mail: 补发票据 on her receipt
    says so in the helpdesk's words (print the slip, or have her fix 个人信息)."""
    async with await staff_api(ui_server) as staff:
        detail = await staff.staff_student(LI[0])
        item = next(i for t in detail.fees.tags for i in t.items if i.state == "unpaid")
        paid = await staff.staff_counter_payment(
            LI[0], [item.id], "cash", None, new_idempotency_key()
        )
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=SIZE) as pilot:
        await staff_home(pilot, ui_server)
        page = await open_student(pilot, LI[0])
        assert rows(page.query_one("#student-orders", DataTable))[0][0] == paid.order_no
        await pilot.press("f6")
        screen = await receipt_shown(pilot, "her receipt")
        await pilot.press("r")
        await until(
            pilot,
            lambda: screen.message.key == "receipt.contacts_invalid_staff",
            "the refusal in words",
        )
        assert "该学生的手机号、邮箱有误" in screen_text(app)
        assert screen.desk.receipt is not None  # the receipt stays on screen
