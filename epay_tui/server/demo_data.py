"""The deterministic demo college of api.md."""

from __future__ import annotations

from functools import cache

from epay_tui.server import security
from epay_tui.server.backend import Backend
from epay_tui.server.store import people
from epay_tui.server.store.engine import Tx

CURRENT_TAG, PREVIOUS_TAG = "2026-2027学年", "2025-2026学年"
FEES = (  # code, name, kind, amount in fen
    ("tuition", "学费", "tuition", 650000),
    ("accommodation", "住宿费", "accommodation", 120000),
    ("textbook", "教材费", "agency", 42000),
    ("insurance", "保险费", "agency", 15000),
    ("medical", "体检费", "agency", 6000),
)
FISCAL_CODES = ("tuition", "accommodation")
CLASS = {
    "department": "智能制造学院",
    "major": "机电一体化技术",
    "class_name": "机电2401",
    "grade": "2024",
}
STUDENTS = (
    # username, name, id_card_no, password, phone, email, paid codes (current year)
    (
        "2024010001",
        "张伟",
        "320402200603152018",
        "152018Czgc",
        "13800000001",
        "zhangwei@example.edu.cn",
        (),
    ),
    ("2024010002", "李娜", "320411200511083429", "Lina2026pay", "1380000", None, ()),
    (
        "2024010003",
        "王磊",
        "320481200607221573",
        "123456",
        "13800000003",
        "wanglei@example.edu.cn",
        (),
    ),
    (
        "2024010004",
        "陈静",
        "320402200512304610",
        "Chenjing2026",
        "13800000004",
        "chenjing@example.edu.cn",
        FISCAL_CODES,
    ),
)
STAFF = (("helpdesk01", "服务台", "Helpdesk2026"), ("finance01", "财务处", "Finance2026"))


@cache
def demo_hash(password: str) -> str:
    """Demo passwords are public; hashing each once per process keeps test servers quick."""
    return security.hash_password(password)


def item_id(username: str, tag: str, code: str) -> str:
    return f"{username}-{tag[:4]}-{code}"


def seed(backend: Backend) -> None:
    """Fill an empty store with the demo students, their fees and the staff account."""
    with backend.store.write() as tx:
        for username, name, id_card, password, phone, email, paid in STUDENTS:
            add_student(tx, username, name, id_card, password, phone, email)
            add_fees(tx, username, CURRENT_TAG, 0, paid)
            if username == "2024010001":
                add_fees(tx, username, PREVIOUS_TAG, 1, FISCAL_CODES, only=FISCAL_CODES)
        for username, name, password in STAFF:
            people.add_user(tx, username, name, "staff", demo_hash(password))


def add_student(
    tx: Tx,
    username: str,
    name: str,
    id_card: str,
    password: str,
    phone: str | None,
    email: str | None,
) -> None:
    people.add_user(
        tx,
        username,
        name,
        "student",
        demo_hash(password),
        id_card_no=id_card,
        phone=phone,
        email=email,
        **CLASS,
    )


def add_load_students(backend: Backend, count: int, password: str) -> list[str]:
    """Students for benchmarks: ``9{n:09d}``, valid contacts, the demo fees unpaid."""
    names = []
    with backend.store.write() as tx:
        for n in range(count):
            username = f"9{n:09d}"
            add_student(
                tx,
                username,
                f"学生{n}",
                f"32040220060101{n % 10000:04d}",
                password,
                f"139{n:08d}",
                f"s{n}@example.edu.cn",
            )
            add_fees(tx, username, CURRENT_TAG, 0)
            names.append(username)
    return names


def add_fees(tx: Tx, username: str, tag: str, rank: int, paid=(), only=None) -> None:
    """The demo fees of ``tag`` for a student: those ``only`` names (default all), the
    ``paid`` ones paid in full."""
    people.add_fee_items(
        tx,
        [
            {
                "id": item_id(username, tag, code),
                "username": username,
                "tag": tag,
                "tag_rank": rank,
                "position": position,
                "name": name,
                "kind": kind,
                "amount_due": amount,
                "amount_paid": amount if code in paid else 0,
            }
            for position, (code, name, kind, amount) in enumerate(FEES)
            if only is None or code in only
        ],
    )
