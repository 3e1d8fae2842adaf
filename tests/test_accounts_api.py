"""Accounts over real HTTP: meta, captcha, login and lockout, password change and
reset, sessions, profile, staff helpdesk calls, audit and the error body shape.

Every expectation comes from /work/shared/design/api.md; the clock is moved by hand.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import replace
from datetime import datetime, timedelta

import httpx
import pytest
from PIL import Image

from epay_tui.api import errors
from epay_tui.api.client import ApiClient
from epay_tui.server.config import ServerConfig
from tests.conftest import (
    CHEN,
    LI,
    STAFF,
    TEN_AM,
    WANG,
    ZHANG,
    solve_captcha,
    solve_login,
)

API = "/api/v1"
SCHOOL = "常州工程职业技术学院"
LOCK_SECONDS = 15 * 60
IDLE_SECONDS = 30 * 60

ZHANG_IDENTITY = ("张伟", "320402200603152018")
ON_BOTH_DATABASES = True  # every test here on SQLite and on PostgreSQL (conftest)
LI_IDENTITY = ("李娜", "320411200511083429")
CHEN_IDENTITY = ("陈静", "320402200512304610")
WANG_INITIAL = "221573Czgc"  # last six of 320481200607221573 + Czgc
UNKNOWN_USER = "2024019999"
STRONG = "Kestrel7Harbor"
STRONG_2 = "Quartz9Meadow"
CODE_RE = re.compile(r"(?<!\d)\d{6}(?!\d)")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def server_config(request: pytest.FixtureRequest, server_config: ServerConfig) -> ServerConfig:
    """The conftest settings, changed by ``indirect`` parametrization where a test asks."""
    return replace(server_config, **getattr(request, "param", {}))


@pytest.fixture
async def http(server):
    """A raw HTTP client, for status codes, exact bytes and invalid requests."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as raw:
        yield raw


# ---------------------------------------------------------------------------- helpers
def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_details(resp: httpx.Response, status: int, code: str) -> dict:
    """Assert the status, the contract's error body shape and code; return ``details``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str), body
    assert isinstance(err["details"], dict), body
    return err["details"]


async def raw_captcha(http: httpx.AsyncClient) -> tuple[str, str]:
    assert (await http.post(f"{API}/captcha")).status_code == 200
    latest = (await http.get("/sandbox/captcha/latest")).json()
    return latest["captcha_id"], latest["answer"]


async def raw_login(
    http: httpx.AsyncClient,
    username: str,
    password: str,
    captcha: tuple[str, str] | None = None,
) -> httpx.Response:
    captcha_id, answer = captcha or await raw_captcha(http)
    return await http.post(
        f"{API}/auth/login",
        json={
            "username": username,
            "password": password,
            "captcha_id": captcha_id,
            "captcha_answer": answer,
        },
    )


async def fail_logins(http: httpx.AsyncClient, username: str, times: int) -> list[httpx.Response]:
    return [await raw_login(http, username, "Wrong-pass-9") for _ in range(times)]


async def lock(http: httpx.AsyncClient, username: str) -> None:
    answers = await fail_logins(http, username, 5)
    error_details(answers[-1], 423, "ACCOUNT_LOCKED")


async def change_password(
    http: httpx.AsyncClient, token: str | None, old: str, new: str
) -> httpx.Response:
    return await http.post(
        f"{API}/auth/password",
        json={"old_password": old, "new_password": new},
        headers=bearer(token),
    )


async def patch_me(http: httpx.AsyncClient, token: str | None, body: dict) -> httpx.Response:
    return await http.patch(f"{API}/me", json=body, headers=bearer(token))


async def reset_start_raw(
    http: httpx.AsyncClient, username: str, name: str, id_card_no: str
) -> httpx.Response:
    captcha_id, answer = await raw_captcha(http)
    return await http.post(
        f"{API}/password-reset/start",
        json={
            "username": username,
            "name": name,
            "id_card_no": id_card_no,
            "captcha_id": captcha_id,
            "captcha_answer": answer,
        },
    )


async def start_reset(http: httpx.AsyncClient, username: str, identity: tuple[str, str]) -> dict:
    resp = await reset_start_raw(http, username, *identity)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def reset_send(http: httpx.AsyncClient, reset_id: str, channel: str) -> httpx.Response:
    return await http.post(
        f"{API}/password-reset/send", json={"reset_id": reset_id, "channel": channel}
    )


async def reset_complete(
    http: httpx.AsyncClient, reset_id: str, code: str, new_password: str
) -> httpx.Response:
    return await http.post(
        f"{API}/password-reset/complete",
        json={"reset_id": reset_id, "code": code, "new_password": new_password},
    )


async def last_code_to(http: httpx.AsyncClient, to: str) -> str:
    """The 6-digit code of the newest message to ``to`` in the dev outbox."""
    messages = [m for m in (await http.get("/sandbox/outbox")).json()["messages"] if m["to"] == to]
    assert messages, f"nothing sent to {to}"
    found = CODE_RE.findall(messages[-1]["body"])
    assert len(found) == 1, messages[-1]["body"]
    return found[0]


async def zhang_code(http: httpx.AsyncClient) -> tuple[str, str]:
    """A started ZHANG reset with an SMS code sent: ``(reset_id, code)``."""
    reset_id = (await start_reset(http, ZHANG[0], ZHANG_IDENTITY))["reset_id"]
    assert (await reset_send(http, reset_id, "sms")).status_code == 204
    return reset_id, await last_code_to(http, "13800000001")


async def status_with(http: httpx.AsyncClient, token: str | None) -> int:
    return (await http.get(f"{API}/me", headers=bearer(token))).status_code


# ============================================================================ public
async def test_meta_describes_school_payee_hours_channels_ttl_and_sandbox(client: ApiClient):
    meta = await client.meta()
    assert meta.school == SCHOOL
    assert meta.payee == SCHOOL
    assert meta.timezone == "Asia/Shanghai"
    assert meta.server_time == TEN_AM
    assert meta.server_time.utcoffset() == timedelta(hours=8)
    assert (meta.payment_hours.opens, meta.payment_hours.closes) == ("08:00", "22:00")
    assert meta.payment_hours.open_now is True
    assert meta.channels == ["wechat", "alipay", "ccb"]
    assert meta.order_ttl_seconds == 900
    assert meta.sandbox is True


async def test_meta_open_now_is_false_at_closing_time(client: ApiClient, clock):
    clock.advance(12 * 3600)  # 22:00: the window is [opens, closes)
    meta = await client.meta()
    assert meta.server_time.hour == 22
    assert meta.payment_hours.open_now is False


@pytest.mark.parametrize("server_config", [{"order_ttl_seconds": 300}], indirect=True)
async def test_meta_reports_the_configured_order_ttl(client: ApiClient):
    assert (await client.meta()).order_ttl_seconds == 300


async def test_healthz_answers_ok(http: httpx.AsyncClient):
    resp = await http.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_latest_captcha_hook_is_404_before_any_captcha(http: httpx.AsyncClient):
    assert (await http.get("/sandbox/captcha/latest")).status_code == 404


async def test_captcha_is_a_small_png_that_pillow_decodes(client: ApiClient):
    captcha = await client.new_captcha()
    png = base64.b64decode(captcha.image_png, validate=True)
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert image.format == "PNG"
        assert image.width <= 160
        assert image.height <= 60
    assert captcha.expires_at == TEN_AM + timedelta(minutes=5)


async def test_captcha_ids_are_unique(client: ApiClient):
    ids = {(await client.new_captcha()).captcha_id for _ in range(5)}
    assert len(ids) == 5


async def test_captcha_cannot_be_reused_after_a_successful_login(http: httpx.AsyncClient):
    captcha = await raw_captcha(http)
    assert (await raw_login(http, *LI, captcha=captcha)).status_code == 200
    error_details(await raw_login(http, *LI, captcha=captcha), 400, "CAPTCHA_INVALID")


async def test_captcha_is_consumed_by_a_failed_login(http: httpx.AsyncClient):
    captcha = await raw_captcha(http)
    error_details(await raw_login(http, LI[0], "Wrong-pass-9", captcha), 401, "BAD_CREDENTIALS")
    error_details(await raw_login(http, *LI, captcha=captcha), 400, "CAPTCHA_INVALID")


async def test_captcha_is_consumed_by_a_reset_attempt(http: httpx.AsyncClient):
    captcha_id, answer = await raw_captcha(http)
    body = {
        "username": ZHANG[0],
        "name": ZHANG_IDENTITY[0],
        "id_card_no": ZHANG_IDENTITY[1],
        "captcha_id": captcha_id,
        "captcha_answer": answer,
    }
    assert (await http.post(f"{API}/password-reset/start", json=body)).status_code == 200
    error_details(await raw_login(http, *LI, captcha=(captcha_id, answer)), 400, "CAPTCHA_INVALID")


async def test_wrong_captcha_answer_is_refused(http: httpx.AsyncClient):
    captcha_id, _ = await raw_captcha(http)
    resp = await raw_login(http, *LI, captcha=(captcha_id, "QQQQ"))
    error_details(resp, 400, "CAPTCHA_INVALID")


async def test_wrong_captcha_does_not_count_as_a_password_failure(http: httpx.AsyncClient):
    for _ in range(6):
        captcha_id, _ = await raw_captcha(http)
        bad = await raw_login(http, LI[0], "Wrong-pass-9", (captcha_id, "QQQQ"))
        error_details(bad, 400, "CAPTCHA_INVALID")
    details = error_details(await raw_login(http, LI[0], "Wrong-pass-9"), 401, "BAD_CREDENTIALS")
    assert details["attempts_left"] == 4


async def test_captcha_expires_after_five_minutes(http: httpx.AsyncClient, clock):
    captcha = await raw_captcha(http)
    clock.advance(5 * 60 + 1)
    error_details(await raw_login(http, *LI, captcha=captcha), 400, "CAPTCHA_INVALID")


async def test_captcha_still_valid_just_before_five_minutes(http: httpx.AsyncClient, clock):
    captcha = await raw_captcha(http)
    clock.advance(5 * 60 - 5)
    assert (await raw_login(http, *LI, captcha=captcha)).status_code == 200


async def test_captcha_answer_is_case_insensitive(http: httpx.AsyncClient):
    for _ in range(50):  # an answer with at least one letter, so case can matter
        captcha_id, answer = await raw_captcha(http)
        if answer.lower() != answer.upper():
            break
    assert answer.lower() != answer.upper()
    flipped = answer.swapcase()
    assert flipped != answer
    assert (await raw_login(http, *LI, captcha=(captcha_id, flipped))).status_code == 200


# ============================================================================ login
async def test_initial_password_login_reports_initial_and_must_change(client: ApiClient):
    result = await solve_login(client, *ZHANG)
    assert result.role == "student"
    assert result.password_issue == "initial"
    assert result.must_change_password is True


async def test_weak_password_login_reports_weak_and_must_change(client: ApiClient):
    result = await solve_login(client, *WANG)
    assert result.password_issue == "weak"
    assert result.must_change_password is True


async def test_normal_login_has_no_password_issue(client: ApiClient):
    result = await solve_login(client, *LI)
    assert result.role == "student"
    assert result.password_issue is None
    assert result.must_change_password is False
    assert result.token
    assert result.expires_at == TEN_AM + timedelta(seconds=IDLE_SECONDS)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("GET", "/fees", None, {}),
        ("GET", "/orders", None, {}),
        ("PATCH", "/me", {"current_password": ZHANG[1], "email": "zw@example.edu.cn"}, {}),
        ("POST", "/orders", {"item_ids": ["x"]}, {"Idempotency-Key": "k1"}),
    ],
)
async def test_must_change_blocks_every_other_call(
    http: httpx.AsyncClient, login, method, path, body, headers
):
    api = await login(*ZHANG)
    resp = await http.request(
        method, f"{API}{path}", json=body, headers={**headers, **bearer(api.token)}
    )
    error_details(resp, 403, "PASSWORD_CHANGE_REQUIRED")


async def test_weak_password_session_is_blocked_too(http: httpx.AsyncClient, login):
    api = await login(*WANG)
    resp = await http.get(f"{API}/fees", headers=bearer(api.token))
    error_details(resp, 403, "PASSWORD_CHANGE_REQUIRED")


async def test_must_change_still_allows_get_me(http: httpx.AsyncClient, login):
    api = await login(*ZHANG)
    resp = await http.get(f"{API}/me", headers=bearer(api.token))
    assert resp.status_code == 200
    assert resp.json()["username"] == ZHANG[0]


async def test_must_change_allows_password_change_which_unblocks_session(
    http: httpx.AsyncClient, login
):
    api = await login(*ZHANG)
    assert (await change_password(http, api.token, ZHANG[1], STRONG)).status_code == 204
    assert (await http.get(f"{API}/fees", headers=bearer(api.token))).status_code == 200


async def test_must_change_still_allows_logout(http: httpx.AsyncClient, login):
    api = await login(*ZHANG)
    resp = await http.post(f"{API}/auth/logout", headers=bearer(api.token))
    assert resp.status_code == 204


async def test_bad_credentials_count_down_then_fifth_failure_locks(http: httpx.AsyncClient):
    answers = await fail_logins(http, LI[0], 5)
    left = [error_details(r, 401, "BAD_CREDENTIALS")["attempts_left"] for r in answers[:4]]
    assert left == [4, 3, 2, 1]
    details = error_details(answers[4], 423, "ACCOUNT_LOCKED")
    assert datetime.fromisoformat(details["locked_until"]) == TEN_AM + timedelta(
        seconds=LOCK_SECONDS
    )


async def test_locked_account_refuses_even_the_right_password(http: httpx.AsyncClient):
    await lock(http, LI[0])
    error_details(await raw_login(http, *LI), 423, "ACCOUNT_LOCKED")


async def test_lock_still_holds_just_before_fifteen_minutes(http: httpx.AsyncClient, clock):
    await lock(http, LI[0])
    clock.advance(LOCK_SECONDS - 10)
    error_details(await raw_login(http, *LI), 423, "ACCOUNT_LOCKED")


async def test_lock_lifts_after_fifteen_minutes(http: httpx.AsyncClient, clock):
    await lock(http, LI[0])
    clock.advance(LOCK_SECONDS + 1)
    assert (await raw_login(http, *LI)).status_code == 200


async def test_correct_password_resets_the_failure_count(http: httpx.AsyncClient):
    await fail_logins(http, LI[0], 3)
    assert (await raw_login(http, *LI)).status_code == 200
    details = error_details((await fail_logins(http, LI[0], 1))[0], 401, "BAD_CREDENTIALS")
    assert details["attempts_left"] == 4


async def test_unknown_username_answers_byte_identical_to_a_known_one(http: httpx.AsyncClient):
    known = await fail_logins(http, LI[0], 6)
    unknown = await fail_logins(http, UNKNOWN_USER, 6)
    assert [r.status_code for r in unknown] == [401, 401, 401, 401, 423, 423]
    assert [r.status_code for r in known] == [r.status_code for r in unknown]
    assert [r.content for r in known] == [r.content for r in unknown]


async def test_unknown_username_locks_after_five_failures(http: httpx.AsyncClient):
    answers = await fail_logins(http, UNKNOWN_USER, 5)
    left = [error_details(r, 401, "BAD_CREDENTIALS")["attempts_left"] for r in answers[:4]]
    assert left == [4, 3, 2, 1]
    assert "locked_until" in error_details(answers[4], 423, "ACCOUNT_LOCKED")


async def test_unknown_and_known_usernames_cost_the_same_scrypt(
    http: httpx.AsyncClient, monkeypatch
):
    """Counted, not timed: each wrong login runs scrypt exactly once, with the same cost
    parameters, whether the username exists or not (benchmarks/login_timing.py times it)."""
    from epay_tui.server import security

    checks: list[str] = []

    def counted(password: str, stored: str) -> bool:
        checks.append("$".join(stored.split("$")[:4]))  # scheme, n, r, p
        return original(password, stored)

    original = security.verify_password
    monkeypatch.setattr(security, "verify_password", counted)
    costs = {}
    for username in (ZHANG[0], "2024019900"):
        checks.clear()
        resp = await raw_login(http, username, "Wrong-pass-9", await raw_captcha(http))
        assert resp.status_code == 401
        costs[username] = list(checks)
    assert costs[ZHANG[0]] == costs["2024019900"] == ["scrypt$16384$8$1"]


async def test_wrong_old_password_in_password_change_is_bad_credentials(
    http: httpx.AsyncClient, login
):
    api = await login(*LI)
    resp = await change_password(http, api.token, "Wrong-pass-9", STRONG)
    assert error_details(resp, 401, "BAD_CREDENTIALS")["attempts_left"] == 4


async def test_wrong_old_passwords_lock_and_end_all_sessions(http: httpx.AsyncClient, login):
    device_a = await login(*ZHANG)
    device_b = await login(*ZHANG)
    answers = [
        await change_password(http, device_a.token, "Wrong-pass-9", STRONG) for _ in range(5)
    ]
    left = [error_details(r, 401, "BAD_CREDENTIALS")["attempts_left"] for r in answers[:4]]
    assert left == [4, 3, 2, 1]
    error_details(answers[4], 423, "ACCOUNT_LOCKED")
    other = await http.get(f"{API}/me", headers=bearer(device_b.token))
    error_details(other, 401, "UNAUTHENTICATED")
    assert await status_with(http, device_a.token) == 401
    error_details(await raw_login(http, *ZHANG), 423, "ACCOUNT_LOCKED")


async def test_wrong_password_in_patch_me_locks_and_ends_all_sessions(
    http: httpx.AsyncClient, login
):
    device_a = await login(*LI)
    device_b = await login(*LI)
    body = {"current_password": "Wrong-pass-9", "email": "lina@example.edu.cn"}
    answers = [await patch_me(http, device_a.token, body) for _ in range(5)]
    left = [error_details(r, 401, "BAD_CREDENTIALS")["attempts_left"] for r in answers[:4]]
    assert left == [4, 3, 2, 1]
    error_details(answers[4], 423, "ACCOUNT_LOCKED")
    other = await http.get(f"{API}/me", headers=bearer(device_b.token))
    error_details(other, 401, "UNAUTHENTICATED")
    error_details(await raw_login(http, *LI), 423, "ACCOUNT_LOCKED")


async def test_failures_add_up_across_login_password_change_and_profile(
    http: httpx.AsyncClient, login
):
    api = await login(*LI)
    assert [
        error_details(r, 401, "BAD_CREDENTIALS")["attempts_left"]
        for r in await fail_logins(http, LI[0], 2)
    ] == [4, 3]
    changed = await change_password(http, api.token, "Wrong-pass-9", STRONG)
    assert error_details(changed, 401, "BAD_CREDENTIALS")["attempts_left"] == 2
    patched = await patch_me(http, api.token, {"current_password": "Wrong-pass-9"})
    assert error_details(patched, 401, "BAD_CREDENTIALS")["attempts_left"] == 1
    error_details((await fail_logins(http, LI[0], 1))[0], 423, "ACCOUNT_LOCKED")
    assert await status_with(http, api.token) == 401


# ============================================================================ password change
async def test_password_change_answers_204_and_keeps_the_current_session(
    http: httpx.AsyncClient, login
):
    api = await login(*LI)
    resp = await change_password(http, api.token, LI[1], STRONG)
    assert resp.status_code == 204
    assert resp.content == b""
    assert await status_with(http, api.token) == 200


@pytest.mark.parametrize(
    ("new_password", "reasons"),
    [
        ("Kqzv", {"TOO_SHORT", "NEEDS_DIGIT"}),
        ("7351", {"TOO_SHORT", "NEEDS_LETTER"}),
        ("Kqzvbnrtwp", {"NEEDS_DIGIT"}),
        ("73519024683", {"NEEDS_LETTER"}),
        ("x2024010002y", {"CONTAINS_USERNAME"}),
        ("2024010002", {"NEEDS_LETTER", "CONTAINS_USERNAME"}),
        ("385217Czgc", {"INITIAL_PATTERN"}),
        ("123456Czgc", {"INITIAL_PATTERN", "COMMON"}),
        ("73519xCZGC", {"INITIAL_PATTERN"}),
        ("Aa123456", {"COMMON"}),
        ("12345678", {"NEEDS_LETTER", "COMMON"}),
        ("password1", {"COMMON"}),
        ("qwerty123", {"COMMON"}),
        ("a1234567", {"COMMON"}),
        ("1qaz2wsx", {"COMMON"}),
        ("woaini1314", {"COMMON"}),
        (LI[1], {"SAME_AS_OLD"}),
        ("Kq7" * 11, {"TOO_LONG"}),  # 33 characters
        ("Kqzv" * 32, {"TOO_LONG", "NEEDS_DIGIT"}),  # 128: the policy, not validation
    ],
)
async def test_weak_password_lists_every_failed_reason(
    http: httpx.AsyncClient, login, new_password, reasons
):
    api = await login(*LI)
    resp = await change_password(http, api.token, LI[1], new_password)
    got = error_details(resp, 422, "WEAK_PASSWORD")["reasons"]
    assert set(got) == reasons
    assert len(got) == len(set(got))


async def test_weak_abc_lists_too_short_and_needs_digit(http: httpx.AsyncClient, login):
    api = await login(*LI)
    resp = await change_password(http, api.token, LI[1], "abc")
    reasons = set(error_details(resp, 422, "WEAK_PASSWORD")["reasons"])
    assert {"TOO_SHORT", "NEEDS_DIGIT"} <= reasons
    assert reasons <= {"TOO_SHORT", "NEEDS_DIGIT", "COMMON"}


async def test_refused_weak_password_leaves_the_old_one(http: httpx.AsyncClient, login):
    api = await login(*LI)
    assert (await change_password(http, api.token, LI[1], "Aa123456")).status_code == 422
    assert (await raw_login(http, *LI)).status_code == 200


async def test_weak_new_password_does_not_count_as_a_failure(http: httpx.AsyncClient, login):
    api = await login(*LI)
    for _ in range(5):
        assert (await change_password(http, api.token, LI[1], "Aa123456")).status_code == 422
    assert (await raw_login(http, *LI)).status_code == 200


async def test_password_over_128_characters_is_a_validation_error(http: httpx.AsyncClient, login):
    api = await login(*LI)
    resp = await change_password(http, api.token, LI[1], "Kq7" * 43)  # 129
    details = error_details(resp, 422, "VALIDATION_ERROR")
    assert "new_password" in details["fields"]


@pytest.mark.parametrize(
    "untypeable", ["Lina2027\x00pay", "Lina2027\x1b[31m", "Lina\u202e2027pay", "Lina2027\u200bpay"]
)
async def test_a_new_password_no_keyboard_can_type_is_a_validation_error(
    http: httpx.AsyncClient, login, untypeable
):
    api = await login(*LI)
    resp = await change_password(http, api.token, LI[1], untypeable)
    details = error_details(resp, 422, "VALIDATION_ERROR")
    assert list(details["fields"]) == ["new_password"]
    assert untypeable not in resp.text  # the refused value is not echoed
    assert (await raw_login(http, *LI)).status_code == 200  # the old one still works


async def test_login_password_over_128_characters_is_a_validation_error(
    http: httpx.AsyncClient,
):
    details = error_details(await raw_login(http, LI[0], "x" * 129), 422, "VALIDATION_ERROR")
    assert "password" in details["fields"]


async def test_password_change_revokes_the_other_sessions(http: httpx.AsyncClient, login):
    device_a = await login(*LI)
    device_b = await login(*LI)
    assert (await change_password(http, device_a.token, LI[1], STRONG)).status_code == 204
    other = await http.get(f"{API}/me", headers=bearer(device_b.token))
    error_details(other, 401, "UNAUTHENTICATED")
    assert await status_with(http, device_a.token) == 200


async def test_new_password_works_at_next_login_and_the_old_one_does_not(
    http: httpx.AsyncClient, login
):
    api = await login(*ZHANG)
    assert (await change_password(http, api.token, ZHANG[1], STRONG)).status_code == 204
    fresh = await raw_login(http, ZHANG[0], STRONG)
    assert fresh.status_code == 200
    assert fresh.json()["password_issue"] is None
    assert fresh.json()["must_change_password"] is False
    error_details(await raw_login(http, *ZHANG), 401, "BAD_CREDENTIALS")


async def test_password_change_without_session_is_unauthenticated(http: httpx.AsyncClient):
    resp = await http.post(
        f"{API}/auth/password", json={"old_password": LI[1], "new_password": STRONG}
    )
    error_details(resp, 401, "UNAUTHENTICATED")


# ============================================================================ sessions
async def test_logout_answers_204_and_the_token_stops_working(http: httpx.AsyncClient, login):
    api = await login(*LI)
    resp = await http.post(f"{API}/auth/logout", headers=bearer(api.token))
    assert resp.status_code == 204
    after = await http.get(f"{API}/me", headers=bearer(api.token))
    error_details(after, 401, "UNAUTHENTICATED")


async def test_logout_ends_only_that_session(http: httpx.AsyncClient, login):
    device_a = await login(*LI)
    device_b = await login(*LI)
    assert (await http.post(f"{API}/auth/logout", headers=bearer(device_a.token))).is_success
    assert await status_with(http, device_b.token) == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer garbage-token"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic bGk6cGFzcw=="},
        {"Authorization": "garbage"},
    ],
)
async def test_missing_or_garbage_bearer_is_unauthenticated(http: httpx.AsyncClient, headers):
    error_details(await http.get(f"{API}/me", headers=headers), 401, "UNAUTHENTICATED")


async def test_session_expires_after_thirty_idle_minutes(http: httpx.AsyncClient, login, clock):
    api = await login(*LI)
    clock.advance(IDLE_SECONDS + 1)
    error_details(await http.get(f"{API}/me", headers=bearer(api.token)), 401, "UNAUTHENTICATED")


async def test_session_alive_just_before_thirty_idle_minutes(http: httpx.AsyncClient, login, clock):
    api = await login(*LI)
    clock.advance(IDLE_SECONDS - 5)
    assert await status_with(http, api.token) == 200


async def test_activity_inside_the_idle_window_keeps_the_session_alive(
    http: httpx.AsyncClient, login, clock
):
    api = await login(*LI)
    for _ in range(3):  # 3 x 25 min: well past 30 minutes in total
        clock.advance(25 * 60)
        assert await status_with(http, api.token) == 200


async def test_activity_soon_after_login_restarts_the_idle_window(
    http: httpx.AsyncClient, login, clock
):
    api = await login(*LI)
    clock.advance(10)
    assert await status_with(http, api.token) == 200  # the last activity
    clock.advance(IDLE_SECONDS - 5)  # idle 29:55 since then
    assert await status_with(http, api.token) == 200


@pytest.mark.parametrize("server_config", [{"session_idle_seconds": 120}], indirect=True)
async def test_idle_timeout_is_configurable(http: httpx.AsyncClient, login, clock):
    api = await login(*LI)
    clock.advance(121)
    error_details(await http.get(f"{API}/me", headers=bearer(api.token)), 401, "UNAUTHENTICATED")


# ============================================================================ password reset
@pytest.mark.parametrize(
    ("name", "id_card_no"),
    [
        ("李娜", ZHANG_IDENTITY[1]),  # wrong name
        (ZHANG_IDENTITY[0], "320402200603152019"),  # wrong ID number
        ("李娜", "320402200603152019"),  # both wrong
    ],
)
async def test_reset_start_mismatch_is_identity_mismatch(http: httpx.AsyncClient, name, id_card_no):
    resp = await reset_start_raw(http, ZHANG[0], name, id_card_no)
    assert error_details(resp, 400, "RESET_IDENTITY_MISMATCH") == {}


async def test_reset_start_mismatch_gives_no_hint_which_field(http: httpx.AsyncClient):
    wrong_name = await reset_start_raw(http, ZHANG[0], "李娜", ZHANG_IDENTITY[1])
    wrong_id = await reset_start_raw(http, ZHANG[0], ZHANG_IDENTITY[0], "320402200603152019")
    unknown = await reset_start_raw(http, UNKNOWN_USER, *ZHANG_IDENTITY)
    assert wrong_name.status_code == wrong_id.status_code == unknown.status_code == 400
    assert wrong_name.content == wrong_id.content == unknown.content


async def test_reset_start_rate_limited_after_five_mismatches(http: httpx.AsyncClient):
    for _ in range(5):
        resp = await reset_start_raw(http, ZHANG[0], "李娜", ZHANG_IDENTITY[1])
        error_details(resp, 400, "RESET_IDENTITY_MISMATCH")
    error_details(
        await reset_start_raw(http, ZHANG[0], "李娜", ZHANG_IDENTITY[1]), 429, "RATE_LIMITED"
    )
    # even the right identity is throttled now
    error_details(await reset_start_raw(http, ZHANG[0], *ZHANG_IDENTITY), 429, "RATE_LIMITED")


async def test_reset_start_mismatch_limit_is_per_username(http: httpx.AsyncClient):
    for _ in range(5):
        await reset_start_raw(http, ZHANG[0], "李娜", ZHANG_IDENTITY[1])
    assert (await reset_start_raw(http, CHEN[0], *CHEN_IDENTITY)).status_code == 200


async def test_reset_start_allowed_again_after_fifteen_minutes(http: httpx.AsyncClient, clock):
    for _ in range(5):
        await reset_start_raw(http, ZHANG[0], "李娜", ZHANG_IDENTITY[1])
    clock.advance(15 * 60 + 1)
    assert (await reset_start_raw(http, ZHANG[0], *ZHANG_IDENTITY)).status_code == 200


async def test_reset_start_lists_masked_sms_and_email_for_zhang(http: httpx.AsyncClient):
    started = await start_reset(http, ZHANG[0], ZHANG_IDENTITY)
    assert started["reset_id"]
    assert started["channels"] == [
        {"channel": "sms", "to": "138****0001"},
        {"channel": "email", "to": "z***@example.edu.cn"},
    ]


async def test_reset_start_for_li_lists_no_channels(http: httpx.AsyncClient):
    started = await start_reset(http, LI[0], LI_IDENTITY)
    assert started["reset_id"]
    assert started["channels"] == []


async def test_reset_send_delivers_a_six_digit_code_by_sms(http: httpx.AsyncClient):
    reset_id = (await start_reset(http, ZHANG[0], ZHANG_IDENTITY))["reset_id"]
    resp = await reset_send(http, reset_id, "sms")
    assert resp.status_code == 204
    messages = (await http.get("/sandbox/outbox")).json()["messages"]
    assert [(m["channel"], m["to"]) for m in messages] == [("sms", "13800000001")]
    assert len(CODE_RE.findall(messages[0]["body"])) == 1


async def test_reset_send_delivers_a_code_by_email_to_the_full_address(
    http: httpx.AsyncClient,
):
    reset_id = (await start_reset(http, ZHANG[0], ZHANG_IDENTITY))["reset_id"]
    assert (await reset_send(http, reset_id, "email")).status_code == 204
    code = await last_code_to(http, "zhangwei@example.edu.cn")
    assert re.fullmatch(r"\d{6}", code)


async def test_reset_send_again_within_sixty_seconds_is_rate_limited(
    http: httpx.AsyncClient, clock
):
    reset_id = (await start_reset(http, ZHANG[0], ZHANG_IDENTITY))["reset_id"]
    assert (await reset_send(http, reset_id, "sms")).status_code == 204
    clock.advance(30)
    details = error_details(await reset_send(http, reset_id, "sms"), 429, "RATE_LIMITED")
    assert isinstance(details["retry_after"], int)
    assert 0 < details["retry_after"] <= 31


async def test_reset_send_throttle_covers_any_channel(http: httpx.AsyncClient):
    reset_id = (await start_reset(http, ZHANG[0], ZHANG_IDENTITY))["reset_id"]
    assert (await reset_send(http, reset_id, "sms")).status_code == 204
    details = error_details(await reset_send(http, reset_id, "email"), 429, "RATE_LIMITED")
    assert 0 < details["retry_after"] <= 60


async def test_reset_resend_after_sixty_one_seconds_replaces_the_old_code(
    http: httpx.AsyncClient, clock
):
    reset_id, old_code = await zhang_code(http)
    clock.advance(61)
    assert (await reset_send(http, reset_id, "sms")).status_code == 204
    new_code = await last_code_to(http, "13800000001")
    if new_code != old_code:  # one chance in a million they coincide
        error_details(
            await reset_complete(http, reset_id, old_code, STRONG), 400, "RESET_CODE_INVALID"
        )
    assert (await reset_complete(http, reset_id, new_code, STRONG)).status_code == 204


async def test_reset_complete_with_a_wrong_code_is_code_invalid(http: httpx.AsyncClient):
    reset_id, code = await zhang_code(http)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    error_details(await reset_complete(http, reset_id, wrong, STRONG), 400, "RESET_CODE_INVALID")
    error_details(await raw_login(http, ZHANG[0], STRONG), 401, "BAD_CREDENTIALS")


async def test_reset_five_wrong_codes_void_the_reset(http: httpx.AsyncClient):
    reset_id, code = await zhang_code(http)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        resp = await reset_complete(http, reset_id, wrong, STRONG)
        error_details(resp, 400, "RESET_CODE_INVALID")
    error_details(await reset_complete(http, reset_id, code, STRONG), 400, "RESET_EXPIRED")
    error_details(await reset_send(http, reset_id, "sms"), 400, "RESET_EXPIRED")


async def test_reset_four_wrong_codes_leave_the_right_one_usable(http: httpx.AsyncClient):
    reset_id, code = await zhang_code(http)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        await reset_complete(http, reset_id, wrong, STRONG)
    assert (await reset_complete(http, reset_id, code, STRONG)).status_code == 204


async def test_reset_code_no_longer_works_after_ten_minutes(http: httpx.AsyncClient, clock):
    reset_id, code = await zhang_code(http)
    clock.advance(10 * 60 + 1)
    resp = await reset_complete(http, reset_id, code, STRONG)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] in {"RESET_CODE_INVALID", "RESET_EXPIRED"}
    error_details(await raw_login(http, ZHANG[0], STRONG), 401, "BAD_CREDENTIALS")


async def test_reset_weak_new_password_is_refused_and_the_code_stays_usable(
    http: httpx.AsyncClient,
):
    reset_id, code = await zhang_code(http)
    weak = await reset_complete(http, reset_id, code, "Aa123456")
    assert error_details(weak, 422, "WEAK_PASSWORD")["reasons"] == ["COMMON"]
    assert (await reset_complete(http, reset_id, code, STRONG)).status_code == 204


async def test_reset_weak_new_password_lists_every_reason(http: httpx.AsyncClient):
    reset_id, code = await zhang_code(http)
    weak = await reset_complete(http, reset_id, code, "2024010001")
    reasons = set(error_details(weak, 422, "WEAK_PASSWORD")["reasons"])
    assert reasons == {"NEEDS_LETTER", "CONTAINS_USERNAME"}


async def test_reset_success_sets_a_password_that_logs_in_cleanly(http: httpx.AsyncClient):
    reset_id, code = await zhang_code(http)
    resp = await reset_complete(http, reset_id, code, STRONG)
    assert resp.status_code == 204
    fresh = await raw_login(http, ZHANG[0], STRONG)
    assert fresh.status_code == 200
    assert fresh.json()["password_issue"] is None
    assert fresh.json()["must_change_password"] is False
    error_details(await raw_login(http, *ZHANG), 401, "BAD_CREDENTIALS")


async def test_reset_success_revokes_every_session(http: httpx.AsyncClient, login):
    device_a = await login(*CHEN)
    device_b = await login(*CHEN)
    reset_id = (await start_reset(http, CHEN[0], CHEN_IDENTITY))["reset_id"]
    assert (await reset_send(http, reset_id, "email")).status_code == 204
    code = await last_code_to(http, "chenjing@example.edu.cn")
    assert (await reset_complete(http, reset_id, code, STRONG)).status_code == 204
    for device in (device_a, device_b):
        resp = await http.get(f"{API}/me", headers=bearer(device.token))
        error_details(resp, 401, "UNAUTHENTICATED")


async def test_reset_works_while_locked_and_clears_the_lock(http: httpx.AsyncClient):
    await lock(http, ZHANG[0])
    reset_id, code = await zhang_code(http)
    assert (await reset_complete(http, reset_id, code, STRONG)).status_code == 204
    assert (await raw_login(http, ZHANG[0], STRONG)).status_code == 200


async def test_reset_clears_the_failure_count(http: httpx.AsyncClient):
    await fail_logins(http, ZHANG[0], 3)
    reset_id, code = await zhang_code(http)
    assert (await reset_complete(http, reset_id, code, STRONG)).status_code == 204
    details = error_details((await fail_logins(http, ZHANG[0], 1))[0], 401, "BAD_CREDENTIALS")
    assert details["attempts_left"] == 4


async def test_completed_reset_id_is_expired(http: httpx.AsyncClient, clock):
    reset_id, code = await zhang_code(http)
    assert (await reset_complete(http, reset_id, code, STRONG)).status_code == 204
    error_details(await reset_complete(http, reset_id, code, STRONG_2), 400, "RESET_EXPIRED")
    # within 60 s of the last send: expired comes before any throttling
    error_details(await reset_send(http, reset_id, "sms"), 400, "RESET_EXPIRED")
    clock.advance(61)
    error_details(await reset_send(http, reset_id, "sms"), 400, "RESET_EXPIRED")
    assert (await raw_login(http, ZHANG[0], STRONG)).status_code == 200


async def test_unknown_reset_id_is_expired_before_any_throttling(http: httpx.AsyncClient):
    for _ in range(3):
        error_details(await reset_send(http, "r-no-such-reset", "sms"), 400, "RESET_EXPIRED")
    for _ in range(6):
        resp = await reset_complete(http, "r-no-such-reset", "123456", STRONG)
        error_details(resp, 400, "RESET_EXPIRED")


async def test_reset_expires_eventually(http: httpx.AsyncClient, clock):
    reset_id = (await start_reset(http, ZHANG[0], ZHANG_IDENTITY))["reset_id"]
    clock.advance(24 * 3600)
    error_details(await reset_send(http, reset_id, "sms"), 400, "RESET_EXPIRED")


@pytest.mark.parametrize("channel", ["sms", "email"])
async def test_reset_send_to_a_channel_the_reset_lacks_is_422(http: httpx.AsyncClient, channel):
    reset_id = (await start_reset(http, LI[0], LI_IDENTITY))["reset_id"]
    details = error_details(await reset_send(http, reset_id, channel), 422, "VALIDATION_ERROR")
    assert "channel" in details["fields"]
    assert (await http.get("/sandbox/outbox")).json()["messages"] == []


async def test_reset_send_to_an_unknown_channel_is_422(http: httpx.AsyncClient):
    reset_id = (await start_reset(http, ZHANG[0], ZHANG_IDENTITY))["reset_id"]
    details = error_details(await reset_send(http, reset_id, "fax"), 422, "VALIDATION_ERROR")
    assert "channel" in details["fields"]


async def test_reset_start_with_a_wrong_captcha_is_captcha_invalid(http: httpx.AsyncClient):
    captcha_id, _ = await raw_captcha(http)
    resp = await http.post(
        f"{API}/password-reset/start",
        json={
            "username": ZHANG[0],
            "name": ZHANG_IDENTITY[0],
            "id_card_no": ZHANG_IDENTITY[1],
            "captcha_id": captcha_id,
            "captcha_answer": "QQQQ",
        },
    )
    error_details(resp, 400, "CAPTCHA_INVALID")


# ============================================================================ profile
async def test_me_masks_the_id_card_to_first_three_and_last_one(login):
    api = await login(*ZHANG)
    profile = await api.me()
    assert profile.id_card_masked == "320**************8"
    assert "152018" not in profile.id_card_masked


async def test_me_shows_the_profile_fields(login):
    profile = await (await login(*ZHANG)).me()
    assert (profile.username, profile.name, profile.role) == (ZHANG[0], "张伟", "student")
    assert profile.phone == "13800000001"
    assert profile.email == "zhangwei@example.edu.cn"
    assert profile.profile_problems == []


async def test_me_lists_li_profile_problems(login):
    profile = await (await login(*LI)).me()
    assert profile.profile_problems == ["PHONE_INVALID", "EMAIL_MISSING"]


async def test_patch_me_fixes_li_contacts(http: httpx.AsyncClient, login):
    api = await login(*LI)
    body = {"current_password": LI[1], "phone": "13912345678", "email": "lina@example.edu.cn"}
    resp = await patch_me(http, api.token, body)
    assert resp.status_code == 200, resp.text
    profile = resp.json()
    assert profile["phone"] == "13912345678"
    assert profile["email"] == "lina@example.edu.cn"
    assert profile["profile_problems"] == []
    assert (await api.me()).profile_problems == []


async def test_patch_me_changes_only_the_given_field(http: httpx.AsyncClient, login):
    api = await login(*LI)
    resp = await patch_me(http, api.token, {"current_password": LI[1], "email": "l@example.cn"})
    assert resp.status_code == 200
    assert resp.json()["phone"] == "1380000"
    assert resp.json()["profile_problems"] == ["PHONE_INVALID"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "1380000"),
        ("phone", "12345678901"),
        ("phone", "1391234567x"),
        ("phone", ""),
        ("email", ""),
        ("email", "not-an-email"),
        ("email", "li@"),
    ],
)
async def test_patch_me_invalid_or_empty_value_names_the_field(
    http: httpx.AsyncClient, login, field, value
):
    api = await login(*LI)
    resp = await patch_me(http, api.token, {"current_password": LI[1], field: value})
    details = error_details(resp, 422, "VALIDATION_ERROR")
    assert field in details["fields"]
    assert (await api.me()).phone == "1380000"


async def test_patch_me_wrong_password_is_bad_credentials(http: httpx.AsyncClient, login):
    api = await login(*LI)
    body = {"current_password": "Wrong-pass-9", "phone": "13912345678"}
    details = error_details(await patch_me(http, api.token, body), 401, "BAD_CREDENTIALS")
    assert details["attempts_left"] == 4
    assert (await api.me()).phone == "1380000"


async def test_patch_me_unknown_field_is_422(http: httpx.AsyncClient, login):
    api = await login(*LI)
    body = {"current_password": LI[1], "phone": "13912345678", "name": "Mallory"}
    details = error_details(await patch_me(http, api.token, body), 422, "VALIDATION_ERROR")
    assert "name" in details["fields"]
    assert (await api.me()).name == "李娜"


async def test_patch_me_without_password_is_422(http: httpx.AsyncClient, login):
    api = await login(*LI)
    resp = await patch_me(http, api.token, {"phone": "13912345678"})
    details = error_details(resp, 422, "VALIDATION_ERROR")
    assert "current_password" in details["fields"]


async def test_login_unknown_field_is_422(http: httpx.AsyncClient):
    captcha_id, answer = await raw_captcha(http)
    resp = await http.post(
        f"{API}/auth/login",
        json={
            "username": LI[0],
            "password": LI[1],
            "captcha_id": captcha_id,
            "captcha_answer": answer,
            "role": "staff",
        },
    )
    assert "role" in error_details(resp, 422, "VALIDATION_ERROR")["fields"]


# ============================================================================ staff
async def test_staff_login_has_role_staff(client: ApiClient):
    result = await solve_login(client, *STAFF)
    assert result.role == "staff"
    assert result.password_issue is None
    assert result.must_change_password is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/staff/students?q=2024"),
        ("GET", f"/staff/students/{ZHANG[0]}"),
        ("POST", f"/staff/students/{WANG[0]}/reset-password"),
        ("POST", f"/staff/students/{WANG[0]}/unlock"),
        ("GET", "/staff/audit"),
    ],
)
async def test_student_gets_forbidden_on_staff_calls(http: httpx.AsyncClient, login, method, path):
    api = await login(*LI)
    resp = await http.request(method, f"{API}{path}", headers=bearer(api.token))
    error_details(resp, 403, "FORBIDDEN")


async def test_student_forbidden_reset_changes_nothing(http: httpx.AsyncClient, login):
    api = await login(*LI)
    await http.post(f"{API}/staff/students/{CHEN[0]}/reset-password", headers=bearer(api.token))
    assert (await raw_login(http, *CHEN)).status_code == 200


async def test_anonymous_staff_call_is_unauthenticated(http: httpx.AsyncClient):
    error_details(await http.get(f"{API}/staff/students?q=2024"), 401, "UNAUTHENTICATED")


async def test_staff_search_by_number_prefix(login):
    staff = await login(*STAFF)
    found = await staff.staff_students("2024")
    assert [s.username for s in found.students] == [ZHANG[0], LI[0], WANG[0], CHEN[0]]
    one = await staff.staff_students("2024010003")
    assert [(s.username, s.name) for s in one.students] == [(WANG[0], "王磊")]
    assert (await staff.staff_students("2025")).students == []


async def test_staff_search_is_a_prefix_not_a_substring(login):
    staff = await login(*STAFF)
    assert (await staff.staff_students("010003")).students == []


async def test_staff_search_by_name_prefix(login):
    staff = await login(*STAFF)
    found = await staff.staff_students("李")
    assert [(s.username, s.name) for s in found.students] == [(LI[0], "李娜")]
    assert [s.username for s in (await staff.staff_students("张伟")).students] == [ZHANG[0]]


async def test_staff_search_shows_the_lock(http: httpx.AsyncClient, login):
    staff = await login(*STAFF)
    assert (await staff.staff_students(LI[0])).students[0].locked is False
    await lock(http, LI[0])
    assert (await staff.staff_students(LI[0])).students[0].locked is True


async def test_staff_search_excludes_staff_accounts(login):
    staff = await login(*STAFF)
    assert (await staff.staff_students("help")).students == []


async def test_staff_student_detail(login):
    staff = await login(*STAFF)
    detail = await staff.staff_student(ZHANG[0])
    assert detail.profile.username == ZHANG[0]
    assert detail.profile.id_card_masked == "320**************8"
    assert detail.fees.tags[0].tag == "2026-2027学年"
    assert {i.name for i in detail.fees.tags[0].items} == {
        "学费",
        "住宿费",
        "教材费",
        "保险费",
        "体检费",
    }
    assert detail.orders == []


@pytest.mark.parametrize(
    ("method", "suffix", "username"),
    [
        ("GET", "", "9999999999"),
        ("POST", "/reset-password", "9999999999"),
        ("POST", "/unlock", "9999999999"),
        ("GET", "", STAFF[0]),
        ("POST", "/reset-password", STAFF[0]),
        # a staff account is unlocked by another staff member: tests/test_security_api.py
    ],
)
async def test_staff_unknown_student_is_not_found(
    http: httpx.AsyncClient, login, method, suffix, username
):
    staff = await login(*STAFF)
    resp = await http.request(
        method, f"{API}/staff/students/{username}{suffix}", headers=bearer(staff.token)
    )
    error_details(resp, 404, "STUDENT_NOT_FOUND")


async def test_staff_reset_password_answers_204_and_ends_sessions(http: httpx.AsyncClient, login):
    staff = await login(*STAFF)
    wang = await login(*WANG)
    resp = await http.post(
        f"{API}/staff/students/{WANG[0]}/reset-password", headers=bearer(staff.token)
    )
    assert resp.status_code == 204
    error_details(await http.get(f"{API}/me", headers=bearer(wang.token)), 401, "UNAUTHENTICATED")


async def test_staff_reset_password_restores_the_initial_password(http: httpx.AsyncClient, login):
    staff = await login(*STAFF)
    await staff.staff_reset_password(WANG[0])
    fresh = await raw_login(http, WANG[0], WANG_INITIAL)
    assert fresh.status_code == 200
    assert fresh.json()["password_issue"] == "initial"
    assert fresh.json()["must_change_password"] is True
    error_details(await raw_login(http, *WANG), 401, "BAD_CREDENTIALS")


async def test_staff_unlock_lets_a_locked_student_log_in(http: httpx.AsyncClient, login):
    staff = await login(*STAFF)
    await lock(http, LI[0])
    resp = await http.post(f"{API}/staff/students/{LI[0]}/unlock", headers=bearer(staff.token))
    assert resp.status_code == 204
    assert (await raw_login(http, *LI)).status_code == 200
    assert (await staff.staff_students(LI[0])).students[0].locked is False


async def test_staff_unlock_restores_the_full_attempt_count(http: httpx.AsyncClient, login):
    staff = await login(*STAFF)
    await lock(http, LI[0])
    await staff.staff_unlock(LI[0])
    details = error_details((await fail_logins(http, LI[0], 1))[0], 401, "BAD_CREDENTIALS")
    assert details["attempts_left"] == 4


async def _audited_story(http: httpx.AsyncClient, login, clock) -> tuple[ApiClient, set[str]]:
    """Logins, password change, a failure, a reset and staff actions; the secrets used."""
    secrets: set[str] = {ZHANG[1], STRONG, STRONG_2, WANG[1], WANG_INITIAL, LI[1], STAFF[1]}
    zhang = await login(*ZHANG)
    secrets.add(zhang.token)
    clock.advance(1)
    await zhang.change_password(ZHANG[1], STRONG)
    clock.advance(1)
    secrets.add("Wrong-pass-9")
    await fail_logins(http, LI[0], 5)
    clock.advance(1)
    reset_id = (await start_reset(http, CHEN[0], CHEN_IDENTITY))["reset_id"]
    assert (await reset_send(http, reset_id, "sms")).status_code == 204
    code = await last_code_to(http, "13800000004")
    assert (await reset_complete(http, reset_id, code, STRONG_2)).status_code == 204
    secrets |= {reset_id, code, CHEN[1]}
    clock.advance(1)
    staff = await login(*STAFF)
    secrets.add(staff.token)
    clock.advance(1)
    await staff.staff_reset_password(WANG[0])
    clock.advance(1)
    await staff.staff_unlock(LI[0])
    return staff, secrets


async def test_audit_lists_newest_first(http: httpx.AsyncClient, login, clock):
    staff, _ = await _audited_story(http, login, clock)
    entries = (await staff.staff_audit()).entries
    times = [e.at for e in entries]
    assert times == sorted(times, reverse=True)
    assert times[0] > times[-1]
    assert (entries[0].actor, entries[0].target) == (STAFF[0], LI[0])
    assert (entries[1].actor, entries[1].target) == (STAFF[0], WANG[0])


async def test_audit_holds_login_password_and_staff_entries(http: httpx.AsyncClient, login, clock):
    staff, _ = await _audited_story(http, login, clock)
    entries = (await staff.staff_audit(limit=1000)).entries
    actions = [e.action.lower() for e in entries]
    assert any("login" in a for a in actions)
    assert any(
        "password" in a and e.actor == ZHANG[0] for a, e in zip(actions, entries, strict=True)
    )
    staff_targets = {e.target for e in entries if e.actor == STAFF[0]}
    assert {WANG[0], LI[0]} <= staff_targets


async def test_audit_limit_caps_the_entries(http: httpx.AsyncClient, login, clock):
    staff, _ = await _audited_story(http, login, clock)
    assert len((await staff.staff_audit(limit=2)).entries) == 2


async def test_audit_never_contains_a_password_token_or_reset_code(
    http: httpx.AsyncClient, login, clock
):
    staff, secrets = await _audited_story(http, login, clock)
    resp = await http.get(f"{API}/staff/audit?limit=1000", headers=bearer(staff.token))
    assert resp.status_code == 200
    entries = resp.json()["entries"]
    assert len(entries) >= 8
    for entry in entries:
        text = json.dumps(entry, ensure_ascii=False)
        leaked = {s for s in secrets if s in text}
        assert not leaked, (leaked, entry)


# ============================================================================ error shape
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", f"{API}/me", {}, 401, "UNAUTHENTICATED"),
        ("GET", f"{API}/no-such-thing", {}, 404, "NOT_FOUND"),
        ("POST", f"{API}/auth/login", {"content": b"{not json"}, 422, "VALIDATION_ERROR"),
        ("POST", f"{API}/auth/login", {"json": []}, 422, "VALIDATION_ERROR"),
        ("POST", f"{API}/auth/login", {"json": {}}, 422, "VALIDATION_ERROR"),
        (
            "POST",
            f"{API}/password-reset/send",
            {"json": {"reset_id": "x"}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "POST",
            f"{API}/password-reset/send",
            {"json": {"reset_id": "x", "channel": "sms"}},
            400,
            "RESET_EXPIRED",
        ),
        (
            "POST",
            f"{API}/password-reset/complete",
            {"json": {"reset_id": "x", "code": "1", "new_password": "p"}},
            400,
            "RESET_EXPIRED",
        ),
    ],
)
async def test_every_error_has_code_message_and_object_details(
    http: httpx.AsyncClient, method, path, kwargs, status, code
):
    resp = await http.request(method, path, **kwargs)
    error_details(resp, status, code)


async def test_non_utf8_body_is_a_validation_error(http: httpx.AsyncClient):
    resp = await http.post(
        f"{API}/auth/login",
        content=b"\xff\xfe\x00",
        headers={"Content-Type": "application/json"},
    )
    assert "body" in error_details(resp, 422, "VALIDATION_ERROR")["fields"]


async def test_empty_details_are_an_empty_object(http: httpx.AsyncClient):
    resp = await http.get(f"{API}/me")
    assert resp.json()["error"]["details"] == {}


async def test_validation_error_names_its_fields(http: httpx.AsyncClient):
    resp = await http.post(f"{API}/auth/login", json={"username": LI[0]})
    fields = error_details(resp, 422, "VALIDATION_ERROR")["fields"]
    assert {"password", "captcha_id", "captcha_answer"} <= set(fields)


async def test_wrong_method_is_an_error_body_not_a_500(http: httpx.AsyncClient):
    resp = await http.delete(f"{API}/auth/login")
    assert 400 <= resp.status_code < 500
    assert isinstance(resp.json()["error"]["details"], dict)


async def test_typed_client_maps_bad_credentials(client: ApiClient):
    with pytest.raises(errors.BadCredentials) as caught:
        await solve_login(client, LI[0], "Wrong-pass-9")
    assert caught.value.details["attempts_left"] == 4


async def test_solve_captcha_helper_answers_the_newest_captcha(client: ApiClient):
    captcha_id, answer = await solve_captcha(client)
    result = await client.login(LI[0], LI[1], captcha_id, answer)
    assert result.token
