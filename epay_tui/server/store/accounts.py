"""The accounts' data: captchas, users, login checks, sessions, password resets, the audit
log as staff read it. Only data access: what a rule allows stays with the caller.

Every function takes the caller's transaction first; a read that decides a write in the
same transaction locks its row (``for_update``: PostgreSQL locks it, SQLite has its
``BEGIN IMMEDIATE``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Table, bindparam, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from epay_tui.server.store.engine import Query, Record, Tx, inserting
from epay_tui.server.store.schema import (
    audit,
    captchas,
    login_failures,
    reset_mismatches,
    reset_sends,
    resets,
    sessions,
    users,
)

# ---------------------------------------------------------------------------- captchas
_DROP_EXPIRED_CAPTCHAS = Query(delete(captchas).where(captchas.c.expires_at < bindparam("now")))
_ADD_CAPTCHA = inserting(
    captchas,
    "captcha_id",
    "answer",
    "expires_at",
    seq=select(func.coalesce(func.max(captchas.c.seq), 0) + 1).scalar_subquery(),
)
_TAKE_CAPTCHA = Query(
    delete(captchas)
    .where(captchas.c.captcha_id == bindparam("captcha_id"))
    .returning(captchas.c.answer, captchas.c.expires_at)
)
_LATEST_CAPTCHA = Query(
    select(captchas.c.captcha_id, captchas.c.answer).order_by(captchas.c.seq.desc()).limit(1)
)


def drop_expired_captchas(tx: Tx, now: float) -> None:
    tx.execute(_DROP_EXPIRED_CAPTCHAS, {"now": now})


def add_captcha(tx: Tx, captcha_id: str, answer: str, expires_at: float) -> None:
    """A captcha numbered after the newest (``seq``, for the dev hook's latest one)."""
    values = {"captcha_id": captcha_id, "answer": answer, "expires_at": expires_at}
    tx.execute(_ADD_CAPTCHA, values)


def take_captcha(tx: Tx, captcha_id: str) -> Record | None:
    """Delete a captcha; its ``answer`` and ``expires_at``, or None if there was none."""
    return tx.execute(_TAKE_CAPTCHA, {"captcha_id": captcha_id}).fetchone()


def latest_captcha(tx: Tx) -> Record | None:
    """The newest captcha's ``captcha_id`` and ``answer``."""
    return tx.execute(_LATEST_CAPTCHA, {}).fetchone()


# ---------------------------------------------------------------------------- users
_USER = select(users).where(users.c.username == bindparam("username"))
_USER_BY_NAME = {False: Query(_USER), True: Query(_USER.with_for_update())}  # by for_update
_SET_PASSWORD_HASH = Query(
    update(users)
    .where(users.c.username == bindparam("username"))
    .values(password_hash=bindparam("password_hash"))
)


def user_by_name(tx: Tx, username: str, *, for_update: bool = False) -> Record | None:
    """The user's row, every column."""
    return tx.execute(_USER_BY_NAME[for_update], {"username": username}).fetchone()


def set_password_hash(tx: Tx, username: str, password_hash: str) -> None:
    tx.execute(_SET_PASSWORD_HASH, {"username": username, "password_hash": password_hash})


def set_contacts(tx: Tx, username: str, contacts: Mapping[str, str]) -> None:
    """Change the user's ``phone`` and/or ``email`` (the keys given; none: nothing).
    Built per call: its columns vary."""
    if contacts:
        tx.execute(update(users).where(users.c.username == username).values(**contacts))


def students_by_prefix(tx: Tx, prefix: str, limit: int) -> list[Record]:
    """Students whose number or name starts with ``prefix`` (taken literally), by number:
    ``username``, ``name``, ``department``, ``class_name`` and ``locked_until``. Built
    per call: ``autoescape`` escapes a literal ``prefix``."""
    return tx.execute(
        select(
            users.c.username,
            users.c.name,
            users.c.department,
            users.c.class_name,
            login_failures.c.locked_until,
        )
        .select_from(users.outerjoin(login_failures, login_failures.c.username == users.c.username))
        .where(
            users.c.role == "student",
            users.c.username.startswith(prefix, autoescape=True)
            | users.c.name.startswith(prefix, autoescape=True),
        )
        .order_by(users.c.username)
        .limit(limit)
    ).fetchall()


# ---------------------------------------------------------------------------- login checks
_ADD_LOGIN_CHECKS = {  # by dialect: INSERT ... ON CONFLICT DO NOTHING is each one's own
    dialect.dialect.name: Query(
        dialect.insert(login_failures)
        .values(username=bindparam("username"), count=0, pending=0)
        .on_conflict_do_nothing()
    )
    for dialect in (postgresql, sqlite)
}
_LOGIN_CHECKS_FOR_UPDATE = Query(
    select(
        login_failures.c.count,
        login_failures.c.locked_until,
        login_failures.c.pending,
        login_failures.c.pending_since,
    )
    .where(login_failures.c.username == bindparam("username"))
    .with_for_update()
)
_OF_USERNAME = login_failures.c.username == bindparam("username")
_SET_LOGIN_CHECKS = Query(
    update(login_failures)
    .where(_OF_USERNAME)
    .values(
        count=bindparam("count"),
        locked_until=None,
        pending=bindparam("pending"),
        pending_since=bindparam("since"),
    )
)
_PENDING = login_failures.c.pending
_END_CHECK = {  # by failed
    failed: Query(
        update(login_failures)
        .where(_OF_USERNAME)
        .values(
            pending=case((_PENDING > 0, _PENDING - 1), else_=0),
            count=login_failures.c.count + 1 if failed else 0,
        )
        .returning(login_failures.c.count, login_failures.c.locked_until)
    )
    for failed in (False, True)
}
_LOCK_LOGIN = Query(
    update(login_failures).where(_OF_USERNAME).values(locked_until=bindparam("until"))
)
_CLEAR_LOGIN_CHECKS = Query(delete(login_failures).where(_OF_USERNAME))


def login_checks_for_update(tx: Tx, username: str) -> Record:
    """The username's ``count``, ``locked_until``, ``pending`` and ``pending_since``, the
    row locked for this transaction (a username never checked gets one: no failures)."""
    values = {"username": username}
    tx.execute(_ADD_LOGIN_CHECKS[tx.connection.dialect.name], values)
    found = tx.execute(_LOGIN_CHECKS_FOR_UPDATE, values).fetchone()
    assert found is not None  # inserted above, or already there
    return found


def set_login_checks(tx: Tx, username: str, count: int, pending: int, since: float) -> None:
    """Set the username's failures and running checks (the latest started at ``since``);
    any lock is lifted."""
    values = {"username": username, "count": count, "pending": pending, "since": since}
    tx.execute(_SET_LOGIN_CHECKS, values)


def end_check(tx: Tx, username: str, *, failed: bool) -> Record | None:
    """One running check fewer; a failed one adds a failure, else the failures are cleared.
    The ``count`` and ``locked_until`` now, or None if the row is gone."""
    return tx.execute(_END_CHECK[failed], {"username": username}).fetchone()


def lock_login(tx: Tx, username: str, until: float) -> None:
    tx.execute(_LOCK_LOGIN, {"username": username, "until": until})


def clear_login_checks(tx: Tx, username: str) -> None:
    """Forget the username's failures and lock."""
    tx.execute(_CLEAR_LOGIN_CHECKS, {"username": username})


# ---------------------------------------------------------------------------- sessions
_OF_TOKEN = sessions.c.token_hash == bindparam("token_hash")
_ADD_SESSION = inserting(
    sessions,
    "token_hash",
    "username",
    "role",
    "must_change",
    created_at=bindparam("now"),
    last_seen=bindparam("now"),
)
_SESSION = Query(select(sessions).where(_OF_TOKEN))
_TOUCH_SESSION = Query(update(sessions).where(_OF_TOKEN).values(last_seen=bindparam("now")))
_CLEAR_MUST_CHANGE = Query(update(sessions).where(_OF_TOKEN).values(must_change=0))
_DROP_SESSION = Query(delete(sessions).where(_OF_TOKEN))
_SESSIONS_OF = delete(sessions).where(sessions.c.username == bindparam("username"))
_DROP_SESSIONS_OF = {  # by whether one is kept
    False: Query(_SESSIONS_OF),
    True: Query(_SESSIONS_OF.where(sessions.c.token_hash != bindparam("keep"))),
}


def add_session(
    tx: Tx, token_hash: str, username: str, role: str, must_change: bool, now: float
) -> None:
    values = {"token_hash": token_hash, "username": username, "role": role, "now": now}
    tx.execute(_ADD_SESSION, {**values, "must_change": int(must_change)})


def session_by_token(tx: Tx, token_hash: str) -> Record | None:
    return tx.execute(_SESSION, {"token_hash": token_hash}).fetchone()


def touch_session(tx: Tx, token_hash: str, now: float) -> None:
    tx.execute(_TOUCH_SESSION, {"token_hash": token_hash, "now": now})


def clear_must_change(tx: Tx, token_hash: str) -> None:
    tx.execute(_CLEAR_MUST_CHANGE, {"token_hash": token_hash})


def drop_session(tx: Tx, token_hash: str) -> None:
    tx.execute(_DROP_SESSION, {"token_hash": token_hash})


def drop_sessions_of(tx: Tx, username: str, *, keep: str | None = None) -> None:
    """End the user's sessions, all but the one whose hash is ``keep``."""
    tx.execute(_DROP_SESSIONS_OF[keep is not None], {"username": username, "keep": keep})


# ---------------------------------------------------------------------------- password resets
_RECENT = {  # by table: the first ``at`` and how many since ``after``
    table: Query(
        select(func.min(table.c.at).label("first"), func.count().label("n")).where(
            table.c.username == bindparam("username"), table.c.at > bindparam("after")
        )
    )
    for table in (reset_mismatches, reset_sends)
}
_ADD_MISMATCH = inserting(reset_mismatches, "username", "at")
_FORGET_CODE_SENDS = Query(
    delete(reset_sends).where(
        reset_sends.c.username == bindparam("username"),
        reset_sends.c.at <= bindparam("forget_until"),
    )
)
_ADD_CODE_SEND = inserting(reset_sends, "username", "at")
_ADD_RESET = inserting(resets, "reset_id", "username", "created_at", "expires_at", "channels")
_OF_RESET = resets.c.reset_id == bindparam("reset_id")
_RESET_FOR_UPDATE = Query(select(resets).where(_OF_RESET).with_for_update())
_SET_RESET_CODE = Query(
    update(resets)
    .where(_OF_RESET)
    .values(
        code_digest=bindparam("code_digest"),
        code_expires_at=bindparam("code_expires_at"),
        last_sent_at=bindparam("sent_at"),
    )
)
_COUNT_WRONG_CODE = Query(
    update(resets)
    .where(_OF_RESET)
    .values(wrong_codes=resets.c.wrong_codes + 1)
    .returning(resets.c.wrong_codes)
)
_SET_RESET_STATE = Query(update(resets).where(_OF_RESET).values(state=bindparam("state")))


def _recent(tx: Tx, table: Table, username: str, after: float) -> Record:
    """``first`` (the earliest ``at``, None if none) and ``n`` of the username's rows of
    ``table`` later than ``after``."""
    values = {"username": username, "after": after}
    return tx.execute(_RECENT[table], values).fetchone()  # an aggregate gives a row


def recent_mismatches(tx: Tx, username: str, after: float) -> Record:
    """``first`` and ``n`` of the identity mismatches for ``username`` since ``after``."""
    return _recent(tx, reset_mismatches, username, after)


def add_mismatch(tx: Tx, username: str, at: float) -> None:
    tx.execute(_ADD_MISMATCH, {"username": username, "at": at})


def recent_code_sends(tx: Tx, username: str, after: float) -> Record:
    """``first`` and ``n`` of the reset codes sent for ``username`` since ``after``."""
    return _recent(tx, reset_sends, username, after)


def add_code_send(tx: Tx, username: str, at: float, *, forget_until: float) -> None:
    """Note a code sent; the username's sends up to ``forget_until`` are dropped."""
    tx.execute(_FORGET_CODE_SENDS, {"username": username, "forget_until": forget_until})
    tx.execute(_ADD_CODE_SEND, {"username": username, "at": at})


def add_reset(
    tx: Tx, reset_id: str, username: str, created_at: float, expires_at: float, channels: str
) -> None:
    """A new active reset; ``channels`` as JSON text."""
    tx.execute(
        _ADD_RESET,
        {
            "reset_id": reset_id,
            "username": username,
            "created_at": created_at,
            "expires_at": expires_at,
            "channels": channels,
        },
    )


def reset_for_update(tx: Tx, reset_id: str) -> Record | None:
    """The reset's row, every column, locked for this transaction."""
    return tx.execute(_RESET_FOR_UPDATE, {"reset_id": reset_id}).fetchone()


def set_reset_code(
    tx: Tx, reset_id: str, code_digest: str, code_expires_at: float, sent_at: float
) -> None:
    values = {
        "reset_id": reset_id,
        "code_digest": code_digest,
        "code_expires_at": code_expires_at,
        "sent_at": sent_at,
    }
    tx.execute(_SET_RESET_CODE, values)


def count_wrong_code(tx: Tx, reset_id: str) -> int:
    """One more wrong code for the reset; the wrong codes now."""
    found = tx.execute(_COUNT_WRONG_CODE, {"reset_id": reset_id}).fetchone()
    return found[0]  # the caller holds the row


def set_reset_state(tx: Tx, reset_id: str, state: str) -> None:
    """``active``, ``voided`` or ``completed``."""
    tx.execute(_SET_RESET_STATE, {"reset_id": reset_id, "state": state})


# ---------------------------------------------------------------------------- audit
_RECENT_AUDIT = Query(select(audit).order_by(audit.c.id.desc()).limit(bindparam("limit")))


def recent_audit(tx: Tx, limit: int) -> list[Record]:
    """The newest ``limit`` audit entries, newest first, every column."""
    return tx.execute(_RECENT_AUDIT, {"limit": limit}).fetchall()
