from tests.conftest import ZHANG


async def test_pay_fiscal_group_end_to_end(login, clock):
    api = await login(*ZHANG, new_password="Zhangwei2026x")
    fees = await api.fees()
    fiscal = [i.id for i in fees.tags[0].items if i.receipt_type == "fiscal"]
    order = await api.create_order(fiscal, "key-1")
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    paid = await api.get_order(order.order_no, wait=5, status="open")
    assert paid.status == "paid"
    assert paid.receipt_no and paid.transaction_id
