"""Hostile input on every POST/PATCH route: never a 5xx, always the contract's error body.

The routes are enumerated from the live app (``server.app.routes``, through FastAPI's
``iter_route_contexts``, which unfolds the included routers), so a new route is covered
without touching this file. Each write route gets malformed JSON, JSON that is not
an object, a 1 MiB body, and its body schema (from the app's OpenAPI document) mutated one
field at a time with very long strings, CJK/RTL/emoji/NUL/control characters,
negative/huge numbers, wrong types and unknown fields: as an anonymous client, as the
student ZHANG (after the forced password change) and as the helpdesk. Unknown routes must
answer ``404 NOT_FOUND`` and wrong methods ``405``, both with the error body.

Requests run concurrently (bounded), because every answer of the reference backend
costs ~40 ms of latency on loopback. Requests that check the actor's own password run in
a narrow lane that logs in again (resetting the failure count) long before a lockout, and
requests to a logout-like route each end a throwaway session, so the actor's main token
stays valid for the whole run (checked at the end).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from epay_tui.server.routes import sandbox
from tests.conftest import NEW_ZHANG, STAFF, ZHANG

ON_BOTH_DATABASES = True  # SQLite, and PostgreSQL with two workers (conftest)
ONE_MIB = 1 << 20
CONCURRENCY = 32
WRITE_METHODS = frozenset({"POST", "PATCH"})
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Fields that make the server check the caller's own password (failures count to lockout).
OWN_PASSWORD_FIELD = re.compile(r"^(old|current)_password$")
# The error codes a route may answer before it looks at the body: not logged in, wrong role.
GATE_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN", "PASSWORD_CHANGE_REQUIRED"})
PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")

# ---------------------------------------------------------------------------- payloads
HOSTILE_VALUES: dict[str, Any] = {
    "long-ascii": "A" * 50_000,
    "long-cjk": "缴" * 8_000,
    "cjk": "张伟学费住宿费",
    "rtl": "\u202eمرحبا بالعالم\u202c שלום",
    "emoji": "😀👨\u200d👩\u200d👧\u200d👦🏳️\u200d🌈💸",
    "nul": "abc\x00def",
    "control": "\x01\x07\x1b[31mred\x1b[0m\x7f\r\n\t\u200b\ufeff' OR 1=1; --%_",
    "empty": "",
    "negative": -1,
    "giant-int": 10**300,
    "float": -1.5,
    "true": True,
    "null": None,
    "list": ["x", 1, None],
    "long-list": ["x"] * 1000,
}
# Routes that read no JSON body get the body-level attacks and these few values only.
NO_BODY_VALUES = ("long-cjk", "nul", "giant-int", "list")

# Syntactically broken JSON, and JSON that is not an object: a JSON-body route refuses both.
MALFORMED: dict[str, bytes] = {
    "empty-body": b"",
    "truncated": b'{"a":',
    "single-quotes": b"{'a': 1}",
    "trailing-comma": b'{"a": 1,}',
    "nul-byte": b"\x00",
    "garbage-after": b'{"a": 1} {"b": 2}',
}
NOT_AN_OBJECT: dict[str, bytes] = {
    "array": b"[1, 2, 3]",
    "string": b'"a string"',
    "number": b"-1e308",
    "null": b"null",
}
# Objects a lenient parser reads (a lone surrogate, NaN): refused anyway (unknown field).
ODD_OBJECTS: dict[str, bytes] = {
    "lone-surrogate": b'{"a": "\\ud800"}',
    "nan": b'{"a": NaN}',
}
# Bodies the JSON parser cannot even read. Checked here only for "no 5xx, error body";
# test_unreadable_body_is_a_validation_error holds them to the contract's 422.
UNREADABLE: dict[str, bytes] = {
    "invalid-utf8": b'{"a": "\xff\xfe"}',
    "int-literal-5000-digits": b'{"a": ' + b"1" * 5000 + b"}",
    "nested-2000-deep": b"[" * 2000 + b"]" * 2000,
}
UNKNOWN_FIELD_NAMES = ("未知字段", "k" * 1000)
HOSTILE_HEADER_VALUES: dict[str, bytes] = {
    "empty": b"",
    "long": b"k" * 8000,
    "utf8": "键-🔑".encode(),
    "latin1-bytes": b"\xff\xfe\xfd",
}
HOSTILE_AUTHORIZATION: dict[str, bytes] = {
    "bearer-long": b"Bearer " + b"t" * 8000,
    "basic": b"Basic Zm9vOmJhcg==",
    "bearer-utf8": "Bearer 令牌".encode(),
}


# ---------------------------------------------------------------------------- routes
@dataclass(frozen=True)
class WriteRoute:
    method: str
    template: str
    url: str
    body_schema: dict | None
    header_schemas: dict[str, dict]

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def checks_own_password(self) -> bool:
        props = (self.body_schema or {}).get("properties", {})
        return any(OWN_PASSWORD_FIELD.match(name) for name in props)

    @property
    def ends_session(self) -> bool:
        return self.template.endswith("/logout")


def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _sample(schema: dict, components: dict) -> Any:
    """A simple value that satisfies ``schema`` (enough to reach the field under test)."""
    schema = _resolve(schema, components)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if _resolve(s, components).get("type") != "null"]
        return _sample(options[0], components) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "date":
            return "2026-11-26"
        if schema.get("format") == "date-time":
            return "2026-11-26T10:00:00+08:00"
        return "x" * max(int(schema.get("minLength", 1)), 1)
    if kind in ("integer", "number"):
        return int(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "array":
        return [_sample(schema.get("items", {}), components)] * max(schema.get("minItems", 1), 1)
    if kind == "object":
        return {
            name: _sample(prop, components) for name, prop in schema.get("properties", {}).items()
        }
    return "x"


def _violates(schema: dict, value: Any, components: dict) -> bool:
    """True only where the schema is certainly broken (no lax-coercion guesswork)."""
    schema = _resolve(schema, components)
    if "anyOf" in schema:
        return all(_violates(option, value, components) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "null":
        return value is not None
    if "enum" in schema and value not in schema["enum"]:
        return True
    if kind == "string":
        if not isinstance(value, str):
            return "format" not in schema  # lax parsers read a date from a number
        return len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get(
            "minLength", 0
        )
    if kind in ("integer", "number"):
        if value is None or isinstance(value, list | dict):
            return True
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return True
        if isinstance(value, bool):
            return False
        if kind == "integer" and isinstance(value, float) and not value.is_integer():
            return True
        return value > schema.get("maximum", value) or value < schema.get("minimum", value)
    if kind == "array":
        if not isinstance(value, list):
            return True
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return True
        return any(_violates(schema.get("items", {}), item, components) for item in value)
    return False


def write_routes(app) -> list[WriteRoute]:
    """Every POST/PATCH route of the running app, its path parameters filled in."""
    openapi = app.openapi()
    components = openapi.get("components", {}).get("schemas", {})
    found = []
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", None)
        for method in sorted((getattr(route, "methods", None) or set()) & WRITE_METHODS):
            operation = openapi.get("paths", {}).get(path, {}).get(method.lower(), {})
            params = {
                (p["in"], p["name"]): p.get("schema", {}) for p in operation.get("parameters", [])
            }

            def fill(match: re.Match, params=params) -> str:
                schema = params.get(("path", match.group(1)), {})
                return schema["enum"][0] if "enum" in schema else "no-such-thing"

            url = PATH_PARAM.sub(fill, path)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            found.append(
                WriteRoute(
                    method=method,
                    template=path,
                    url=url,
                    body_schema=_resolve(body["schema"], components) if body else None,
                    header_schemas={
                        name: _resolve(s, components)
                        for (where, name), s in params.items()
                        if where == "header"
                    },
                )
            )
    return found


def all_route_methods(app) -> dict[str, set[str]]:
    by_path: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", None)
        if path:
            by_path.setdefault(path, set()).update(getattr(route, "methods", None) or ())
    return by_path


# ---------------------------------------------------------------------------- probes
@dataclass
class Probe:
    route: WriteRoute
    label: str
    content: bytes
    headers: dict[str, bytes] = field(default_factory=dict)
    expect: str = "any"  # any | refused | too-large
    names_field: str | None = None  # for refused: the field details.fields must name


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def probes_for(
    route: WriteRoute, components: dict, *, sample: bool, anonymous: bool
) -> Iterator[Probe]:
    """The hostile requests for one route.

    ``sample``: one of each body-level attack only, no field mutations. For a route that
    refuses the actor before reading the body (401/403 on a valid body), and for a
    logout-like route, where every probe costs a fresh session.
    """
    json_body = route.body_schema is not None
    base_headers = {
        name: _sample(schema, components).encode() for name, schema in route.header_schemas.items()
    }
    base = _sample(route.body_schema, components) if json_body else {"x": "x"}
    refused = "refused" if json_body else "any"

    def probe(label, content, expect="any", names_field=None, headers=None) -> Probe:
        return Probe(
            route, label, content, {**base_headers, **(headers or {})}, expect, names_field
        )

    first = 1 if sample else None
    for label, content in list(MALFORMED.items())[:first]:
        yield probe(f"malformed:{label}", content, refused, "body")
    for label, content in list(NOT_AN_OBJECT.items())[:first]:
        yield probe(f"not-an-object:{label}", content, refused, "body")
    for label, content in list(ODD_OBJECTS.items())[:first]:
        yield probe(f"odd-object:{label}", content, refused)
    for label, content in list(UNREADABLE.items())[:first]:
        yield probe(f"unreadable:{label}", content)
    filler = b"A" * (ONE_MIB - 10)
    yield probe("1-MiB-body", b'{"x": "' + filler + b'"}', "too-large")
    for name in UNKNOWN_FIELD_NAMES[:first]:
        yield probe(f"unknown-field:{name[:20]}", _dump({**base, name: "x"}), refused, name)
    if anonymous:
        for label, value in HOSTILE_AUTHORIZATION.items():
            yield probe(f"authorization={label}", _dump(base), headers={"Authorization": value})
    if sample:
        return
    properties = route.body_schema.get("properties", {}) if json_body else {"x": {}}
    required = set(route.body_schema.get("required", [])) if json_body else set()
    for name, prop in properties.items():
        if name in required:
            body = {k: v for k, v in base.items() if k != name}
            yield probe(f"missing:{name}", _dump(body), "refused", name)
        for label, value in HOSTILE_VALUES.items():
            if not json_body and label not in NO_BODY_VALUES:
                continue
            body = {**base, name: value}
            if json_body and _violates(prop, value, components):
                yield probe(f"{name}={label}", _dump(body), "refused", name)
            else:
                yield probe(f"{name}={label}", _dump(body))
    for header, schema in route.header_schemas.items():
        for label, value in HOSTILE_HEADER_VALUES.items():
            text = value.decode("utf-8", "replace")
            low, high = schema.get("minLength", 0), schema.get("maxLength", len(text))
            out_of_bounds = not low <= len(text) <= high
            yield probe(
                f"header {header}={label}",
                _dump(base),
                "refused" if out_of_bounds else "any",
                header if out_of_bounds else None,
                {header: value},
            )


# ---------------------------------------------------------------------------- checks
def error_body_problem(response: httpx.Response) -> str | None:
    """None if the answer carries ``{"error": {"code": str, "message": str, "details": {}}}``."""
    try:
        body = response.json()
    except ValueError:
        return "the error answer is not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "no error object"
    if not isinstance(error.get("code"), str) or not error["code"]:
        return "error.code is not a non-empty string"
    if not isinstance(error.get("message"), str):
        return "error.message is not a string"
    if not isinstance(error.get("details"), dict):
        return "error.details is not an object"
    return None


def generic_problem(response: httpx.Response) -> str | None:
    status = response.status_code
    if status >= 500:
        return "server error"
    if status < 400:
        return None
    if problem := error_body_problem(response):
        return problem
    error = response.json()["error"]
    if status == 422:
        if error["code"] != "VALIDATION_ERROR":
            return f"422 with code {error['code']}, not VALIDATION_ERROR"
        fields = error["details"].get("fields")
        if not isinstance(fields, dict) or not fields:
            return "422 VALIDATION_ERROR without a non-empty details.fields object"
    return None


def probe_problem(probe: Probe, response: httpx.Response) -> str | None:
    if problem := generic_problem(response):
        return problem
    status = response.status_code
    if probe.expect == "too-large":
        if status != 413 or response.json()["error"]["code"] != "PAYLOAD_TOO_LARGE":
            return "a 1 MiB body is not refused with 413 PAYLOAD_TOO_LARGE"
    elif probe.expect == "refused":
        if status == 422:
            fields = response.json()["error"]["details"]["fields"]
            named = probe.names_field
            if named and not any(k == named or k.startswith(f"{named}.") for k in fields):
                return f"422 does not name the field {named[:40]!r} in details.fields"
        elif not (status in (401, 403) and response.json()["error"]["code"] in GATE_CODES):
            return "an invalid body is not refused (expected 422, or 401/403 before the body)"
    return None


def describe(actor: str, probe: Probe, response: httpx.Response | None, problem: str) -> str:
    sent = probe.content[:120]
    answer = f"{response.status_code} {response.text[:300]}" if response is not None else ""
    extra = {k: v[:40] for k, v in probe.headers.items()}
    return (
        f"[{actor}] {probe.route.method} {probe.route.url} ({probe.label}): {problem}\n"
        f"    sent {sent!r}{'...' if len(probe.content) > 120 else ''} headers {extra}\n"
        f"    got  {answer}"
    )


# ---------------------------------------------------------------------------- actors
class Actor:
    """Anonymous, or a user whose main token stays valid for the whole run."""

    def __init__(self, http: httpx.AsyncClient, name: str, credentials=None, new_password=None):
        self.http = http
        self.name = name
        self.credentials = credentials
        self.new_password = new_password
        self.token: str | None = None
        self._login_lock = asyncio.Lock()

    async def _solved_captcha(self) -> tuple[str, str]:
        # The dev hook shows the newest captcha, and the hostile load issues captchas too.
        for _ in range(30):
            issued = await self.http.post("/api/v1/captcha")
            assert issued.status_code == 200, issued.text
            latest = await self.http.get("/sandbox/captcha/latest")
            assert latest.status_code == 200, latest.text
            if latest.json()["captcha_id"] == issued.json()["captcha_id"]:
                return latest.json()["captcha_id"], latest.json()["answer"]
        raise AssertionError("could not read back a captcha of our own in 30 tries")

    async def fresh_token(self, password: str | None = None) -> str:
        """A new session; logging in with the right password also resets the failure count."""
        assert self.credentials is not None
        async with self._login_lock:
            captcha_id, answer = await self._solved_captcha()
            result = await self.http.post(
                "/api/v1/auth/login",
                json={
                    "username": self.credentials[0],
                    "password": password or self.new_password or self.credentials[1],
                    "captcha_id": captcha_id,
                    "captcha_answer": answer,
                },
            )
        assert result.status_code == 200, f"{self.name} cannot log in: {result.text}"
        return result.json()["token"]

    async def log_in(self) -> None:
        if self.credentials is None:
            return
        token = await self.fresh_token(self.credentials[1])
        auth = {"Authorization": f"Bearer {token}"}
        if self.new_password:
            changed = await self.http.post(
                "/api/v1/auth/password",
                json={"old_password": self.credentials[1], "new_password": self.new_password},
                headers=auth,
            )
            assert changed.status_code == 204, changed.text
        me = await self.http.get("/api/v1/me", headers=auth)
        assert me.status_code == 200, me.text
        self.token = token


async def fire_all(
    url: str, jobs: list[tuple[str, str, bytes, dict]], workers: int = CONCURRENCY
) -> list[httpx.Response]:
    """Send ``(method, path, content, headers)`` jobs, answers in order.

    Each worker owns a one-connection client: one shared pool of many connections costs
    more client CPU per request than the requests themselves.
    """
    answers: list[httpx.Response | None] = [None] * len(jobs)
    todo = list(enumerate(jobs))[::-1]

    async def worker() -> None:
        async with httpx.AsyncClient(
            base_url=url,
            timeout=15,
            limits=httpx.Limits(max_connections=1),
            verify=False,  # plain http on loopback: skip loading a CA bundle per client
        ) as http:
            while todo:
                index, (method, path, content, headers) = todo.pop()
                answers[index] = await http.request(method, path, content=content, headers=headers)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(jobs)))))
    return answers  # type: ignore[return-value]


def request_headers(probe: Probe, token: str | None) -> dict:
    headers = {"Content-Type": "application/json", **probe.headers}
    if token and "Authorization" not in probe.headers:
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def send(http: httpx.AsyncClient, probe: Probe, token: str | None) -> httpx.Response:
    return await http.request(
        probe.route.method,
        probe.route.url,
        content=probe.content,
        headers=request_headers(probe, token),
    )


async def is_gated(http: httpx.AsyncClient, route: WriteRoute, components, token) -> bool:
    """Does the actor meet 401/403 (not logged in, wrong role) before the body is read?"""
    if token and route.ends_session:
        return False  # a logged-in actor may log out; probing would end its session
    base = _sample(route.body_schema, components) if route.body_schema else {}
    probe = Probe(route, "gate", _dump(base))
    probe.headers = {n: _sample(s, components).encode() for n, s in route.header_schemas.items()}
    response = await send(http, probe, token)
    if response.status_code not in (401, 403) or error_body_problem(response):
        return False
    return response.json()["error"]["code"] in GATE_CODES


async def run_actor(server, actor_name: str) -> tuple[list[str], int]:
    """Send every probe of every write route as ``actor_name``; the problems found."""
    app = server.app
    components = app.openapi().get("components", {}).get("schemas", {})
    problems: list[str] = []
    sent = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        actor = {
            "anonymous": lambda: Actor(http, "anonymous"),
            "student": lambda: Actor(http, "student ZHANG", ZHANG, NEW_ZHANG),
            "staff": lambda: Actor(http, "staff", STAFF),
        }[actor_name]()
        await actor.log_in()
        pool: list[Probe] = []
        own_password: list[Probe] = []
        session_enders: list[Probe] = []
        routes = write_routes(app)
        gates = await asyncio.gather(*(is_gated(http, r, components, actor.token) for r in routes))
        for route, gated in zip(routes, gates, strict=True):
            ends_session = actor.token is not None and route.ends_session
            probes = probes_for(
                route, components, sample=gated or ends_session, anonymous=actor.token is None
            )
            if ends_session:
                session_enders += probes
            elif actor.token and route.checks_own_password and not gated:
                own_password += probes
            else:
                pool += probes
        if actor.token and own_password:
            await actor.fresh_token()  # the gate probes may have counted a failed password

        def record(probe: Probe, response: httpx.Response) -> None:
            nonlocal sent
            sent += 1
            if problem := probe_problem(probe, response):
                problems.append(describe(actor.name, probe, response, problem))

        async def run_pool() -> None:
            jobs = [
                (p.route.method, p.route.url, p.content, request_headers(p, actor.token))
                for p in pool
            ]
            for probe, response in zip(pool, await fire_all(server.url, jobs), strict=True):
                record(probe, response)

        async def end_sessions() -> None:
            # Each probe of a logout-like route ends a throwaway session, never the main one.
            for probe in session_enders:
                token = actor.token if probe.expect == "too-large" else await actor.fresh_token()
                record(probe, await send(http, probe, token))

        async def check_own_password() -> None:
            # Wrong old/current passwords count towards the lockout (5 in a row). A probe is
            # sent only while fewer than 2 failures are seen, with at most 3 in flight, and a
            # correct login resets the count: never more than 2 - 1 + 3 = 4 in a row.
            failures = 0
            resetting = asyncio.Lock()

            async def worker(queue: list[Probe]) -> None:
                nonlocal failures
                while queue:
                    probe = queue.pop()
                    async with resetting:
                        if failures >= 2:
                            await actor.fresh_token()
                            failures = 0
                    response = await send(http, probe, actor.token)
                    record(probe, response)
                    if response.status_code == 401 and "BAD_CREDENTIALS" in response.text:
                        failures += 1

            await asyncio.gather(*(worker(own_password) for _ in range(3)))

        await asyncio.gather(end_sessions(), check_own_password(), run_pool())
        if actor.token:
            still = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {actor.token}"})
            assert still.status_code == 200, f"{actor.name}'s session did not survive: {still.text}"
    return problems, sent


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("actor_name", ["anonymous", "student", "staff"])
async def test_write_routes_survive_hostile_input(server, actor_name):
    routes = write_routes(server.app)
    assert len(routes) >= 15, [r.label for r in routes]  # the enumeration really found them
    problems, sent = await run_actor(server, actor_name)
    assert sent >= 20 * len(routes)  # bodiless routes (approve, resend) get fewer probes
    assert not problems, f"{len(problems)} contract violations, first ones:\n" + "\n".join(
        problems[:25]
    )


UNKNOWN_PATHS = (
    "/nope",
    "/api/v1/nope",
    "/api/v2/meta",
    "/api/v1/orders/x/refund",
    "/api/v1/staff/students/x/delete",
    "/api/v1/%E5%AD%A6%E8%B4%B9",
    "/api/v1/%00",
    "/api/v1/..%2F..%2Fetc%2Fpasswd",
    "/" + "a" * 2000,
    "/sandbox/pay",
)


async def test_unknown_routes_answer_404_not_found(server):
    requests = [
        (method, path, body, {"Content-Type": "application/json"})
        for path in UNKNOWN_PATHS
        for method in ("GET", "POST")
        for body in (b"", b'{"a": 1}')
    ]
    problems = []
    for (method, path, *_), response in zip(
        requests, await fire_all(server.url, requests), strict=True
    ):
        shape = error_body_problem(response)
        if response.status_code != 404 or shape or response.json()["error"]["code"] != "NOT_FOUND":
            problems.append(f"{method} {path[:60]} -> {response.status_code} {response.text[:200]}")
    assert not problems, "\n".join(problems)


async def test_wrong_methods_answer_405_with_the_error_body(server):
    requests = []
    for path, methods in all_route_methods(server.app).items():
        url = PATH_PARAM.sub("no-such-thing", path)
        requests += [(m, url, b"", {}) for m in ALL_METHODS if m not in methods]
    assert len(requests) >= 30
    problems = []
    for (method, path, *_), response in zip(
        requests, await fire_all(server.url, requests), strict=True
    ):
        shape = error_body_problem(response)
        if (
            response.status_code != 405
            or shape
            or response.json()["error"]["code"] != "METHOD_NOT_ALLOWED"
        ):
            problems.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("label", sorted(UNREADABLE))
def test_unreadable_body_is_a_validation_error(server, label):
    """api.md: a body that fails validation answers 422 VALIDATION_ERROR, details.fields."""
    response = httpx.post(
        f"{server.url}/api/v1/auth/login",
        content=UNREADABLE[label],
        headers={"Content-Type": "application/json"},
    )
    assert error_body_problem(response) is None, response.text
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert isinstance(response.json()["error"]["details"].get("fields"), dict)


def test_oversized_chunked_body_answers_413(server):
    """Without a Content-Length the limit must still answer 413 PAYLOAD_TOO_LARGE."""

    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(32):
            yield b"A" * 32_768
        yield b'"}'

    response = httpx.post(
        f"{server.url}/api/v1/auth/login",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert error_body_problem(response) is None, response.text
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("peer", ["192.0.2.7", "10.0.0.5", "2001:db8::1"])
async def test_dev_hooks_refuse_a_peer_off_loopback(server, peer):
    """Behind a proxy or a port forward, the hooks still answer only a loopback peer.

    The peer address cannot be forged over a real loopback socket, so the app is called
    in-process through ASGI with that client address; the same app answers loopback.
    """
    hooks = [(route.path, *route.methods) for route in sandbox.dev_router.routes]
    assert hooks == [
        ("/sandbox/captcha/latest", "GET"),
        ("/sandbox/outbox", "GET"),
        ("/sandbox/duplicate-payment", "POST"),
    ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post("/api/v1/captcha")).status_code == 200
        assert (await http.get(hooks[0][0])).status_code == 200  # loopback: answered
    outside = httpx.ASGITransport(app=server.app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=outside, base_url="http://epay.example") as http:
        for path, method in hooks:
            answer = await http.request(method, path, json={"order_no": "x"})
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["error"]["code"] == "FORBIDDEN"
            assert list(answer.json()) == ["error"]  # nothing of the hook's own answer
