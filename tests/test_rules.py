"""The shared rules of api/rules.py: receipt types, passwords, contacts, hours, money."""

from __future__ import annotations

from datetime import time
from typing import NamedTuple

import pytest

from epay_tui.api import rules


class Item(NamedTuple):
    name: str
    receipt_type: str


TUITION, ROOM = Item("学费", "fiscal"), Item("住宿费", "fiscal")
BOOKS, CHECKUP = Item("教材费", "receipt"), Item("体检费", "receipt")


def test_tuition_and_accommodation_are_fiscal_the_rest_receipt():
    assert rules.receipt_type_for("tuition") == rules.receipt_type_for("accommodation") == "fiscal"
    assert rules.receipt_type_for("agency") == "receipt"


def test_checking_another_receipt_type_conflicts():
    assert rules.conflicts_with_selection([TUITION], BOOKS)
    assert not rules.conflicts_with_selection([TUITION], ROOM)
    assert not rules.conflicts_with_selection([], BOOKS)


def test_mixed_selection_pays_fiscal_group_first():
    now, later = rules.first_group([BOOKS, TUITION, CHECKUP, ROOM])
    assert now == [TUITION, ROOM]
    assert later == [BOOKS, CHECKUP]
    assert rules.first_group([BOOKS]) == ([BOOKS], [])
    assert rules.is_single_receipt_type(now) and not rules.is_single_receipt_type([TUITION, BOOKS])


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (650000, "¥6,500.00"),
        (0, "¥0.00"),
        (5, "¥0.05"),
        (123456789, "¥1,234,567.89"),
        (-100, "-¥1.00"),
    ],
)
def test_format_fen(fen, text):
    assert rules.format_fen(fen) == text


@pytest.mark.parametrize(
    ("password", "reasons"),
    [
        ("qxv", ["TOO_SHORT", "NEEDS_DIGIT"]),
        ("abc", ["TOO_SHORT", "NEEDS_DIGIT", "COMMON"]),
        ("12345", ["TOO_SHORT", "NEEDS_LETTER"]),
        ("a1" * 17, ["TOO_LONG"]),
        ("x2024010001y", ["CONTAINS_USERNAME"]),
        ("152018Czgc", ["INITIAL_PATTERN"]),
        ("32040XcZGC", ["INITIAL_PATTERN"]),
        ("Zhangwei2026x", []),
    ],
)
def test_password_policy_names_every_failed_rule(password, reasons):
    assert rules.password_problems(password, "2024010001") == reasons


@pytest.mark.parametrize(
    "common",
    ["12345678", "password1", "qwerty123", "a1234567", "Aa123456", "1qaz2wsx", "woaini1314"],
)
def test_common_passwords_are_refused(common):
    assert "COMMON" in rules.password_problems(common, "2024010001")


def test_common_list_holds_at_least_a_thousand():
    assert len(rules.common_passwords()) >= 1000


def test_same_as_old_is_reported():
    assert rules.password_problems("Newpass2026", "u", "Newpass2026") == ["SAME_AS_OLD"]


def test_initial_password_is_last_six_of_id_card_plus_czgc():
    assert rules.initial_password("320402200603152018") == "152018Czgc"
    assert rules.initial_password("32040220060315201X") == "15201XCzgc"
    assert rules.matches_initial_pattern("15201xczgc")


@pytest.mark.parametrize(
    ("phone", "problem"),
    [
        ("13800000001", None),
        ("19912345678", None),
        ("1380000", "PHONE_INVALID"),
        ("12800000001", "PHONE_INVALID"),
        ("138000000011", "PHONE_INVALID"),
        ("", "PHONE_MISSING"),
        (None, "PHONE_MISSING"),
        ("１３８００００００01", "PHONE_INVALID"),
    ],
)
def test_phone_rule(phone, problem):
    assert rules.phone_problem(phone) == problem


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("zhangwei@example.edu.cn", None),
        ("a.b+c@x.io", None),
        ("nope", "EMAIL_INVALID"),
        ("a@b", "EMAIL_INVALID"),
        ("a b@x.cn", "EMAIL_INVALID"),
        (None, "EMAIL_MISSING"),
        ("x" * 250 + "@a.cn", "EMAIL_INVALID"),
    ],
)
def test_email_rule(email, problem):
    assert rules.email_problem(email) == problem


def test_profile_problems_lists_both():
    assert rules.profile_problems("1380000", None) == ["PHONE_INVALID", "EMAIL_MISSING"]


def test_payment_hours_window_is_half_open():
    hours = rules.parse_payment_hours("08:00-22:00")
    assert not hours.is_open(time(7, 59))
    assert hours.is_open(time(8, 0))
    assert hours.is_open(time(21, 59))
    assert not hours.is_open(time(22, 0))
    assert rules.parse_payment_hours("00:00-24:00").is_open(time(23, 59))


@pytest.mark.parametrize(
    "text", ["22:00-08:00", "08:00-08:00", "25:00-26:00", "8-22", "24:00-24:00"]
)
def test_bad_payment_hours_are_refused(text):
    with pytest.raises(ValueError, match="payment hours"):
        rules.parse_payment_hours(text)


@pytest.mark.parametrize(
    ("text", "keep", "printable"),
    [
        ("Abc 123 张伟 ١٢٣ 😀", "", "Abc 123 张伟 ١٢٣ 😀"),
        ("a\x00b\x07c\x1b[31md\x7fe", "", "abc[31mde"),
        ("a\u202eb\u200bc\u2066d", "", "abcd"),
        ("2024010001\r\n152018Czgc\t", "\r\n", "2024010001\r\n152018Czgc"),
    ],
)
def test_printable_only_drops_what_no_keyboard_types(text, keep, printable):
    assert rules.printable_only(text, keep) == printable
    assert rules.is_typeable(printable.replace("\r", "").replace("\n", ""))
    assert rules.is_typeable(text) == (text == printable)


def test_a_staff_note_is_refused_alike_by_the_screen_and_the_backend():
    """One rule for a slip number or a reason: the client's check and the request model
    both come from ``rules.is_note`` (a blank-looking note was once let through by the
    screen and refused by the backend)."""
    import pydantic

    from epay_tui.api.models import RefundDecision
    from epay_tui.flow.money import reason_problem, reference_problem

    notes = (("POS-0012", True), ("退学，退还教材费", True), ("   ", False), ("a\u202eb", False))
    for text, ok in notes:
        assert rules.is_note(text) is ok, text
        assert (reference_problem("pos", text) is None) is ok, text
        assert (reason_problem(text) is None) is ok, text
        try:
            RefundDecision(reason=text)
            accepted = True
        except pydantic.ValidationError:
            accepted = False
        assert accepted is ok, text
