"""The accounts' data: captchas, users, login checks, sessions, password resets, the audit
log as staff read it. Only data access: what a rule allows stays with the caller.

Every function takes the caller's transaction first; a read that decides a write in the
same transaction locks its row (``for_update``: PostgreSQL locks it, SQLite has its
``BEGIN IMMEDIATE``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Table, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from epay_tui.server.store.engine import Record, Tx
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
def drop_expired_captchas(tx: Tx, now: float) -> None:
    tx.execute(delete(captchas).where(captchas.c.expires_at < now))


def add_captcha(tx: Tx, captcha_id: str, answer: str, expires_at: float) -> None:
    """A captcha numbered after the newest (``seq``, for the dev hook's latest one)."""
    next_seq = select(func.coalesce(func.max(captchas.c.seq), 0) + 1).scalar_subquery()
    tx.execute(
        insert(captchas).values(
            captcha_id=captcha_id, answer=answer, expires_at=expires_at, seq=next_seq
        )
    )


def take_captcha(tx: Tx, captcha_id: str) -> Record | None:
    """Delete a captcha; its ``answer`` and ``expires_at``, or None if there was none."""
    return tx.execute(
        delete(captchas)
        .where(captchas.c.captcha_id == captcha_id)
        .returning(captchas.c.answer, captchas.c.expires_at)
    ).fetchone()


def latest_captcha(tx: Tx) -> Record | None:
    """The newest captcha's ``captcha_id`` and ``answer``."""
    return tx.execute(
        select(captchas.c.captcha_id, captchas.c.answer).order_by(captchas.c.seq.desc()).limit(1)
    ).fetchone()


# ---------------------------------------------------------------------------- users
def user_by_name(tx: Tx, username: str, *, for_update: bool = False) -> Record | None:
    """The user's row, every column."""
    query = select(users).where(users.c.username == username)
    return tx.execute(query.with_for_update() if for_update else query).fetchone()


def set_password_hash(tx: Tx, username: str, password_hash: str) -> None:
    tx.execute(
        update(users).where(users.c.username == username).values(password_hash=password_hash)
    )


def set_contacts(tx: Tx, username: str, contacts: Mapping[str, str]) -> None:
    """Change the user's ``phone`` and/or ``email`` (the keys given; none: nothing)."""
    if contacts:
        tx.execute(update(users).where(users.c.username == username).values(**contacts))


def students_by_prefix(tx: Tx, prefix: str, limit: int) -> list[Record]:
    """Students whose number or name starts with ``prefix`` (taken literally), by number:
    ``username``, ``name``, ``department``, ``class_name`` and ``locked_until``."""
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
def login_checks_for_update(tx: Tx, username: str) -> Record:
    """The username's ``count``, ``locked_until``, ``pending`` and ``pending_since``, the
    row locked for this transaction (a username never checked gets one: no failures)."""
    dialect = postgresql if tx.connection.dialect.name == "postgresql" else sqlite
    tx.execute(
        dialect.insert(login_failures)
        .values(username=username, count=0, pending=0)
        .on_conflict_do_nothing()
    )
    found = tx.execute(
        select(
            login_failures.c.count,
            login_failures.c.locked_until,
            login_failures.c.pending,
            login_failures.c.pending_since,
        )
        .where(login_failures.c.username == username)
        .with_for_update()
    ).fetchone()
    assert found is not None  # inserted above, or already there
    return found


def set_login_checks(tx: Tx, username: str, count: int, pending: int, since: float) -> None:
    """Set the username's failures and running checks (the latest started at ``since``);
    any lock is lifted."""
    tx.execute(
        update(login_failures)
        .where(login_failures.c.username == username)
        .values(count=count, locked_until=None, pending=pending, pending_since=since)
    )


def end_check(tx: Tx, username: str, *, failed: bool) -> Record | None:
    """One running check fewer; a failed one adds a failure, else the failures are cleared.
    The ``count`` and ``locked_until`` now, or None if the row is gone."""
    pending = login_failures.c.pending
    return tx.execute(
        update(login_failures)
        .where(login_failures.c.username == username)
        .values(
            pending=case((pending > 0, pending - 1), else_=0),
            count=login_failures.c.count + 1 if failed else 0,
        )
        .returning(login_failures.c.count, login_failures.c.locked_until)
    ).fetchone()


def lock_login(tx: Tx, username: str, until: float) -> None:
    tx.execute(
        update(login_failures)
        .where(login_failures.c.username == username)
        .values(locked_until=until)
    )


def clear_login_checks(tx: Tx, username: str) -> None:
    """Forget the username's failures and lock."""
    tx.execute(delete(login_failures).where(login_failures.c.username == username))


# ---------------------------------------------------------------------------- sessions
def add_session(
    tx: Tx, token_hash: str, username: str, role: str, must_change: bool, now: float
) -> None:
    tx.execute(
        insert(sessions).values(
            token_hash=token_hash,
            username=username,
            role=role,
            must_change=int(must_change),
            created_at=now,
            last_seen=now,
        )
    )


def session_by_token(tx: Tx, token_hash: str) -> Record | None:
    return tx.execute(select(sessions).where(sessions.c.token_hash == token_hash)).fetchone()


def touch_session(tx: Tx, token_hash: str, now: float) -> None:
    tx.execute(update(sessions).where(sessions.c.token_hash == token_hash).values(last_seen=now))


def clear_must_change(tx: Tx, token_hash: str) -> None:
    tx.execute(update(sessions).where(sessions.c.token_hash == token_hash).values(must_change=0))


def drop_session(tx: Tx, token_hash: str) -> None:
    tx.execute(delete(sessions).where(sessions.c.token_hash == token_hash))


def drop_sessions_of(tx: Tx, username: str, *, keep: str | None = None) -> None:
    """End the user's sessions, all but the one whose hash is ``keep``."""
    query = delete(sessions).where(sessions.c.username == username)
    if keep is not None:
        query = query.where(sessions.c.token_hash != keep)
    tx.execute(query)


# ---------------------------------------------------------------------------- password resets
def _recent(tx: Tx, table: Table, username: str, after: float) -> Record:
    """``first`` (the earliest ``at``, None if none) and ``n`` of the username's rows of
    ``table`` later than ``after``."""
    return tx.execute(
        select(func.min(table.c.at).label("first"), func.count().label("n")).where(
            table.c.username == username, table.c.at > after
        )
    ).fetchone()  # an aggregate gives a row


def recent_mismatches(tx: Tx, username: str, after: float) -> Record:
    """``first`` and ``n`` of the identity mismatches for ``username`` since ``after``."""
    return _recent(tx, reset_mismatches, username, after)


def add_mismatch(tx: Tx, username: str, at: float) -> None:
    tx.execute(insert(reset_mismatches).values(username=username, at=at))


def recent_code_sends(tx: Tx, username: str, after: float) -> Record:
    """``first`` and ``n`` of the reset codes sent for ``username`` since ``after``."""
    return _recent(tx, reset_sends, username, after)


def add_code_send(tx: Tx, username: str, at: float, *, forget_until: float) -> None:
    """Note a code sent; the username's sends up to ``forget_until`` are dropped."""
    tx.execute(
        delete(reset_sends).where(
            reset_sends.c.username == username, reset_sends.c.at <= forget_until
        )
    )
    tx.execute(insert(reset_sends).values(username=username, at=at))


def add_reset(
    tx: Tx, reset_id: str, username: str, created_at: float, expires_at: float, channels: str
) -> None:
    """A new active reset; ``channels`` as JSON text."""
    tx.execute(
        insert(resets).values(
            reset_id=reset_id,
            username=username,
            created_at=created_at,
            expires_at=expires_at,
            channels=channels,
        )
    )


def reset_for_update(tx: Tx, reset_id: str) -> Record | None:
    """The reset's row, every column, locked for this transaction."""
    return tx.execute(
        select(resets).where(resets.c.reset_id == reset_id).with_for_update()
    ).fetchone()


def set_reset_code(
    tx: Tx, reset_id: str, code_digest: str, code_expires_at: float, sent_at: float
) -> None:
    tx.execute(
        update(resets)
        .where(resets.c.reset_id == reset_id)
        .values(code_digest=code_digest, code_expires_at=code_expires_at, last_sent_at=sent_at)
    )


def count_wrong_code(tx: Tx, reset_id: str) -> int:
    """One more wrong code for the reset; the wrong codes now."""
    return tx.execute(
        update(resets)
        .where(resets.c.reset_id == reset_id)
        .values(wrong_codes=resets.c.wrong_codes + 1)
        .returning(resets.c.wrong_codes)
    ).fetchone()[0]  # the caller holds the row


def set_reset_state(tx: Tx, reset_id: str, state: str) -> None:
    """``active``, ``voided`` or ``completed``."""
    tx.execute(update(resets).where(resets.c.reset_id == reset_id).values(state=state))


# ---------------------------------------------------------------------------- audit
def recent_audit(tx: Tx, limit: int) -> list[Record]:
    """The newest ``limit`` audit entries, newest first, every column."""
    return tx.execute(select(audit).order_by(audit.c.id.desc()).limit(limit)).fetchall()
