"""The payment-gateway sandbox: WeChat Pay, Alipay and CCB behave alike.

It plays the outside party: it keeps its own trades, answers queries and close
requests as a real gateway would (a trade whose money is on its way refuses to
close), and tells the backend of payments by signed notifies over real HTTP. The
backend speaks to a gateway only through :class:`Gateway` -- the interface a real
WeChat Pay, Alipay or CCB adapter implements too -- and the sandbox knows of the backend
only what :class:`SandboxHost` names: neither imports the other. Its own tables are
the store's to read and write (:mod:`epay_tui.server.store.trades`).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal, Protocol

import httpx
from fastapi.concurrency import run_in_threadpool

from epay_tui.api import errors, models
from epay_tui.server import security
from epay_tui.server.store import trades
from epay_tui.server.store.trades import PAYING

if TYPE_CHECKING:
    from epay_tui.server.config import SchoolTime
    from epay_tui.server.store import Store
    from epay_tui.server.store.engine import Tx

log = logging.getLogger("epay_tui.server.gateway")

CloseResult = Literal["closed", "paid", "in_progress"]

_TXN_PREFIX = {"wechat": "4200", "alipay": "2026", "ccb": "1050"}
NOTIFY_RETRY_SECONDS = (15, 15, 30, 180, 600, 1800, 3600)
"""A notify not answered ``SUCCESS`` is sent again after these pauses (as real gateways
do), then given up; reconciliation and queries still find the payment."""


@dataclass(frozen=True)
class RefundView:
    """What the gateway answers about a refund: ``SUCCESS`` (the money is on its way
    back) or ``REFUSED`` with a ``reason`` (``unknown_trade``, ``not_paid``,
    ``beyond_paid``)."""

    refund_no: str
    trade_no: str
    amount: int
    state: str
    reason: str = ""


@dataclass(frozen=True)
class TradeView:
    """What a query answers about a trade."""

    trade_no: str
    order_no: str
    channel: str
    amount: int
    state: str
    transaction_id: str | None
    paid_at: float | None


class Gateway(Protocol):
    """What the backend asks of a payment gateway (the sandbox, or a real adapter)."""

    def create_trade(
        self,
        order_no: str,
        channel: str,
        amount: int,
        payee: str,
        items: list[dict],
        expires_at: float,
    ) -> tuple[str, str]:
        """Open a trade for an order: ``(trade_no, qr_url)``."""
        ...

    def query(self, trade_no: str) -> TradeView:
        """The trade as the gateway sees it now."""
        ...

    def close(self, trade_no: str) -> CloseResult:
        """Close a trade so no more money can come in."""
        ...

    def statement(self, day: date) -> models.Statement:
        """The day's successful trades, for reconciliation."""
        ...

    def refund(self, trade_no: str, refund_no: str, amount: int) -> RefundView:
        """Give back ``amount`` of a paid trade; idempotent on ``refund_no`` (the same
        number again answers the same result and never refunds twice)."""
        ...

    def query_refund(self, refund_no: str) -> RefundView | None:
        """The refund as the gateway sees it now (None: it never received it)."""
        ...

    async def aclose(self) -> None: ...


class SandboxHost(Protocol):
    """What the sandbox needs of the backend it plays the gateway for."""

    store: Store
    time: SchoolTime
    notify_secret: bytes
    internal_url: str
    """Where notifies go (over HTTP, as from a real gateway)."""

    @property
    def public_url(self) -> str:
        """Where a payer's phone opens a pay link."""
        ...


class SandboxGateway:
    """The sandbox: a :class:`Gateway`, plus the payer's side (the pay page) and the
    notifies it sends."""

    def __init__(self, backend: SandboxHost) -> None:
        self.backend = backend
        self.store = backend.store
        self.http: httpx.AsyncClient | None = None

    # ----------------------------------------------------------------- merchant side
    def create_trade(
        self,
        order_no: str,
        channel: str,
        amount: int,
        payee: str,
        items: list[dict],
        expires_at: float,
    ) -> tuple[str, str]:
        """Open a trade for an order; returns ``(trade_no, qr_url)``."""
        trade_no = f"T{secrets.token_hex(8)}"
        pay_token = secrets.token_urlsafe(9)
        with self.store.write() as tx:
            trades.add_trade(
                tx,
                trade_no=trade_no,
                pay_token=pay_token,
                order_no=order_no,
                channel=channel,
                amount=amount,
                payee=payee,
                items=items,
                created_at=self.backend.time.ts(),
                expires_at=expires_at,
            )
        return trade_no, f"{self.backend.public_url}/sandbox/pay/{pay_token}"

    def query(self, trade_no: str) -> TradeView:
        """The trade as the gateway sees it now (a settled slow payment becomes SUCCESS)."""
        self._settle_due()
        with self.store.read() as tx:
            row = trades.trade_row(tx, trade_no)
        if row is None:
            raise errors.TradeNotFound()
        state = "NOTPAY" if row["state"] == PAYING else row["state"]
        return TradeView(
            row["trade_no"],
            row["order_no"],
            row["channel"],
            row["amount"],
            state,
            row["transaction_id"] if state == "SUCCESS" else None,
            row["paid_at"] if state == "SUCCESS" else None,
        )

    def close(self, trade_no: str) -> CloseResult:
        """Close a trade so no more money can come in: ``closed``, ``paid`` or ``in_progress``."""
        self._settle_due()
        with self.store.write() as tx:
            row = trades.trade_row(tx, trade_no, lock=True)
            if row is None or row["state"] == "CLOSED":
                return "closed"
            if row["state"] == "SUCCESS":
                return "paid"
            if row["state"] == PAYING:
                return "in_progress"
            trades.set_state(tx, trade_no, "CLOSED")
        return "closed"

    def refund(self, trade_no: str, refund_no: str, amount: int) -> RefundView:
        """Refunds of a ``SUCCESS`` trade up to its amount, settled at once; one answer
        per refund number, kept (a trade the gateway does not know is refused unkept)."""
        with self.store.write() as tx:
            trade = trades.trade_row(tx, trade_no, lock=True)  # a trade's refunds in turn
            done = trades.refund_row(tx, refund_no)
            if done is not None:
                return _refund_view(done)
            if trade is None:
                return RefundView(refund_no, trade_no, amount, "REFUSED", "unknown_trade")
            if trade["state"] != "SUCCESS":
                reason = "not_paid"
            elif amount <= 0 or trades.refunded(tx, trade_no) + amount > trade["amount"]:
                reason = "beyond_paid"
            else:
                reason = ""
            state = "REFUSED" if reason else "SUCCESS"
            now = self.backend.time.ts()
            trades.add_refund(tx, refund_no, trade_no, amount, state, reason, now)
        return RefundView(refund_no, trade_no, amount, state, reason)

    def query_refund(self, refund_no: str) -> RefundView | None:
        with self.store.read() as tx:
            done = trades.refund_row(tx, refund_no)
        return None if done is None else _refund_view(done)

    def statement(self, day: date) -> models.Statement:
        """The gateway's successful trades whose payment fell on ``day`` (school time)."""
        self._settle_due()
        start = datetime(day.year, day.month, day.day, tzinfo=self.backend.time.zone).timestamp()
        with self.store.read() as tx:
            rows = trades.settled_between(tx, start, start + 86400)
        return models.Statement(
            date=day,
            trades=[
                models.StatementTrade(
                    trade_no=r["trade_no"],
                    order_no=r["order_no"],
                    channel=r["channel"],
                    amount=r["amount"],
                    transaction_id=r["transaction_id"],
                    paid_at=self.backend.time.at(r["paid_at"]),
                )
                for r in rows
            ],
        )

    # ----------------------------------------------------------------- payer side
    def trade_by_token(self, pay_token: str, *, lock: bool = False) -> dict:
        """The trade behind a pay page; raises TRADE_NOT_FOUND/CLOSED/PAID for the page.
        ``lock`` holds its row until the (caller's) write transaction ends."""
        self._settle_due()
        with self.store.read() as tx:
            row = trades.trade_by_token(tx, pay_token, lock=lock)
        if row is None:
            raise errors.TradeNotFound()
        trade = dict(row)
        if trade["state"] in ("SUCCESS", PAYING):
            raise errors.TradePaid(
                trade_state="SUCCESS" if trade["state"] == "SUCCESS" else "NOTPAY"
            )
        if trade["state"] == "CLOSED" or trade["expires_at"] <= self.backend.time.ts():
            raise errors.TradeClosed()
        return trade

    def pay(self, pay_token: str, body: models.SandboxPayRequest) -> models.SandboxPayResult:
        """The payer's answer on the phone: success, slow (bank busy) or declined."""
        if body.outcome == "slow" and body.notify == "delay":
            raise errors.ValidationFailed(fields={"notify": "delay does not apply to slow"})
        now = self.backend.time.ts()
        with self.store.write() as tx:
            trade = self.trade_by_token(pay_token, lock=True)
            if body.outcome == "declined":
                trades.set_state(tx, trade["trade_no"], "PAYERROR")
                return models.SandboxPayResult(trade_state="PAYERROR")
            settles_at = now + body.delay_seconds if body.outcome == "slow" else now
            trades.start_paying(
                tx,
                trade["trade_no"],
                settles_at=settles_at,
                notify_mode=body.notify,
                transaction_id=self._transaction_id(trade["channel"]),
            )
            if body.outcome == "success":
                notify_at = now + body.delay_seconds if body.notify == "delay" else now
                self._settle(tx, trade["trade_no"], settles_at, body.notify, notify_at)
        return models.SandboxPayResult(
            trade_state="SUCCESS" if body.outcome == "success" else "NOTPAY"
        )

    def duplicate_payment(
        self, order_no: str, channel: str, amount: int, payee: str
    ) -> tuple[str, str]:
        """A second successful payment of an order, as when its student also paid on
        another of the college's platforms; its notify is queued. ``(trade_no,
        transaction_id)``."""
        now = self.backend.time.ts()
        trade_no, _ = self.create_trade(order_no, channel, amount, payee, [], now + 60)
        transaction_id = self._transaction_id(channel)
        with self.store.write() as tx:
            trades.start_paying(
                tx, trade_no, settles_at=now, notify_mode="now", transaction_id=transaction_id
            )
            self._settle(tx, trade_no, now, "now", now)
        return trade_no, transaction_id

    @staticmethod
    def _transaction_id(channel: str) -> str:
        return _TXN_PREFIX[channel] + f"{secrets.randbelow(10**24):024d}"

    @staticmethod
    def _settle(tx: Tx, trade_no: str, paid_at: float, mode: str, notify_at: float) -> None:
        """The money arrived; the notifies the payer's ``mode`` asks for are queued."""
        trades.settle(tx, trade_no, paid_at)
        trades.queue_notifies(tx, trade_no, notify_at, {"drop": 0, "duplicate": 2}.get(mode, 1))

    def _settle_due(self) -> None:
        """Slow payments whose bank answer has arrived become SUCCESS (and notify)."""
        now = self.backend.time.ts()
        with self.store.read() as tx:
            if not trades.any_paying_due(tx, now):
                return
        with self.store.write() as tx:
            for row in trades.paying_due(tx, now):
                self._settle(
                    tx, row["trade_no"], row["settles_at"], row["notify_mode"], row["settles_at"]
                )

    # ----------------------------------------------------------------- notifies
    def take_due_notifies(self) -> list[tuple[int, str, bytes]]:
        """Claim the notifies that are due; returns ``(notify id, channel, signed body)``."""
        self._settle_due()
        now = self.backend.time.ts()
        with self.store.read() as tx:  # most ticks find nothing: no write for them
            if not trades.any_notify_due(tx, now):
                return []
        with self.store.write() as tx:
            claimed = [
                (r["id"], trades.trade_row(tx, r["trade_no"]))
                for r in trades.claim_due_notifies(tx, now)
            ]
        return [(notify_id, t["channel"], self.notify_body(t)) for notify_id, t in claimed]

    def notify_unanswered(self, notify_id: int) -> None:
        """The backend did not acknowledge: try again later, or give up after the last."""
        now = self.backend.time.ts()
        with self.store.write() as tx:
            attempts = trades.notify_attempts(tx, notify_id)
            if attempts is None:
                return
            if attempts >= len(NOTIFY_RETRY_SECONDS):
                trades.give_up_notify(tx, notify_id)
                return
            trades.retry_notify(tx, notify_id, now + NOTIFY_RETRY_SECONDS[attempts], attempts + 1)

    def notify_body(self, trade) -> bytes:
        return json.dumps(
            {
                "trade_no": trade["trade_no"],
                "order_no": trade["order_no"],
                "channel": trade["channel"],
                "amount": trade["amount"],
                "trade_state": "SUCCESS",
                "transaction_id": trade["transaction_id"],
                "paid_at": self.backend.time.at(trade["paid_at"]).isoformat(),
            },
            ensure_ascii=False,
        ).encode()

    async def send_notify(self, channel: str, body: bytes) -> bool:
        """POST one signed notify to the backend, over HTTP like a real gateway.

        True when the backend acknowledged it (``200`` with ``code`` ``SUCCESS``).
        """
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=10.0)
        signature = security.sign(self.backend.notify_secret, body)
        try:
            response = await self.http.post(
                f"{self.backend.internal_url}/api/v1/gateway/notify/{channel}",
                content=body,
                headers={"X-Sandbox-Signature": signature, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.warning("notify for %s not delivered: %s", channel, exc)
            return False
        try:
            return response.status_code == 200 and response.json().get("code") == "SUCCESS"
        except ValueError:
            return False

    async def dispatch_due(self) -> None:
        """Send the notifies that are due now; one not acknowledged is tried again later.
        (The only place notifies leave: after a payment at once, and on every tick.)"""
        for notify_id, channel, raw in await run_in_threadpool(self.take_due_notifies):
            if not await self.send_notify(channel, raw):
                await run_in_threadpool(self.notify_unanswered, notify_id)

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None


def _refund_view(row) -> RefundView:
    return RefundView(row["refund_no"], row["trade_no"], row["amount"], row["state"], row["reason"])
