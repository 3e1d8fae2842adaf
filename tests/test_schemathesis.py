"""Schemathesis over the backend's own ``/openapi.json``, against a live server.

Every operation of the document gets a bounded number of generated requests (valid and
invalid), sent with a student's bearer token: no answer may be a 5xx, every error answer
must carry the contract's body ``{"error": {"code", "message", "details"}}``, the token
must be accepted, and answers must match the document (status codes, media types,
response schemas; invalid requests refused).

The schema is loaded from a module-scoped live server (``schemathesis.pytest.from_fixture``),
so nothing is fetched at import time. Generated requests can end the student's session
(``POST /auth/logout``) or count wrong passwords towards the lockout (``POST /auth/password``,
``PATCH /me``); the ``student`` fixture keeps a valid token for every case.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from epay_tui.api.rules import parse_payment_hours
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from tests.conftest import NEW_ZHANG, ZHANG

EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def live_server() -> Iterator[BackgroundServer]:
    """The backend with the demo college and dev hooks; payments open around the clock."""
    server = BackgroundServer(
        ServerConfig(
            demo_data=True,
            dev_hooks=True,
            port=0,
            payment_hours=parse_payment_hours("00:00-24:00"),
        )
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(live_server: BackgroundServer):
    config = schemathesis.Config.from_dict(
        {
            "seed": 20261126,
            # The coverage phase ignores max_examples (it enumerates every boundary value);
            # examples and fuzzing keep the run bounded.
            "phases": {"coverage": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json", config=config)
    assert schema.get_base_url().rstrip("/") == live_server.url
    return schema


class StudentSession:
    """ZHANG's bearer token, renewed whenever a generated request ended or endangered it."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=15)
        self.token: str | None = None
        self.failed_passwords = 0
        self.logins = 0

    def _log_in(self, password: str) -> str:
        captcha = self.http.post("/api/v1/captcha")
        assert captcha.status_code == 200, captcha.text
        latest = self.http.get("/sandbox/captcha/latest").json()
        assert latest["captcha_id"] == captcha.json()["captcha_id"]
        answer = self.http.post(
            "/api/v1/auth/login",
            json={
                "username": ZHANG[0],
                "password": password,
                "captcha_id": latest["captcha_id"],
                "captcha_answer": latest["answer"],
            },
        )
        assert answer.status_code == 200, answer.text
        self.logins += 1
        return answer.json()["token"]

    def first_login(self) -> None:
        token = self._log_in(ZHANG[1])
        changed = self.http.post(
            "/api/v1/auth/password",
            json={"old_password": ZHANG[1], "new_password": NEW_ZHANG},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert changed.status_code == 204, changed.text
        self.token = token

    def headers(self) -> dict[str, str]:
        if self.token is None or self.failed_passwords >= 3:
            # A correct password also resets the failure count, long before the 5th.
            self.token = self._log_in(NEW_ZHANG)
            self.failed_passwords = 0
        return {"Authorization": f"Bearer {self.token}"}

    def saw(self, case, response) -> None:
        code = _error_code(response)
        if code == "BAD_CREDENTIALS":
            self.failed_passwords += 1
        if response.status_code in (401, 423) and code != "BAD_CREDENTIALS":
            self.token = None  # ended (logout) or locked: log in again before the next case
        if case.path.endswith("/logout") and response.status_code < 300:
            self.token = None

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def student(live_server: BackgroundServer) -> Iterator[StudentSession]:
    session = StudentSession(live_server.url)
    session.first_login()
    me = session.http.get("/api/v1/me", headers=session.headers())
    assert me.status_code == 200 and me.json()["username"] == ZHANG[0], me.text
    yield session
    session.close()


def _error_code(response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _serves_html(case) -> bool:
    """The sandbox's pay page for phones: an HTML page, errors included (api.md)."""
    responses = case.operation.definition.raw.get("responses", {})
    return any("text/html" in r.get("content", {}) for r in responses.values())


def error_body_shape(ctx, response, case) -> None:
    """api.md: every error is a status code plus {"error": {code, message, details}}."""
    if response.status_code < 400:
        return
    if _serves_html(case) and response.headers.get("content-type", [""])[0].startswith("text/html"):
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} answer is not JSON") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{response.status_code} answer without an error object"
    assert isinstance(error.get("code"), str), "error.code is not a string"
    assert isinstance(error.get("message"), str), "error.message is not a string"
    assert isinstance(error.get("details"), dict), "error.details is not an object"
    if response.status_code == 422 and error["code"] == "VALIDATION_ERROR":
        assert isinstance(error["details"].get("fields"), dict), "422 without details.fields"


def token_accepted(ctx, response, case) -> None:
    """The student's token is sent with every case and kept valid: never UNAUTHENTICATED."""
    assert _error_code(response) != "UNAUTHENTICATED", "the student's bearer token was refused"


# Not `positive_data_acceptance`: a schema-valid login with a made-up captcha is rightly a
# 400 CAPTCHA_INVALID, a made-up reset_id a 400 RESET_EXPIRED (business rules, api.md).
CHECKS = [
    not_a_server_error,
    error_body_shape,
    token_accepted,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
schema = schemathesis.pytest.from_fixture("api_schema")


@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@schema.parametrize()
def test_no_server_error_and_error_bodies(case, student):
    response = case.call(headers=student.headers())
    student.saw(case, response)
    case.validate_response(response, checks=CHECKS)


def test_every_operation_is_exercised(api_schema, student):
    """The generated test above covers the whole document, and authentication worked."""
    labels = {f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations()}
    assert {"POST /api/v1/auth/login", "POST /api/v1/orders", "PATCH /api/v1/me"} <= labels
    assert len(labels) >= 30
    fees = student.http.get("/api/v1/fees", headers=student.headers())
    assert fees.status_code == 200, fees.text
