"""The error codes of api.md as one typed exception hierarchy.

The server raises these and serialises them as
``{"error": {"code", "message", "details"}}``; the client turns such a body back
into the same class with :func:`error_from_body`. The UI maps ``code`` to its own
words and never parses ``message``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """Any error the backend answers with, or the client meets on the way."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = details
        super().__init__(f"{self.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Unprocessable(ApiError):
    status = 422


# -- generic -------------------------------------------------------------------
class ValidationFailed(Unprocessable):
    code = "VALIDATION_ERROR"
    default_message = "The request is not valid"


class RouteNotFound(NotFound):
    code = "NOT_FOUND"
    default_message = "No such resource"


class MethodNotAllowed(ApiError):
    code = "METHOD_NOT_ALLOWED"
    status = 405
    default_message = "Method not allowed"


class PayloadTooLarge(ApiError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    default_message = "Request body too large"


class InternalError(ApiError):
    code = "INTERNAL_ERROR"
    status = 500


class RateLimited(ApiError):
    code = "RATE_LIMITED"
    status = 429
    default_message = "Too many attempts, try again later"


# -- authentication ------------------------------------------------------------
class Unauthenticated(Unauthorized):
    code = "UNAUTHENTICATED"
    default_message = "Not logged in or the session has expired"


class BadCredentials(Unauthorized):
    code = "BAD_CREDENTIALS"
    default_message = "Wrong username or password"


class AccountLocked(ApiError):
    code = "ACCOUNT_LOCKED"
    status = 423
    default_message = "Account locked after too many failed attempts"


class CaptchaInvalid(BadRequest):
    code = "CAPTCHA_INVALID"
    default_message = "Wrong or expired captcha"


class PasswordChangeRequired(Forbidden):
    code = "PASSWORD_CHANGE_REQUIRED"
    default_message = "The password must be changed first"


class WeakPassword(Unprocessable):
    code = "WEAK_PASSWORD"
    default_message = "The new password does not meet the policy"


class ForbiddenRole(Forbidden):
    code = "FORBIDDEN"
    default_message = "Not allowed for this account"


# -- password reset ------------------------------------------------------------
class ResetIdentityMismatch(BadRequest):
    code = "RESET_IDENTITY_MISMATCH"
    default_message = "The identity details do not match"


class ResetCodeInvalid(BadRequest):
    code = "RESET_CODE_INVALID"
    default_message = "Wrong verification code"


class ResetExpired(BadRequest):
    code = "RESET_EXPIRED"
    default_message = "The reset has expired; start again"


# -- fees and orders -----------------------------------------------------------
class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"
    default_message = "No such order"


class StudentNotFound(NotFound):
    code = "STUDENT_NOT_FOUND"
    default_message = "No such student"


class ItemNotFound(NotFound):
    code = "ITEM_NOT_FOUND"
    default_message = "No such fee item"


class OutsidePaymentHours(Forbidden):
    code = "OUTSIDE_PAYMENT_HOURS"
    default_message = "Payments are closed at this hour"


class ProfileIncomplete(Conflict):
    code = "PROFILE_INCOMPLETE"
    default_message = "A valid phone and e-mail are needed before paying"


class MixedReceiptTypes(Unprocessable):
    code = "MIXED_RECEIPT_TYPES"
    default_message = "Tuition and accommodation cannot be paid together with other fees"


class ItemAlreadyPaid(Conflict):
    code = "ITEM_ALREADY_PAID"
    default_message = "A fee item is already paid"


class ItemInOpenOrder(Conflict):
    code = "ITEM_IN_OPEN_ORDER"
    default_message = "A fee item is already in an unfinished order"


class IdempotencyKeyReused(Unprocessable):
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used with another body"


class IdempotencyInProgress(Conflict):
    code = "IDEMPOTENCY_IN_PROGRESS"
    default_message = "A request with this Idempotency-Key is still being handled"


class OrderAlreadyPaid(Conflict):
    code = "ORDER_ALREADY_PAID"
    default_message = "The order is already paid"


class PaymentInProgress(Conflict):
    code = "PAYMENT_IN_PROGRESS"
    default_message = "A payment for this order is in progress"


class OrderNotOpen(Conflict):
    code = "ORDER_NOT_OPEN"
    default_message = "The order is not open"


class OrderNotPaid(Conflict):
    code = "ORDER_NOT_PAID"
    default_message = "The order is not paid: it has no receipt"


# -- money after payment (api-money.md) ----------------------------------------
class ItemNotRefundable(Conflict):
    code = "ITEM_NOT_REFUNDABLE"
    default_message = "A fee item cannot be refunded"


class TradeNotRefundable(Conflict):
    code = "TRADE_NOT_REFUNDABLE"
    default_message = "This trade cannot be refunded"


class SameStaff(Forbidden):
    code = "SAME_STAFF"
    default_message = "A refund is approved by another staff member than its requester"


class RefundNotPending(Conflict):
    code = "REFUND_NOT_PENDING"
    default_message = "The refund is no longer pending"


class RefundNotFound(NotFound):
    code = "REFUND_NOT_FOUND"
    default_message = "No such refund"


# -- gateway -------------------------------------------------------------------
class BadSignature(Unauthorized):
    code = "BAD_SIGNATURE"
    default_message = "Missing or bad signature"


class AmountMismatch(BadRequest):
    code = "AMOUNT_MISMATCH"
    default_message = "The amount does not match the order"


class NotifyUnconfirmed(Conflict):
    code = "NOTIFY_UNCONFIRMED"
    default_message = "The gateway does not confirm this payment"


class TradeClosed(Conflict):
    code = "TRADE_CLOSED"
    default_message = "This payment is closed"


class TradePaid(Conflict):
    code = "TRADE_PAID"
    default_message = "This payment is already made"


class TradeNotFound(NotFound):
    code = "TRADE_NOT_FOUND"
    default_message = "No such payment"


# -- client side only ----------------------------------------------------------
class TransportError(ApiError):
    """The backend could not be reached or answered something unreadable."""

    status = 0


class BackendUnreachable(TransportError):
    code = "NETWORK_ERROR"
    default_message = "The backend cannot be reached"


class BackendTimeout(TransportError):
    code = "TIMEOUT"
    default_message = "The backend did not answer in time"


class BadResponse(TransportError):
    code = "BAD_RESPONSE"
    default_message = "The backend answered something unreadable"


def _all_subclasses(cls: type[ApiError]) -> list[type[ApiError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls for cls in _all_subclasses(ApiError) if "code" in cls.__dict__
}


def error_from_body(status: int, body: Any) -> ApiError:
    """Rebuild the typed error from an error body; unknown codes keep their code."""
    try:
        err = body["error"]
        code, message, details = err["code"], err.get("message"), err.get("details") or {}
        if not isinstance(code, str) or not isinstance(details, dict):
            raise TypeError
    except (KeyError, TypeError):
        return BadResponse(f"HTTP {status} without an error body")
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = type(code, (ApiError,), {"code": code, "status": status})
    return cls(message, **details)
