"""Accounts: captcha, login with lockout, sessions, password change and reset, profile."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from epay_tui.api import errors, models, rules
from epay_tui.server import captcha, security
from epay_tui.server.backend import Backend
from epay_tui.server.store import accounts as db
from epay_tui.server.store.engine import Record, Tx

CAPTCHA_TTL = 5 * 60
RESET_TTL = 30 * 60
CODE_TTL = 10 * 60
RESEND_AFTER = 60
WRONG_CODES_VOID = 5
MISMATCH_WINDOW = 15 * 60
MISMATCH_LIMIT = 5
CODES_PER_WINDOW = 5
CODE_WINDOW = 60 * 60
"""At most this many reset codes go to one username's phone and e-mail in an hour."""
SEARCH_LIMIT = 50
"""At most this many students answer a helpdesk search."""


@dataclass(frozen=True)
class Session:
    token_hash: str
    username: str
    role: str
    must_change: bool


# ---------------------------------------------------------------------------- captcha
def new_captcha(backend: Backend) -> models.Captcha:
    rng = backend.captcha_rng
    answer = captcha.new_answer(rng=rng)
    captcha_id = security.new_id("c")
    now = backend.time.ts()
    with backend.store.write() as tx:
        db.drop_expired_captchas(tx, now)
        db.add_captcha(tx, captcha_id, answer, now + CAPTCHA_TTL)
    png = captcha.render_png(answer, seed=rng.randrange(2**32) if rng else None)
    return models.Captcha(
        captcha_id=captcha_id,
        image_png=base64.b64encode(png).decode(),
        expires_at=backend.time.at(now + CAPTCHA_TTL),
    )


def consume_captcha(backend: Backend, captcha_id: str, answer: str) -> None:
    """Single use: any attempt consumes the captcha, right or wrong."""
    with backend.store.write() as tx:
        row = db.take_captcha(tx, captcha_id)
    if (
        row is None
        or row["expires_at"] < backend.time.ts()
        or row["answer"].upper() != answer.strip().upper()
    ):
        raise errors.CaptchaInvalid()


def latest_captcha(backend: Backend) -> models.LatestCaptcha:
    with backend.store.read() as tx:
        row = db.latest_captcha(tx)
    if row is None:
        raise errors.RouteNotFound("No captcha issued yet")
    return models.LatestCaptcha(captcha_id=row["captcha_id"], answer=row["answer"])


# ---------------------------------------------------------------------------- password checks
PENDING_STALE_SECONDS = 60
"""A check counted as running for longer than this was lost (a crash): it frees its slot."""


def _reserve_check(backend: Backend, username: str) -> int:
    """Count a password check before it runs, in one transaction: its number in the window
    (failures so far, plus the checks running now, plus this one).

    However many checks run at once, at most ``lock_after_failures`` are counted; the
    others, and every check while locked, raise ``ACCOUNT_LOCKED`` without hashing."""
    now = backend.time.ts()
    limit = backend.config.lock_after_failures
    with backend.store.write() as tx:
        row = db.login_checks_for_update(tx, username)
        count, until, pending = row["count"], row["locked_until"], row["pending"]
        since = row["pending_since"]
        if until is not None and until > now:
            raise _locked_error(backend, until)
        if until is not None:  # the lock has ended: the count starts again
            count = 0
        if since is not None and since + PENDING_STALE_SECONDS < now:
            pending = 0
        if count + pending >= limit:  # every check the window allows is running
            raise _locked_error(backend, now + backend.config.lock_seconds)
        db.set_login_checks(tx, username, count, pending + 1, now)
    return count + pending + 1


def _locked_error(backend: Backend, until: float) -> errors.AccountLocked:
    return errors.AccountLocked(locked_until=backend.time.at(until).isoformat())


def audit_name(backend: Backend, username: str, known: bool) -> str:
    """A username as the audit log keeps it: an unknown one (perhaps a password typed
    into 学号) only as a keyed digest, so repeats of one wrong name still group."""
    if known:
        return username
    return "?" + security.keyed_digest(backend.code_secret, f"audit-name:{username}")[:12]


def check_password(backend: Backend, username: str, password: str, where: str) -> Record:
    """Verify a password the way login does: lockout, failure count, same cost if unknown.

    Raises ``ACCOUNT_LOCKED`` or ``BAD_CREDENTIALS`` (with ``attempts_left``). Unknown
    usernames are counted and locked exactly like known ones; the check is counted
    before the password is hashed, so a burst in parallel gets no more checks.
    """
    _reserve_check(backend, username)
    with backend.store.read() as tx:
        user = db.user_by_name(tx, username)
    stored = user["password_hash"] if user else security.DUMMY_HASH
    right = security.verify_password(password, stored) and user is not None
    limit = backend.config.lock_after_failures
    with backend.store.write() as tx:
        # the check has ended: a right password clears the failures, a wrong one adds one
        row = db.end_check(tx, username, failed=not right)
        failures = row["count"] if row else 1  # a staff unlock meanwhile started it again
        locked = row is not None and row["locked_until"] and row["locked_until"] > backend.time.ts()
        if right and not locked:
            return user
        who = audit_name(backend, username, known=user is not None)
        if right:  # locked meanwhile by another check: no token (raised after the commit)
            locked_until = row["locked_until"]
        elif failures >= limit and not locked:
            until = backend.time.ts() + backend.config.lock_seconds
            db.lock_login(tx, username, until)
            db.drop_sessions_of(tx, username)
            backend.audit(who, "account.locked", who, {"where": where})
            locked_until = until
        elif locked:
            locked_until = row["locked_until"]
        else:
            backend.audit(who, "password.failed", who, {"where": where})
            locked_until = None
    if locked_until is not None:
        raise _locked_error(backend, locked_until)
    raise errors.BadCredentials(attempts_left=limit - failures)


def password_issue(user: Record, password: str) -> str | None:
    """``initial`` for the college's initial password, ``weak`` if today's policy fails."""
    if user["id_card_no"] and password == rules.initial_password(user["id_card_no"]):
        return "initial"
    if rules.password_problems(password, user["username"]):
        return "weak"
    return None


def _require_strong(password: str, username: str, old: str | None = None) -> None:
    reasons = rules.password_problems(password, username, old)
    if reasons:
        raise errors.WeakPassword(reasons=reasons)


# ---------------------------------------------------------------------------- sessions
def login(backend: Backend, body: models.LoginRequest) -> models.LoginResult:
    consume_captcha(backend, body.captcha_id, body.captcha_answer)
    user = check_password(backend, body.username, body.password, "login")
    issue = password_issue(user, body.password)
    token = security.new_token()
    now = backend.time.ts()
    with backend.store.write() as tx:
        digest = security.token_digest(token)
        db.add_session(tx, digest, user["username"], user["role"], issue is not None, now)
        backend.audit(user["username"], "login", user["username"], {"password_issue": issue})
    return models.LoginResult(
        token=token,
        role=user["role"],
        must_change_password=issue is not None,
        password_issue=issue,
        expires_at=backend.time.at(now + backend.config.session_idle_seconds),
    )


def session_for(backend: Backend, token: str | None) -> Session:
    """The live session of a bearer token, its idle time renewed; else 401."""
    if not token:
        raise errors.Unauthenticated()
    digest = security.token_digest(token)
    now = backend.time.ts()
    idle = backend.config.session_idle_seconds
    with backend.store.read() as tx:
        row = db.session_by_token(tx, digest)
    if row is None or row["last_seen"] + idle <= now:
        if row is not None:
            with backend.store.write() as tx:
                db.drop_session(tx, digest)
        raise errors.Unauthenticated()
    if now > row["last_seen"]:
        with backend.store.write() as tx:
            db.touch_session(tx, digest, now)
    return Session(digest, row["username"], row["role"], bool(row["must_change"]))


def logout(backend: Backend, session: Session) -> None:
    with backend.store.write() as tx:
        db.drop_session(tx, session.token_hash)
        backend.audit(session.username, "logout", session.username)


def _set_password(tx: Tx, username: str, password: str) -> None:
    db.set_password_hash(tx, username, security.hash_password(password))


def change_password(backend: Backend, session: Session, body: models.PasswordChange) -> None:
    """Old password checked like a login; every failed policy rule named; others revoked."""
    check_password(backend, session.username, body.old_password, "password_change")
    _require_strong(body.new_password, session.username, body.old_password)
    with backend.store.write() as tx:
        _set_password(tx, session.username, body.new_password)
        db.drop_sessions_of(tx, session.username, keep=session.token_hash)
        db.clear_must_change(tx, session.token_hash)
        backend.audit(session.username, "password.changed", session.username)


# ---------------------------------------------------------------------------- reset
def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def reset_channels(user: Record) -> list[models.ResetChannel]:
    found = []
    if rules.phone_problem(user["phone"]) is None:
        found.append(models.ResetChannel(channel="sms", to=mask_phone(user["phone"])))
    if rules.email_problem(user["email"]) is None:
        found.append(models.ResetChannel(channel="email", to=mask_email(user["email"])))
    return found


def _identity_matches(user: Record | None, body: models.ResetStart) -> bool:
    return (
        user is not None
        and user["role"] == "student"
        and user["name"] == body.name.strip()
        and (user["id_card_no"] or "").upper() == body.id_card_no.strip().upper()
    )


def reset_start(backend: Backend, body: models.ResetStart) -> models.ResetStarted:
    consume_captcha(backend, body.captcha_id, body.captcha_answer)
    now = backend.time.ts()
    with backend.store.write() as tx:
        recent = db.recent_mismatches(tx, body.username, now - MISMATCH_WINDOW)
        if recent["n"] >= MISMATCH_LIMIT:
            raise errors.RateLimited(retry_after=int(recent["first"] + MISMATCH_WINDOW - now) + 1)
        user = db.user_by_name(tx, body.username, for_update=True)
        mismatch = not _identity_matches(user, body)
        if mismatch:
            db.add_mismatch(tx, body.username, now)
            who = audit_name(backend, body.username, known=user is not None)
            backend.audit(who, "reset.mismatch", who)
        else:
            _check_code_quota(tx, body.username, now)
            channels = reset_channels(user)
            reset_id = security.new_id("r", 18)
            channel_names = json.dumps([c.channel for c in channels])
            db.add_reset(tx, reset_id, body.username, now, now + RESET_TTL, channel_names)
            backend.audit(body.username, "reset.started", body.username)
    if mismatch:  # raised after the commit: the mismatch is counted
        raise errors.ResetIdentityMismatch()
    return models.ResetStarted(reset_id=reset_id, channels=channels)


def _check_code_quota(tx: Tx, username: str, now: float) -> None:
    """``RATE_LIMITED`` once the username's codes of the last hour are used up."""
    sent = db.recent_code_sends(tx, username, now - CODE_WINDOW)
    if sent["n"] >= CODES_PER_WINDOW:
        raise errors.RateLimited(retry_after=int(sent["first"] + CODE_WINDOW - now) + 1)


def _active_reset(tx: Tx, backend: Backend, reset_id: str) -> Record:
    """The reset, locked for this transaction; ``RESET_EXPIRED`` unless it is active."""
    row = db.reset_for_update(tx, reset_id)
    if row is None or row["state"] != "active" or row["expires_at"] <= backend.time.ts():
        raise errors.ResetExpired()
    return row


def reset_send(backend: Backend, body: models.ResetSend) -> None:
    now = backend.time.ts()
    with backend.store.write() as tx:
        reset = _active_reset(tx, backend, body.reset_id)
        if body.channel not in json.loads(reset["channels"]):
            raise errors.ValidationFailed(fields={"channel": "no valid contact for this channel"})
        if reset["last_sent_at"] is not None and now - reset["last_sent_at"] < RESEND_AFTER:
            retry = int(reset["last_sent_at"] + RESEND_AFTER - now) + 1
            raise errors.RateLimited(retry_after=min(retry, RESEND_AFTER))
        _check_code_quota(tx, reset["username"], now)
        db.add_code_send(tx, reset["username"], now, forget_until=now - CODE_WINDOW)
        code = security.new_code()
        digest = security.keyed_digest(backend.code_secret, reset["reset_id"] + code)
        db.set_reset_code(tx, reset["reset_id"], digest, now + CODE_TTL, now)
        user = db.user_by_name(tx, reset["username"], for_update=True)
        to = user["phone"] if body.channel == "sms" else user["email"]
        backend.send_message(
            tx,
            body.channel,
            to,
            f"【{backend.config.school}】您正在重置缴费平台密码，验证码 {code}，10分钟内有效。"
            "如非本人操作请忽略。",
            secret=code,
        )
        backend.audit(
            reset["username"], "reset.code_sent", reset["username"], {"channel": body.channel}
        )


def reset_complete(backend: Backend, body: models.ResetComplete) -> None:
    now = backend.time.ts()
    with backend.store.write() as tx:
        reset = _active_reset(tx, backend, body.reset_id)
        expected = reset["code_digest"]
        given = security.keyed_digest(backend.code_secret, reset["reset_id"] + body.code.strip())
        code_wrong = expected is None or reset["code_expires_at"] <= now or given != expected
        if code_wrong:
            wrong = db.count_wrong_code(tx, reset["reset_id"])
            if wrong >= WRONG_CODES_VOID:
                db.set_reset_state(tx, reset["reset_id"], "voided")
    if code_wrong:
        raise errors.ResetCodeInvalid(attempts_left=max(WRONG_CODES_VOID - wrong, 0))
    username = reset["username"]
    with backend.store.read() as tx:
        user = db.user_by_name(tx, username)
    same = security.verify_password(body.new_password, user["password_hash"])
    reasons = rules.password_problems(body.new_password, username, same_as_old=same)
    if reasons:
        raise errors.WeakPassword(reasons=reasons)
    with backend.store.write() as tx:
        _active_reset(tx, backend, body.reset_id)  # not completed meanwhile
        _set_password(tx, username, body.new_password)
        db.set_reset_state(tx, body.reset_id, "completed")
        db.clear_login_checks(tx, username)
        db.drop_sessions_of(tx, username)
        backend.audit(username, "reset.completed", username)


# ---------------------------------------------------------------------------- profile
def mask_id_card(id_card_no: str | None) -> str:
    if not id_card_no:
        return ""
    return id_card_no[:3] + "*" * (len(id_card_no) - 4) + id_card_no[-1:]


def profile_of(tx: Tx, username: str) -> models.Profile:
    user = db.user_by_name(tx, username)
    if user is None:
        raise errors.StudentNotFound()
    problems = (
        rules.profile_problems(user["phone"], user["email"]) if user["role"] == ("student") else []
    )
    return models.Profile(
        username=user["username"],
        name=user["name"],
        role=user["role"],
        department=user["department"],
        major=user["major"],
        class_name=user["class_name"],
        grade=user["grade"],
        id_card_masked=mask_id_card(user["id_card_no"]),
        phone=user["phone"],
        email=user["email"],
        profile_problems=problems,
    )


def profile(backend: Backend, username: str) -> models.Profile:
    with backend.store.read() as tx:
        return profile_of(tx, username)


def update_profile(
    backend: Backend, session: Session, body: models.ProfileUpdate
) -> models.Profile:
    """Contacts change only with the password; bad values are named per field."""
    problems = {}
    if body.phone is not None and (p := rules.phone_problem(body.phone.strip())):
        problems["phone"] = p
    if body.email is not None and (p := rules.email_problem(body.email.strip())):
        problems["email"] = p
    if problems:
        raise errors.ValidationFailed(fields=problems)
    check_password(backend, session.username, body.current_password, "profile")
    changes = {
        k: v.strip() for k, v in (("phone", body.phone), ("email", body.email)) if v is not None
    }
    with backend.store.write() as tx:
        db.set_contacts(tx, session.username, changes)
        result = profile_of(tx, session.username)
        backend.audit(
            session.username, "profile.updated", session.username, {"fields": list(changes)}
        )
    return result


# ---------------------------------------------------------------------------- staff
def search_students(backend: Backend, query: str) -> models.StudentList:
    now = backend.time.ts()
    with backend.store.read() as tx:
        rows = db.students_by_prefix(tx, query.strip(), SEARCH_LIMIT)
    return models.StudentList(
        students=[
            models.StudentSummary(
                username=r["username"],
                name=r["name"],
                department=r["department"],
                class_name=r["class_name"],
                locked=bool(r["locked_until"] and r["locked_until"] > now),
            )
            for r in rows
        ]
    )


def _student(tx: Tx, username: str) -> Record:
    """The student's row, locked for this transaction; ``STUDENT_NOT_FOUND`` if none."""
    user = db.user_by_name(tx, username, for_update=True)
    if user is None or user["role"] != "student":
        raise errors.StudentNotFound()
    return user


def staff_reset_password(backend: Backend, staff: Session, username: str) -> None:
    """Back to the initial password, to be changed at next login; sessions ended."""
    with backend.store.write() as tx:
        user = _student(tx, username)
        _set_password(tx, username, rules.initial_password(user["id_card_no"]))
        db.drop_sessions_of(tx, username)
        backend.audit(staff.username, "staff.reset_password", username)


def staff_unlock(backend: Backend, staff: Session, username: str) -> None:
    """End a lockout early: a student's, or another staff member's (nobody else can)."""
    with backend.store.write() as tx:
        if db.user_by_name(tx, username, for_update=True) is None:
            raise errors.StudentNotFound()
        db.clear_login_checks(tx, username)
        backend.audit(staff.username, "staff.unlock", username)
