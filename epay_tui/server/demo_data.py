"""The deterministic demo college of api.md."""

from __future__ import annotations

from functools import cache

from epay_tui.server import security
from epay_tui.server.backend import Backend

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
    with backend.store.write() as conn:
        for username, name, id_card, password, phone, email, paid in STUDENTS:
            add_student(conn, username, name, id_card, password, phone, email)
            add_fees(conn, username, CURRENT_TAG, 0, paid)
            if username == "2024010001":
                add_fees(conn, username, PREVIOUS_TAG, 1, FISCAL_CODES, only=FISCAL_CODES)
        for username, name, password in STAFF:
            conn.execute(
                "INSERT INTO users(username, name, role, password_hash) VALUES (?,?,?,?)",
                (username, name, "staff", demo_hash(password)),
            )


def add_student(
    conn,
    username: str,
    name: str,
    id_card: str,
    password: str,
    phone: str | None,
    email: str | None,
) -> None:
    conn.execute(
        "INSERT INTO users(username, name, role, id_card_no, password_hash, department,"
        " major, class_name, grade, phone, email) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            username,
            name,
            "student",
            id_card,
            demo_hash(password),
            CLASS["department"],
            CLASS["major"],
            CLASS["class_name"],
            CLASS["grade"],
            phone,
            email,
        ),
    )


def add_load_students(backend: Backend, count: int, password: str) -> list[str]:
    """Students for benchmarks: ``9{n:09d}``, valid contacts, the demo fees unpaid."""
    names = []
    with backend.store.write() as conn:
        for n in range(count):
            username = f"9{n:09d}"
            add_student(
                conn,
                username,
                f"学生{n}",
                f"32040220060101{n % 10000:04d}",
                password,
                f"139{n:08d}",
                f"s{n}@example.edu.cn",
            )
            add_fees(conn, username, CURRENT_TAG, 0)
            names.append(username)
    return names


def add_fees(conn, username: str, tag: str, rank: int, paid=(), only=None) -> None:
    for position, (code, name, kind, amount) in enumerate(FEES):
        if only is not None and code not in only:
            continue
        conn.execute(
            "INSERT INTO fee_items(id, username, tag, tag_rank, position, name, kind, amount_due,"
            " amount_paid) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                item_id(username, tag, code),
                username,
                tag,
                rank,
                position,
                name,
                kind,
                amount,
                amount if code in paid else 0,
            ),
        )
