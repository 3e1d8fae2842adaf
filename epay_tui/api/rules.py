"""Rules both sides enforce, written once: the server refuses, the UI prevents.

Receipt-type grouping, the password policy (with every failed reason), phone and
e-mail checks, payment hours, and money formatting. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, time
from functools import cache
from typing import Literal, NamedTuple, Protocol, TypeVar

FeeKind = Literal["tuition", "accommodation", "agency"]
ReceiptType = Literal["fiscal", "receipt"]

# ---------------------------------------------------------------------------- fees
FISCAL_KINDS: frozenset[str] = frozenset({"tuition", "accommodation"})
RECEIPT_TYPE_ORDER: tuple[ReceiptType, ...] = ("fiscal", "receipt")
"""The college's advice: pay tuition and accommodation first, the rest next."""

MAX_ITEMS_PER_ORDER = 50


def receipt_type_for(kind: str) -> ReceiptType:
    """Tuition and accommodation carry the fiscal receipt; every other fee a receipt."""
    return "fiscal" if kind in FISCAL_KINDS else "receipt"


class HasReceiptType(Protocol):
    @property
    def receipt_type(self) -> str: ...


T = TypeVar("T", bound=HasReceiptType)


def receipt_types(items: Iterable[HasReceiptType]) -> set[str]:
    return {item.receipt_type for item in items}


def is_single_receipt_type(items: Iterable[HasReceiptType]) -> bool:
    """One order holds one receipt type."""
    return len(receipt_types(items)) <= 1


def receipt_type_of(kinds: Iterable[str]) -> ReceiptType | None:
    """The one receipt type of fees of these kinds; None when they mix (or are none)."""
    found = {receipt_type_for(kind) for kind in kinds}
    return found.pop() if len(found) == 1 else None


class Payable(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def outstanding(self) -> int: ...


def payable(item: Payable) -> bool:
    """A fee item that can go into a new order: unpaid, something still owed."""
    return item.state == "unpaid" and item.outstanding > 0


def conflicts_with_selection(selected: Iterable[HasReceiptType], item: HasReceiptType) -> bool:
    """Would checking ``item`` mix receipt types in the current selection?"""
    kinds = receipt_types(selected)
    return bool(kinds) and item.receipt_type not in kinds


def first_group(items: Sequence[T]) -> tuple[list[T], list[T]]:
    """Split a mixed selection: the group to pay now (fiscal first) and the rest."""
    for receipt_type in RECEIPT_TYPE_ORDER:
        now = [item for item in items if item.receipt_type == receipt_type]
        if now:
            return now, [item for item in items if item.receipt_type != receipt_type]
    return [], []


# ---------------------------------------------------------------------------- money
def format_fen(fen: int) -> str:
    """Integer fen to display text: ``650000`` -> ``¥6,500.00``."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def plain_yuan(fen: int) -> str:
    """Integer fen as a spreadsheet's number: ``650000`` -> ``6500.00``."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan}.{cents:02d}"


# ---------------------------------------------------------------------------- contacts
PHONE_RE = re.compile(r"1[3-9][0-9]{9}")
r"""ASCII digits only: ``\d`` would also take Arabic-Indic or fullwidth digits."""
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(\.[A-Za-z0-9\-]{1,63})+")
MAX_EMAIL_LENGTH = 254

ProfileProblem = Literal["PHONE_MISSING", "PHONE_INVALID", "EMAIL_MISSING", "EMAIL_INVALID"]


def phone_problem(phone: str | None) -> ProfileProblem | None:
    """Mainland mobile: 11 ASCII digits starting 1[3-9]."""
    if not phone:
        return "PHONE_MISSING"
    return None if PHONE_RE.fullmatch(phone) else "PHONE_INVALID"


def email_problem(email: str | None) -> ProfileProblem | None:
    if not email:
        return "EMAIL_MISSING"
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_RE.fullmatch(email):
        return "EMAIL_INVALID"
    return None


def profile_problems(phone: str | None, email: str | None) -> list[ProfileProblem]:
    """Both a valid phone and a valid e-mail are needed to pay."""
    return [p for p in (phone_problem(phone), email_problem(email)) if p]


# ---------------------------------------------------------------------------- text
def printable_only(text: str, keep: str = "") -> str:
    """``text`` without what no keyboard types: control, format (bidi overrides,
    zero-width) and unassigned characters; those in ``keep`` stay."""
    return "".join(c for c in text if c.isprintable() or c in keep)


def is_typeable(text: str) -> bool:
    return printable_only(text) == text


REFERENCE_MAX = 64
"""A counter payment's POS slip number (or cash note), at most this long."""
REASON_MAX = 200
"""A refund's reason, or a rejection's, at most this long."""


def is_note(text: str) -> bool:
    """A short text a staff member types (a slip number, a reason): not blank, and only
    what a keyboard types."""
    return bool(text.strip()) and is_typeable(text)


# ---------------------------------------------------------------------------- passwords
PASSWORD_MIN, PASSWORD_MAX = 8, 32
PASSWORD_FIELD_MAX = 128
"""Longest password a request may carry; longer is a validation error, not policy."""

PasswordReason = Literal[
    "TOO_SHORT",
    "TOO_LONG",
    "NEEDS_LETTER",
    "NEEDS_DIGIT",
    "CONTAINS_USERNAME",
    "INITIAL_PATTERN",
    "COMMON",
    "SAME_AS_OLD",
]
PASSWORD_REASONS: tuple[PasswordReason, ...] = PasswordReason.__args__  # type: ignore[attr-defined]

INITIAL_SUFFIX = "Czgc"
_INITIAL_RE = re.compile(r"[0-9]{5}[0-9Xx](?i:czgc)")


def initial_password(id_card_no: str) -> str:
    """The college's initial password: last six ID-card characters + ``Czgc``."""
    return id_card_no[-6:] + INITIAL_SUFFIX


def matches_initial_pattern(password: str) -> bool:
    return _INITIAL_RE.fullmatch(password) is not None


_COMMON_WORDS = """
password passw0rd p@ssword pass qwerty qwertyuiop asdfgh asdfghjkl zxcvbn zxcvbnm
abc abcd abcde abcdef abcdefg abc123 admin administrator root user guest test
welcome login master hello hello123 letmein dragon monkey shadow sunshine princess
football baseball basketball soccer superman batman iloveyou loveyou love lover
trustno1 whatever freedom flower michael jennifer jordan charlie daniel thomas
computer internet secret summer winter spring autumn starwars pokemon naruto
killer hunter ranger buster tigger ginger cookie cheese pepper orange banana apple
woaini aini wangyu zhangwei wangwei liuyang chenjie lijun china beijing shanghai
nihao caonima xiaoming xiaohong qq qqqq aaaa aaa aa a q w z x s
asd asdf qwe qwer qaz wsx zaq xsw edc student school college teacher czgc czie
""".split()  # noqa: SIM905
_COMMON_SUFFIXES = """
1 12 123 1234 12345 123456 1234567 12345678 123456789 0 00 000 01 11 111 1111
666 888 999 520 521 1314 5201314 007 2000 2008 2010 2012 2020 2021 2022 2023
2024 2025 2026 2027 88 99 66 01! 1! 123!
""".split()  # noqa: SIM905
_COMMON_LITERALS = """
12345678 123456789 1234567890 87654321 11111111 88888888 00000000 66666666
password1 qwerty123 a1234567 aa123456 a12345678 a123456789 abc12345 abc123456
1qaz2wsx 1qaz@wsx zaq12wsx qazwsx123 1q2w3e4r 1q2w3e4r5t q1w2e3r4 q1w2e3r4t5
1qazxsw2 qwer1234 asdf1234 zxcv1234 qwe12345 asd12345 zxc12345 woaini1314
woaini520 5201314a a5201314 iloveyou1 iloveyou2 123qwe123 123qweasd qweasd123
qweasdzxc 1a2b3c4d a1b2c3d4 abcd1234 1234abcd 123abc123 abc12345678 p@ssw0rd
passw0rd1 password12 password123 admin123 admin1234 admin888 root1234 test1234
welcome1 welcome123 letmein1 monkey123 dragon123 master123 sunshine1 princess1
football1 baseball1 superman1 trustno1 hello1234 iloveu520 aaa123456 qq123456
zz123456 as123456 a11111111 a00000000 aa111111 abc111111 woaini123 wo123456
""".split()  # noqa: SIM905


@cache
def common_passwords() -> frozenset[str]:
    """Lower-cased common passwords: a literal list plus common word+number forms."""
    found = {p.lower() for p in _COMMON_LITERALS}
    for word in _COMMON_WORDS:
        found.add(word)
        for suffix in _COMMON_SUFFIXES:
            found.add(word + suffix)
            found.add(suffix + word)
    return frozenset(found)


def password_problems(
    password: str,
    username: str = "",
    old_password: str | None = None,
    *,
    same_as_old: bool = False,
) -> list[PasswordReason]:
    """Every rule of the policy that ``password`` fails, in the contract's order.

    ``SAME_AS_OLD`` when it equals ``old_password``, or when the caller knows so another
    way (``same_as_old``: the backend checks a reset's new password against the hash)."""
    reasons: list[PasswordReason] = []
    if len(password) < PASSWORD_MIN:
        reasons.append("TOO_SHORT")
    if len(password) > PASSWORD_MAX:
        reasons.append("TOO_LONG")
    if not any(c.isascii() and c.isalpha() for c in password):
        reasons.append("NEEDS_LETTER")
    if not any(c.isascii() and c.isdigit() for c in password):
        reasons.append("NEEDS_DIGIT")
    if username and username.lower() in password.lower():
        reasons.append("CONTAINS_USERNAME")
    if matches_initial_pattern(password):
        reasons.append("INITIAL_PATTERN")
    if password.lower() in common_passwords():
        reasons.append("COMMON")
    if same_as_old or (old_password is not None and password == old_password):
        reasons.append("SAME_AS_OLD")
    return reasons


# ---------------------------------------------------------------------------- hours
class PaymentHours(NamedTuple):
    """The window ``[opens, closes)`` in school time, ``closes`` may be ``24:00``."""

    opens: str
    closes: str

    @property
    def opens_minute(self) -> int:
        return _minutes(self.opens)

    @property
    def closes_minute(self) -> int:
        return _minutes(self.closes)

    def is_open(self, local: datetime | time) -> bool:
        minute = local.hour * 60 + local.minute
        return self.opens_minute <= minute < self.closes_minute

    def __str__(self) -> str:
        return f"{self.opens}-{self.closes}"


_HHMM_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00")


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def parse_payment_hours(text: str) -> PaymentHours:
    """``"08:00-22:00"`` -> PaymentHours; refuses bad times and ``opens >= closes``."""
    opens, sep, closes = text.strip().partition("-")
    if not sep or not _HHMM_RE.fullmatch(opens) or not _HHMM_RE.fullmatch(closes):
        raise ValueError(f"payment hours must look like 08:00-22:00, not {text!r}")
    hours = PaymentHours(opens, closes)
    if opens == "24:00" or hours.opens_minute >= hours.closes_minute:
        raise ValueError(f"payment hours must open before they close: {text!r}")
    return hours


NUL_REFUSED = "must not contain a NUL character"


def has_nul(value: object) -> bool:
    """A NUL character in a string, or in a list's strings (PostgreSQL stores none)."""
    if isinstance(value, str):
        return "\x00" in value
    return isinstance(value, list) and any(isinstance(v, str) and "\x00" in v for v in value)
