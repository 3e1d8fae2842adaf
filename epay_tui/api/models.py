"""Pydantic models of every request and response body of api.md.

Requests refuse unknown fields and carry the contract's length limits; responses
ignore fields they do not know, so an older client keeps working against a newer
backend. Money is integer fen, times are aware datetimes in the school's zone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from epay_tui.api.rules import (
    MAX_ITEMS_PER_ORDER,
    NUL_REFUSED,
    PASSWORD_FIELD_MAX,
    REASON_MAX,
    REFERENCE_MAX,
    has_nul,
    is_note,
    is_typeable,
)

Channel = Literal["wechat", "alipay", "ccb"]
CHANNELS: tuple[Channel, ...] = ("wechat", "alipay", "ccb")
CounterMethod = Literal["cash", "pos"]
PaidChannel = Literal["wechat", "alipay", "ccb", "cash", "pos"]
"""How an order was paid: a gateway's channel, or at the counter."""
Role = Literal["student", "staff"]
OrderStatus = Literal["open", "paid", "closed", "awaiting_confirmation"]
ORDER_STATUSES: tuple[OrderStatus, ...] = OrderStatus.__args__  # type: ignore[attr-defined]
UNFINISHED_STATUSES: tuple[OrderStatus, ...] = ("open", "awaiting_confirmation")
CloseReason = Literal["expired", "cancelled", "released"]
ItemState = Literal["unpaid", "paid", "in_order", "refunded"]
RefundStatus = Literal["pending", "rejected", "processing", "succeeded", "failed"]
REFUND_STATUSES: tuple[RefundStatus, ...] = RefundStatus.__args__  # type: ignore[attr-defined]
TradeState = Literal["NOTPAY", "SUCCESS", "CLOSED", "PAYERROR"]

Username = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_FIELD_MAX)]


def _typeable(value: str) -> str:
    if not is_typeable(value):
        raise ValueError("must hold no control or invisible characters")
    return value


NewPassword = Annotated[Password, AfterValidator(_typeable)]
"""A password being set: one that can be typed again (no control or bidi characters)."""
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
CaptchaAnswer = Annotated[str, StringConstraints(min_length=1, max_length=16)]
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Request(BaseModel):
    """A request body: unknown fields are refused, and so is a NUL character in a text
    (no stored text has one, on either database: the answer must not depend on which)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if has_nul(value):
            raise ValueError(NUL_REFUSED)
        return value


class Response(BaseModel):
    """A response body: unknown fields are ignored by the client."""

    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------- errors
class ErrorDetail(Response):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(Response):
    error: ErrorDetail


# ---------------------------------------------------------------------------- public
class PaymentHoursInfo(Response):
    opens: str = Field(examples=["08:00"])
    closes: str = Field(examples=["22:00"])
    open_now: bool


class Meta(Response):
    school: str
    payee: str
    timezone: str
    server_time: datetime
    payment_hours: PaymentHoursInfo
    channels: list[Channel]
    order_ttl_seconds: int
    sandbox: bool


class Captcha(Response):
    captcha_id: str
    image_png: str = Field(description="base64 PNG, at most 160x60 px")
    expires_at: datetime


class Health(Response):
    status: Literal["ok"]


# ---------------------------------------------------------------------------- auth
class LoginRequest(Request):
    username: Username
    password: Password
    captcha_id: ShortText
    captcha_answer: CaptchaAnswer


class LoginResult(Response):
    token: str
    role: Role
    must_change_password: bool
    password_issue: Literal["initial", "weak"] | None
    expires_at: datetime


class PasswordChange(Request):
    old_password: Password
    new_password: NewPassword


# ---------------------------------------------------------------------------- reset
class ResetStart(Request):
    username: Username
    name: ShortText
    id_card_no: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    captcha_id: ShortText
    captcha_answer: CaptchaAnswer


class ResetChannel(Response):
    channel: Literal["sms", "email"]
    to: str


class ResetStarted(Response):
    reset_id: str
    channels: list[ResetChannel]


class ResetSend(Request):
    reset_id: ShortText
    channel: Literal["sms", "email"]


class ResetComplete(Request):
    reset_id: ShortText
    code: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    new_password: NewPassword


# ---------------------------------------------------------------------------- profile
class Profile(Response):
    username: str
    name: str
    role: Role
    department: str
    major: str
    class_name: str
    grade: str
    id_card_masked: str
    phone: str | None
    email: str | None
    profile_problems: list[str]


class ProfileUpdate(Request):
    current_password: Password
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None


# ---------------------------------------------------------------------------- fees
class FeeItem(Response):
    id: str
    name: str
    kind: Literal["tuition", "accommodation", "agency"]
    receipt_type: Literal["fiscal", "receipt"]
    amount_due: int
    amount_paid: int
    outstanding: int
    state: ItemState
    order_no: str | None


class FeeTag(Response):
    tag: str
    items: list[FeeItem]


class Fees(Response):
    tags: list[FeeTag]


# ---------------------------------------------------------------------------- orders
ItemIds = Annotated[list[ItemId], Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)]


class OrderCreate(Request):
    item_ids: ItemIds


class OrderItem(Response):
    id: str
    name: str
    amount: int


class PaymentInfo(Response):
    channel: Channel
    qr_url: str
    issued_at: datetime
    expires_at: datetime


class OrderRefund(Response):
    refund_no: str
    kind: Literal["items", "trade"]
    amount: int
    status: RefundStatus
    item_ids: list[str]


class Order(Response):
    order_no: str
    status: OrderStatus
    items: list[OrderItem]
    total: int
    receipt_type: Literal["fiscal", "receipt"]
    payee: str
    created_at: datetime
    expires_at: datetime
    payment: PaymentInfo | None
    paid_at: datetime | None
    channel: PaidChannel | None
    transaction_id: str | None
    receipt_no: str | None
    close_reason: CloseReason | None
    refunded: int = 0
    """Fen given back by succeeded ``items`` refunds of this order's payment."""
    refunds: list[OrderRefund] = Field(default_factory=list)
    """Every refund tied to the order, of either kind."""

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED_STATUSES


class Orders(Response):
    orders: list[Order]


class ReceiptPayer(Response):
    username: str
    name: str


class ReceiptItem(Response):
    id: str
    name: str
    amount: int
    refunded: int


class Receipt(Response):
    """A paid order's receipt (电子票据), fixed at payment; ``check_code`` never changes."""

    receipt_no: str
    check_code: str
    receipt_type: Literal["fiscal", "receipt"]
    order_no: str
    payer: ReceiptPayer
    payee: str
    items: list[ReceiptItem]
    total: int
    refunded: int
    channel: PaidChannel
    transaction_id: str
    paid_at: datetime
    status: Literal["issued", "partially_refunded", "refunded"]


class PayRequest(Request):
    channel: Channel


class PayQr(Response):
    order_no: str
    channel: Channel
    qr_url: str
    payee: str
    amount: int
    expires_at: datetime


# ---------------------------------------------------------------------------- gateway
class SandboxPayRequest(Request):
    outcome: Literal["success", "slow", "declined"]
    notify: Literal["now", "delay", "drop", "duplicate"] = "now"
    delay_seconds: Annotated[int, Field(ge=0, le=3600)] = 5


class SandboxPayResult(Response):
    trade_state: TradeState


class GatewayNotify(Request):
    trade_no: str
    order_no: str
    channel: Channel
    amount: int
    trade_state: TradeState
    transaction_id: str | None
    paid_at: datetime | None


class StatementTrade(Response):
    trade_no: str
    order_no: str
    channel: Channel
    amount: int
    transaction_id: str
    paid_at: datetime


class Statement(Response):
    date: date
    trades: list[StatementTrade]


class LatestCaptcha(Response):
    captcha_id: str
    answer: str


class OutboxMessage(Response):
    channel: Literal["sms", "email"]
    to: str
    body: str
    sent_at: datetime


class Outbox(Response):
    messages: list[OutboxMessage]


# ---------------------------------------------------------------------------- staff
class StudentSummary(Response):
    username: str
    name: str
    department: str
    class_name: str
    locked: bool


class StudentList(Response):
    students: list[StudentSummary]


class StudentDetail(Response):
    profile: Profile
    fees: Fees
    orders: list[Order]


class ReconcileRequest(Request):
    date: date


class Discrepancy(Response):
    order_no: str
    kind: str
    detail: str


class DiscrepancyEntry(Response):
    id: int
    at: datetime
    order_no: str
    kind: str
    detail: str
    trade_no: str | None
    amount: int | None
    refund_no: str | None


class Discrepancies(Response):
    discrepancies: list[DiscrepancyEntry]


class ReconcileResult(Response):
    date: date
    matched: int
    recovered: list[str]
    released: list[str]
    discrepancies: list[Discrepancy]


class AuditEntry(Response):
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


class AuditLog(Response):
    entries: list[AuditEntry]


# ---------------------------------------------------------------------------- money (api-money.md)
def _note(value: str) -> str:
    if not is_note(value):
        raise ValueError("must not be blank, and hold no control or invisible characters")
    return value


Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=REFERENCE_MAX), AfterValidator(_note)
]
Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=REASON_MAX), AfterValidator(_note)
]


class CounterPayment(Request):
    item_ids: ItemIds
    method: CounterMethod
    reference: Reference | None = None
    """The POS slip number (required for ``pos``); for ``cash`` a note, optional."""


class CashierPayment(Response):
    order_no: str
    username: str
    name: str
    method: CounterMethod
    reference: str | None
    total: int
    paid_at: datetime


class CashierTotals(Response):
    cash: int
    pos: int
    count: int


class CashierReport(Response):
    date: date
    cashier: str
    payments: list[CashierPayment]
    totals: CashierTotals


class RefundRequest(Request):
    order_no: ShortText
    item_ids: ItemIds | None = None
    trade_no: ShortText | None = None
    reason: Reason


class RefundDecision(Request):
    reason: Reason


class Refund(Response):
    refund_no: str
    kind: Literal["items", "trade"]
    order_no: str
    item_ids: list[str]
    trade_no: str | None
    amount: int
    channel: PaidChannel
    reason: str
    status: RefundStatus
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    settled_at: datetime | None


class Refunds(Response):
    refunds: list[Refund]


class ArrearsStudent(Response):
    username: str
    name: str
    department: str
    class_name: str
    outstanding: int


class Arrears(Response):
    tag: str
    students: list[ArrearsStudent]
    total_outstanding: int
    count: int


class DuplicatePaymentRequest(Request):
    order_no: ShortText


class DuplicatePayment(Response):
    trade_no: str
    transaction_id: str
    amount: int
