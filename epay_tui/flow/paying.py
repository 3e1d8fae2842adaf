"""Paying, without a screen: one confirmation's order, the QR, following it to its end.

Every step raises ``ApiError`` (``TransportError`` when the backend cannot be reached);
what to show, and whether to try again, is the screens' one failure policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from epay_tui.api import rules
from epay_tui.api.client import new_idempotency_key

if TYPE_CHECKING:
    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import FeeItem, Order, PayQr

POLL_SECONDS = 25
"""How long one long poll may wait for the order to change (api.md allows up to 25)."""
UNFINISHED = ("open", "awaiting_confirmation")


class Checkout:
    """One 确认订单: its items, and the Idempotency-Key made once, so a second 提交支付 or
    a retry after 网络繁忙 always leads back to the same order."""

    def __init__(self, items: Sequence[FeeItem]) -> None:
        self.items = list(items)
        self.idempotency_key = new_idempotency_key()
        self.order: Order | None = None

    @property
    def total(self) -> int:
        return sum(item.outstanding for item in self.items)

    @property
    def receipt_type(self) -> str:
        return rules.receipt_type_of(item.kind for item in self.items) or ""

    async def submit(self, api: ApiClient, channel: str) -> tuple[Order, PayQr]:
        """提交支付: make (or find again) the order, then its QR for ``channel``."""
        self.order = await api.create_order([item.id for item in self.items], self.idempotency_key)
        return self.order, await api.pay_order(self.order.order_no, channel)


async def switch_channel(api: ApiClient, order_no: str, channel: str) -> tuple[PayQr, Order]:
    """更换支付方式: the backend closes the old trade first; the new QR and the order."""
    qr = await api.pay_order(order_no, channel)
    return qr, await api.get_order(order_no)


async def next_state(api: ApiClient, order: Order, *, look_only: bool = False) -> Order:
    """The order once it differs from ``order`` (a long poll), or as it is after
    ``POLL_SECONDS``; ``look_only`` (after a failed poll) looks at once."""
    return await api.get_order(
        order.order_no, wait=None if look_only else POLL_SECONDS, status=order.status
    )


def changed(old: Order, new: Order) -> bool:
    """What 扫码支付 must show again: another status, or another QR."""
    return new.status != old.status or new.payment != old.payment


async def claim_paid(api: ApiClient, order_no: str) -> Order:
    """我已支付: the backend asks the gateway at once; the order as it is then (paid, or
    awaiting confirmation while the gateway does not know of the payment yet)."""
    return await api.claim_paid(order_no)


async def cancel(api: ApiClient, order_no: str) -> Order:
    """取消订单: the trade is closed first, then the items are free again. A payment
    that is already on its way is refused (``PaymentInProgress``), never cancelled."""
    return await api.cancel_order(order_no)
