"""Shared fixtures: a live reference backend on a free loopback port, a movable clock."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from epay_tui.api.client import ApiClient
from epay_tui.api.clock import ManualClock
from epay_tui.api.rules import parse_payment_hours
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer

SCHOOL_TZ = ZoneInfo("Asia/Shanghai")


def sign(key: bytes, body: bytes) -> str:
    """api.md's notify signature, computed here rather than by the backend's own code:
    ``hex(HMAC-SHA256(secret, raw body))``."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


TEN_AM = datetime(2026, 11, 26, 10, 0, tzinfo=SCHOOL_TZ)

ZHANG = ("2024010001", "152018Czgc")  # initial password
LI = ("2024010002", "Lina2026pay")  # phone invalid, no e-mail
WANG = ("2024010003", "123456")  # weak password
CHEN = ("2024010004", "Chenjing2026")  # tuition and accommodation paid
STAFF = ("helpdesk01", "Helpdesk2026")
NEW_ZHANG = "Zhangwei2026x"  # 张伟 after his forced change


def free_port() -> int:
    """A loopback port nobody listens on (for a backend that is not there yet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch) -> None:
    """Never read or write the developer's own config, data or keyring."""
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


class RunningClock:
    """Real time from a fixed moment: for a test whose client runs in another process
    (it cannot share a manual clock) that must not depend on the hour it runs at."""

    def __init__(self, start: datetime) -> None:
        self.start, self.started = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.started)


@pytest.fixture
def clock() -> ManualClock:
    """School time 10:00 on a term day, moved only by the test."""
    return ManualClock(TEN_AM)


def backend_config(**overrides: Any) -> ServerConfig:
    """The tests' backend: demo college, dev hooks, a free loopback port, 08:00-22:00, a
    quick sweep; ``overrides`` change any setting."""
    settings: dict[str, Any] = {
        "demo_data": True,
        "dev_hooks": True,
        "host": "127.0.0.1",
        "port": 0,
        "payment_hours": parse_payment_hours("08:00-22:00"),
        "tick_seconds": 0.05,
    }
    settings.update(overrides)
    return ServerConfig(**settings)


def ui_config(**overrides: Any) -> ServerConfig:
    """The UI tests' backend: captchas repeat from a seed, so snapshots are stable."""
    return backend_config(captcha_seed=CAPTCHA_SEED, **overrides)


@pytest.fixture
def server_config() -> ServerConfig:
    """Override in a test module (or parametrize) to change TTL, hours, ..."""
    return backend_config()


# ---------------------------------------------------------------------------- databases
DATABASES = ("sqlite", "postgresql-2-workers")
TEST_KEYS = {"notify_key": "5a" * 32, "reset_code_key": "a5" * 32}
"""A PostgreSQL backend has its keys given (no key file beside a database server)."""


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[Any]:
    """A PostgreSQL 16 server for this test process, from the ``pgserver`` package (it
    installs with the test extras, no system package needed), removed at the end."""
    # Its own folder outside pytest's: run as root, the server's user must traverse the
    # folders above its data, which pgserver opens (o+rx) and pytest closes again (0700
    # on pytest-of-root whenever another xdist worker starts).
    home = Path(tempfile.mkdtemp(prefix="epay-test-pg-"))
    try:
        with pytest.MonkeyPatch.context() as env:  # its sockets' folder, not a shared one
            env.setenv("XDG_RUNTIME_DIR", str(home / "run"))
            (home / "run").mkdir()
            import pgserver

            server = pgserver.get_server(home / "pgdata", cleanup_mode="delete")
            yield server
            server.cleanup()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def new_postgres_database(postgres: Any) -> str:
    """An empty database of its own on the test PostgreSQL: its URL."""
    name = f"epay_{secrets.token_hex(6)}"
    postgres.psql(f"CREATE DATABASE {name};")
    return postgres.get_uri(name)


@pytest.fixture
def database(request) -> str:
    """Which database the test's backend uses: SQLite, unless the module sets
    ``ON_BOTH_DATABASES`` and the test runs on each."""
    return getattr(request, "param", "sqlite")


def pytest_generate_tests(metafunc) -> None:
    if "database" in metafunc.fixturenames and getattr(metafunc.module, "ON_BOTH_DATABASES", False):
        metafunc.parametrize("database", DATABASES, indirect=True)


class Workers:
    """Two backends over one PostgreSQL database, as ``serve --workers 2`` runs them:
    each its own pools, locks, long polls and bid for the background duties; they share
    only the database (and the test's clock). ``url`` names them in turn, so each device
    a test opens, and each notify it posts, goes to the other worker than the last."""

    def __init__(self, config: ServerConfig, clock: ManualClock) -> None:
        self.workers = [BackgroundServer(config, clock).start()]
        self.public_url = self.workers[0].url  # one address outside, as behind a balancer
        second = replace(config, demo_data=False, public_url=self.public_url)
        self.workers.append(BackgroundServer(second, clock).start())
        self.backend, self.app = self.workers[0].backend, self.workers[0].app
        self.config = self.workers[0].config
        self._turn = 0

    @property
    def url(self) -> str:
        self._turn += 1
        return self.workers[self._turn % 2].url

    def stop_soon(self) -> None:
        for worker in self.workers:
            worker.stop_soon()


def on_database(config: ServerConfig, database: str, request) -> ServerConfig:
    """``config`` on a fresh PostgreSQL database when ``database`` says so."""
    if database == "sqlite":
        return config
    url = new_postgres_database(request.getfixturevalue("postgres"))
    return replace(config, db_path=url, **TEST_KEYS)


def running_backend(
    config: ServerConfig, clock: ManualClock, workers: int = 1
) -> Iterator[BackgroundServer]:
    """A backend for one test (two :class:`Workers` with ``workers=2``). Afterwards it is
    told to stop and closes its database in its own thread: the next test need not wait
    for that (a test that restarts a backend on the same database waits with ``stop()``)."""
    running = BackgroundServer(config, clock).start() if workers == 1 else Workers(config, clock)
    yield running
    running.stop_soon()


@pytest.fixture
def server(
    server_config: ServerConfig, clock: ManualClock, database: str, request
) -> Iterator[BackgroundServer]:
    workers = 2 if database.endswith("-2-workers") else 1
    yield from running_backend(on_database(server_config, database, request), clock, workers)


@pytest.fixture
async def client(server: BackgroundServer) -> AsyncIterator[ApiClient]:
    """An anonymous client of the live backend."""
    async with ApiClient(server.url) as api:
        yield api


LoginFn = Callable[..., Awaitable[ApiClient]]


@pytest.fixture
async def login(server: BackgroundServer) -> AsyncIterator[LoginFn]:
    """``await login(username, password, new_password=None)`` -> a logged-in ApiClient.

    Each call is a separate device (its own client and session). With
    ``new_password`` the forced change after an initial/weak password is done too.
    """
    opened: list[ApiClient] = []

    async def _login(username: str, password: str, new_password: str | None = None) -> ApiClient:
        api = ApiClient(server.url)
        opened.append(api)
        await solve_login(api, username, password)
        if new_password:
            await api.change_password(password, new_password)
        return api

    yield _login
    for api in opened:
        await api.aclose()


async def solve_captcha(api: ApiClient) -> tuple[str, str]:
    """Fetch a captcha and read its answer from the dev hook, as a test may."""
    await api.new_captcha()
    latest = await api.latest_captcha()
    return latest.captcha_id, latest.answer


async def solve_login(api: ApiClient, username: str, password: str):
    captcha_id, answer = await solve_captcha(api)
    return await api.login(username, password, captcha_id, answer)


# ---------------------------------------------------------------------------- the client
CAPTCHA_SEED = 20261126


@pytest.fixture
def ui_server_config() -> ServerConfig:
    """A backend for UI tests: demo college, dev hooks, captchas repeat from a seed."""
    return ui_config()


@pytest.fixture
def ui_server(ui_server_config: ServerConfig, clock: ManualClock) -> Iterator[BackgroundServer]:
    yield from running_backend(ui_server_config, clock)


@pytest.fixture
def make_ui_app(ui_server: BackgroundServer, clock: ManualClock):
    """``make_ui_app(lang="zh", **settings)`` -> the real app wired to the live backend."""
    from epay_tui.app import make_app
    from epay_tui.config import Settings

    def _make(lang: str = "zh", **settings):
        return make_app(
            Settings(server=ui_server.url, lang=lang, **settings),
            ApiClient(ui_server.url),
            clock,
        )

    return _make


def latest_captcha_answer(server: BackgroundServer) -> str:
    """The answer of the last captcha the backend issued (the dev hook, read in-process)."""
    from epay_tui.server import accounts

    return accounts.latest_captcha(server.backend).answer


# ---------------------------------------------------------------------------- a student's devices
@pytest.fixture
async def phone(ui_server: BackgroundServer) -> AsyncIterator[ApiClient]:
    """The payer's phone: it only opens pay links."""
    async with ApiClient(ui_server.url) as api:
        yield api


@pytest.fixture
async def zhang_changed(ui_server: BackgroundServer) -> str:
    """张伟 has already done the forced change (on another day): his password now."""
    async with ApiClient(ui_server.url) as api:
        await solve_login(api, *ZHANG)
        await api.change_password(ZHANG[1], NEW_ZHANG)
        await api.logout()
    return NEW_ZHANG


@pytest.fixture
async def device(ui_server: BackgroundServer, zhang_changed: str) -> AsyncIterator[ApiClient]:
    """张伟's other device (a phone browser, say), logged in."""
    async with ApiClient(ui_server.url) as api:
        await solve_login(api, ZHANG[0], zhang_changed)
        yield api
