"""A fleet of kiosks and a ramp of paying students against one backend: find the knee.

Setup (not measured): the backend starts in its own process, ``epay-tui serve`` as a
deployment runs it (payment hours 00:00-24:00, dev hooks on, the keys from the
environment), on a SQLite file in a temporary directory (``--db sqlite``, one process) or
on a fresh database of a PostgreSQL 16 this script starts (``--db postgresql``, the
``pgserver`` package, in a temporary folder removed at the end) with ``--workers N``
processes. Its database holds the demo college plus load students, each owing ``--tags``
school years of the demo fees. Every kiosk logs in (captchas read from
``/sandbox/captcha/latest`` under a lock), opens an order for its fiscal fees and asks for
the QR; from then on it long-polls that order (``GET /orders/{no}?wait=--wait&status=open``)
until the end of the run, so the kiosks hold their connections through every level.

Each level then logs in a fresh set of ``payers`` students and runs them for
``--seconds``: a payer loops GET /fees, POST /orders (the first unpaid receipt group),
POST pay (QR), and while its screen long-polls the order, POST the sandbox pay link
(success, notify now) and waits until the screen shows ``paid``; ``--think`` seconds
(jittered 0.5-1.5x) pass between a payer's steps. A payer down to its last unpaid
group keeps it for cancel cycles (create, QR, cancel), so the load stays steady.
A call counts in a level when it starts inside the level's window; payers finish the
cycle they are in after the window, so every order settles.

The ramp stops at the first level where the p99 of some call (the long polls excepted:
their latency is the wait or the payer's think time) passes 1 s: the knee. At the end
the kiosks cancel their orders and the database is checked: no item paid twice or
beyond its due, no item in two unfinished orders, no closed order with a live trade,
every successful gateway trade recorded on its order, an SMS and an e-mail per
payment. The exit code is 1 when an invariant fails or any call erred.

Every kiosk and student is a device of its own (an httpx client with its own
connections, keep-alive 4 s as the app's client), all on one asyncio loop. An error
is a transport error, a timeout (120 s past any wait) or a status other than the one
the flow expects; the flow expects no refusal at all. Per level the output gives
req/s, p50/p99 per call, errors, and the CPU share of the backend (its serve process
and every worker under it), of the database server (PostgreSQL's processes; on SQLite
the database works inside the backend), of this generator and of the rest of the
machine, the backend and database CPU per paid order, and the generator's event-loop
lag: a generator near 100% of a core, or with a lag of the order of the latencies,
measures itself.

``--compare`` runs sqlite×1, postgresql×1 and postgresql×2 one after another with the
same arguments, each reported as above, and ends with a table of the three: the knee,
paid/s per level, CPU per paid order and p99 per call at the highest level all three ran.

    python benchmarks/load.py [--kiosks 200] [--levels 25,50,100,150,200,300,400,600,800]
        [--seconds 20] [--wait 10] [--think 1] [--db sqlite|postgresql] [--workers N]
        [--compare] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from epay_tui.api.client import KEEPALIVE_SECONDS

PASSWORD = "Bench2026pass"
CHANNEL = "wechat"
TIMEOUT = 120.0
"""Seconds before a call counts as a transport error (long polls: ``wait`` more)."""
KNEE_SECONDS = 1.0
LEVELS = (25, 50, 100, 150, 200, 300, 400, 600, 800)

FEES = "GET /fees"
CREATE = "POST /orders"
PAY = "POST /orders/{no}/pay"
SANDBOX = "POST /sandbox/pay/{token}"
CANCEL = "POST /orders/{no}/cancel"
QUERY = "POST /orders/{no}/query"
SCREEN = "GET /orders/{no}?wait (payer screen)"
IDLE = "GET /orders/{no}?wait (kiosk, idle)"
TO_PAID = "sandbox pay → paid on screen"
CALLS = (FEES, CREATE, PAY, SANDBOX, TO_PAID, CANCEL, QUERY, SCREEN, IDLE)
NOT_KNEE = {SCREEN, IDLE}
"""Long polls: their latency is the wait (kiosks) or the payer's think time (screens)."""
DERIVED = {TO_PAID}
"""Not a request: from the sandbox pay POST to the screen's poll answering ``paid``."""


# ---------------------------------------------------------------------------- backend
@dataclass(frozen=True)
class Setup:
    """What the backend runs on: ``sqlite`` (one process) or ``postgresql`` with workers."""

    db: str
    workers: int = 1

    @property
    def name(self) -> str:
        return f"{self.db}×{self.workers}"


COMPARED = (Setup("sqlite"), Setup("postgresql"), Setup("postgresql", 2))
KEY_ENV = ("EPAY_NOTIFY_KEY", "EPAY_RESET_CODE_KEY")
"""The keys every worker shares, given in the environment as ``epay-tui serve`` takes them."""


def serve_child(db: str, students: int, tags: int, workers: int) -> None:
    """Child process: seed demo data plus load students owing ``tags`` years into ``db``
    (a SQLite file or an empty PostgreSQL database), then serve it with ``workers``."""
    from epay_tui.api.rules import parse_payment_hours
    from epay_tui.server import demo_data
    from epay_tui.server.backend import Backend
    from epay_tui.server.config import ServerConfig
    from epay_tui.server.runner import serve

    notify_key, reset_code_key = (os.environ[name] for name in KEY_ENV)
    config = ServerConfig(
        db_path=db,
        dev_hooks=True,
        port=0,
        order_ttl_seconds=6 * 3600,  # kiosk orders outlive any run (still capped at 24:00)
        payment_hours=parse_payment_hours("00:00-24:00"),
        notify_key=notify_key,
        reset_code_key=reset_code_key,
    )
    backend = Backend(config)
    demo_data.seed(backend)
    names = demo_data.add_load_students(backend, students, PASSWORD)
    with backend.store.write() as conn:
        for username in names:
            for rank in range(1, tags):  # earlier years' arrears, paid after the current year
                year = 2026 - rank
                demo_data.add_fees(conn, username, f"{year}-{year + 1}学年", rank)
    backend.store.close()
    serve(replace(config, workers=workers), announce=lambda line: print(line, flush=True))


@contextlib.contextmanager
def postgres_server(folder: Path) -> Iterator[Any]:
    """A PostgreSQL 16 of this run's own (``pgserver``) in ``folder``, removed at the end."""
    runtime = folder / "run"  # pgserver's lock file and sockets: not a shared /tmp folder
    runtime.mkdir(mode=0o700, parents=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # read when pgserver is imported
    import pgserver

    server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


def raise_fd_limit(need: int) -> str:
    """Raise the soft ``ulimit -n`` to ``need`` if the hard limit allows (the child inherits)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    note = f"ulimit -n {soft} (need about {need})"
    return note if soft >= need else note + ": TOO LOW, expect connection errors"


TICK = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(root: int) -> tuple[float, set[int]] | None:
    """CPU seconds (utime + stime, with those of reaped children) of ``root`` and every
    process under it, from /proc, and their ids; None when ``root`` is gone."""
    parent, cpu = {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                pid = int(entry.name)
                parent[pid] = int(stat[1])
                cpu[pid] = sum(int(v) for v in stat[11:15]) / TICK  # u, s, cu, cs time
    if root not in cpu:
        return None
    children = defaultdict(list)
    for pid, ppid in parent.items():
        children[ppid].append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children[pid]
    return sum(cpu[pid] for pid in tree), tree


@dataclass
class CpuSample:
    wall: float
    gen: float
    backend: float | None
    db: float | None
    machine: float


class CpuMeter:
    """CPU seconds of this process, of the backend's process tree, of the database
    server's (PostgreSQL: the postmaster and its children) and of the whole machine."""

    def __init__(self, backend_pid: int, db_pid: int | None = None) -> None:
        self.backend_pid = backend_pid
        self.db_pid = db_pid
        self.backend_pids: set[int] = set()
        """Every process seen in the backend's tree: a worker restarted shows here."""

    def sample(self) -> CpuSample:
        backend = process_tree_cpu(self.backend_pid)
        if backend is not None:
            self.backend_pids |= backend[1]
        db = process_tree_cpu(self.db_pid) if self.db_pid else None
        jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        return CpuSample(
            wall=time.perf_counter(),
            gen=time.process_time(),
            backend=backend[0] if backend else None,
            db=db[0] if db else None,
            machine=(sum(jiffies) - jiffies[3] - jiffies[4]) / TICK,  # all but idle, iowait
        )

    @staticmethod
    def used(before: CpuSample, after: CpuSample) -> dict[str, float | None]:
        """CPU seconds each used between two samples (``other``: the rest of the machine)."""

        def delta(name: str) -> float | None:
            first, last = getattr(before, name), getattr(after, name)
            return None if first is None or last is None else last - first

        parts = {name: delta(name) for name in ("backend", "db", "gen", "machine")}
        machine = parts.pop("machine")
        known = [v for v in parts.values() if v is not None]
        parts["other"] = None if parts["backend"] is None else max(0.0, machine - sum(known))
        return parts


# ---------------------------------------------------------------------------- recording
@dataclass
class Level:
    """What one level of the ramp measured."""

    payers: int
    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    cycles: Counter = field(default_factory=Counter)
    lag: list[float] = field(default_factory=list)
    kiosks_polling: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cpu: dict[str, float | None] = field(default_factory=dict)
    """CPU seconds in the window: backend, db (PostgreSQL's server), gen, other."""


class Recorder:
    """Times every call into the level that is current when the call starts."""

    def __init__(self) -> None:
        self.level: Level | None = None
        self.outside = Counter()
        """Errors outside a level's window (ramp-in, drain, teardown): they count too."""
        self.kiosks_polling = 0
        self.paid_seen = 0

    def error(self, level: Level | None, what: str) -> None:
        (level.errors if level else self.outside)[what] += 1

    async def call(
        self,
        http: httpx.AsyncClient,
        name: str,
        method: str,
        url: str,
        *,
        expect: int = 200,
        **kwargs,
    ) -> tuple[Level | None, httpx.Response | None]:
        """One timed request; a transport error or another status than ``expect`` is an error."""
        level = self.level
        start = time.perf_counter()
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.error(level, f"{name}: {type(exc).__name__}")
            return level, None
        if level is not None:
            level.timings[name].append(time.perf_counter() - start)
        if response.status_code != expect:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = response.text[:60]
            self.error(level, f"{name}: HTTP {response.status_code} {code}")
            return level, None
        return level, response

    async def monitor(self, every: float = 0.05) -> None:
        """Event-loop lag (the generator's own saturation) and kiosk polls in flight."""
        while True:
            start = time.perf_counter()
            await asyncio.sleep(every)
            level = self.level
            if level is not None:
                level.lag.append(time.perf_counter() - start - every)
                level.kiosks_polling.append(self.kiosks_polling)


# ---------------------------------------------------------------------------- clients
SSL = httpx.create_ssl_context()  # made once: each client would otherwise load the CA file
LIMITS = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
"""As the app's own client: idle connections go well before the server's keep-alive, so no
request races the server closing one (at equal 5 s defaults this benchmark met
``ReadError``/``RemoteProtocolError``)."""


def device(base: str) -> httpx.AsyncClient:
    """One kiosk or student device with its own connections (a long poll holds one)."""
    return httpx.AsyncClient(
        base_url=base, timeout=httpx.Timeout(TIMEOUT), limits=LIMITS, verify=SSL
    )


async def login(base: str, username: str, lock: asyncio.Lock) -> httpx.AsyncClient:
    """A logged-in device; the dev hook answers the *latest* captcha, hence the lock."""
    http = device(base)
    async with lock:
        (await http.post("/api/v1/captcha")).raise_for_status()
        latest = (await http.get("/sandbox/captcha/latest")).json()
    response = await http.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": PASSWORD,
            "captcha_id": latest["captcha_id"],
            "captcha_answer": latest["answer"],
        },
    )
    if response.status_code != 200:
        await http.aclose()
        raise RuntimeError(f"setup: login {username}: {response.status_code} {response.text}")
    http.headers["Authorization"] = f"Bearer {response.json()['token']}"
    return http


async def login_all(base: str, usernames: list[str], lock: asyncio.Lock) -> list:
    gate = asyncio.Semaphore(8)  # scrypt runs in the backend's threads: a few at a time

    async def one(username: str) -> httpx.AsyncClient:
        async with gate:
            return await login(base, username, lock)

    return list(await asyncio.gather(*(one(u) for u in usernames)))


def unpaid_groups(fees: dict) -> list[list[str]]:
    """Unpaid item ids per (tag, receipt type), in the order the client offers them."""
    groups = []
    for tag in fees["tags"]:
        for receipt_type in ("fiscal", "receipt"):
            ids = [
                i["id"]
                for i in tag["items"]
                if i["receipt_type"] == receipt_type and i["state"] == "unpaid"
            ]
            if ids:
                groups.append(ids)
    return groups


# ---------------------------------------------------------------------------- kiosks
async def open_kiosk(base: str, username: str, lock: asyncio.Lock) -> tuple:
    """Setup: a logged-in kiosk with an open order showing its QR."""
    http = await login(base, username, lock)
    fees = (await http.get("/api/v1/fees")).json()
    order = await http.post(
        "/api/v1/orders",
        json={"item_ids": unpaid_groups(fees)[0]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    if order.status_code != 201:
        raise RuntimeError(f"setup: kiosk order {username}: {order.status_code} {order.text}")
    order_no = order.json()["order_no"]
    qr = await http.post(f"/api/v1/orders/{order_no}/pay", json={"channel": CHANNEL})
    if qr.status_code != 200:
        raise RuntimeError(f"setup: kiosk QR {username}: {qr.status_code} {qr.text}")
    return http, order_no


async def kiosk(
    rec: Recorder, http: httpx.AsyncClient, order_no: str, wait: float, stop: asyncio.Event
) -> None:
    """Long-poll the kiosk's open order until ``stop`` (started at a random phase of the wait)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), random.uniform(0, wait))
    while not stop.is_set():
        rec.kiosks_polling += 1
        try:
            level, response = await rec.call(
                http,
                IDLE,
                "GET",
                f"/api/v1/orders/{order_no}",
                params={"wait": wait, "status": "open"},
                timeout=wait + TIMEOUT,
            )
        finally:
            rec.kiosks_polling -= 1
        if response is None:
            await asyncio.sleep(1)
            continue
        status = response.json()["status"]
        if status != "open":
            rec.error(level, f"{IDLE}: the kiosk's order became {status}")
            return


# ---------------------------------------------------------------------------- payers
@dataclass
class Payer:
    rec: Recorder
    http: httpx.AsyncClient
    stop: asyncio.Event
    think: float
    wait: float

    async def pause(self) -> None:
        if self.think and not self.stop.is_set():
            await asyncio.sleep(self.think * random.uniform(0.5, 1.5))

    async def run(self, stagger: float) -> None:
        await asyncio.sleep(random.uniform(0, stagger))
        while not self.stop.is_set():
            if not await self.cycle():
                await asyncio.sleep(max(self.think, 0.2))  # no hot loop on errors
            await self.pause()

    async def cycle(self) -> bool:
        """One order: paid through the sandbox, or cancelled on the last unpaid group."""
        rec, http = self.rec, self.http
        _, fees = await rec.call(http, FEES, "GET", "/api/v1/fees")
        if fees is None:
            return False
        groups = unpaid_groups(fees.json())
        if not groups:
            rec.error(rec.level, "payer: nothing left to pay (raise --tags)")
            return False
        await self.pause()
        _, order = await rec.call(
            http,
            CREATE,
            "POST",
            "/api/v1/orders",
            json={"item_ids": groups[0]},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            expect=201,
        )
        if order is None:
            return False
        order_no = order.json()["order_no"]
        await self.pause()
        _, qr = await rec.call(
            http, PAY, "POST", f"/api/v1/orders/{order_no}/pay", json={"channel": CHANNEL}
        )
        if qr is None:
            return False
        if len(groups) == 1:
            return await self.cancel(order_no)
        return await self.pay(order_no, qr.json()["qr_url"].rsplit("/", 1)[1])

    async def cancel(self, order_no: str) -> bool:
        await self.pause()
        level, order = await self.rec.call(
            self.http, CANCEL, "POST", f"/api/v1/orders/{order_no}/cancel"
        )
        if order is None:
            return False
        if order.json()["status"] != "closed":
            self.rec.error(level, f"{CANCEL}: order ended {order.json()['status']}")
            return False
        if level is not None:
            level.cycles["cancelled"] += 1
        return True

    async def pay(self, order_no: str, token: str) -> bool:
        """The screen long-polls while the phone pays; paid must show within ``wait``."""
        rec = self.rec
        paid_at: list[float] = []
        screen = asyncio.create_task(self.screen(order_no, paid_at))
        await self.pause()  # scanning the QR
        start = time.perf_counter()
        level, result = await rec.call(
            self.http, SANDBOX, "POST", f"/sandbox/pay/{token}", json={"outcome": "success"}
        )
        paid_at.append(time.perf_counter())
        if result is None or result.json()["trade_state"] != "SUCCESS":
            screen.cancel()
            if result is not None:
                rec.error(level, f"{SANDBOX}: {result.json()['trade_state']}")
            return False
        status, seen = await screen
        if status == "paid" and level is not None:
            level.timings[TO_PAID].append(seen - start)
        elif status == "open":
            rec.error(level, f"{TO_PAID}: still open {self.wait:g} s after the payment")
            _, order = await rec.call(self.http, QUERY, "POST", f"/api/v1/orders/{order_no}/query")
            status = order.json()["status"] if order is not None else None
        if status == "paid":
            rec.paid_seen += 1
            if level is not None:
                level.cycles["paid"] += 1
            return True
        if status is not None:
            rec.error(level, f"{TO_PAID}: order ended {status}")
        return False

    async def screen(self, order_no: str, paid_at: list[float]) -> tuple[str | None, float]:
        """The pay screen's long poll: until not open, or ``wait`` after the payment."""
        while True:
            _, response = await self.rec.call(
                self.http,
                SCREEN,
                "GET",
                f"/api/v1/orders/{order_no}",
                params={"wait": self.wait, "status": "open"},
                timeout=self.wait + TIMEOUT,
            )
            now = time.perf_counter()
            if response is None:
                return None, now
            status = response.json()["status"]
            if status != "open" or (paid_at and now - paid_at[0] >= self.wait):
                return status, now


# ---------------------------------------------------------------------------- the run
async def run_level(
    rec: Recorder,
    base: str,
    lock: asyncio.Lock,
    usernames: list[str],
    args: argparse.Namespace,
    cpu: CpuMeter,
) -> Level:
    """Log in fresh payers, ramp them in, measure ``--seconds``, let them finish their cycle."""
    clients = await login_all(base, usernames, lock)
    stop = asyncio.Event()
    stagger = max(args.think, 0.5)
    payers = [Payer(rec, http, stop, args.think, args.wait) for http in clients]
    tasks = [asyncio.create_task(p.run(stagger)) for p in payers]
    await asyncio.sleep(stagger)  # ramp-in, not measured
    level = Level(payers=len(usernames))
    before = cpu.sample()
    rec.level = level
    await asyncio.sleep(args.seconds)
    rec.level = None
    after = cpu.sample()
    level.seconds = after.wall - before.wall
    level.cpu = CpuMeter.used(before, after)
    stop.set()
    done, late = await asyncio.wait(tasks, timeout=args.wait + TIMEOUT)
    crashed(rec, "payer", done)
    for task in late:
        task.cancel()
        rec.error(None, "payer: cycle not finished after the level")
    await asyncio.gather(*(http.aclose() for http in clients))
    return level


@dataclass
class Outcome:
    """One setup's run: the levels measured, the knee, and what the database holds after."""

    setup: Setup
    measured: list[Level]
    knee: tuple[str, float] | None
    rec: Recorder
    backend_log: list[str]
    db_log: list[str]
    """The database server's complaints during the setup (PostgreSQL: ERROR, FATAL, PANIC)."""
    backend_pids: int
    """Processes seen in its tree: serve, its workers and (with workers) multiprocessing's
    resource tracker; more means a worker was started again."""
    problems: list[str]
    orders: dict[str, int]
    load: tuple[float, float]

    @property
    def errors(self) -> Counter:
        errors = Counter(self.rec.outside)
        for level in self.measured:
            errors.update(level.errors)
        return errors


async def run(args: argparse.Namespace) -> int:
    """Each setup in turn (one, or the three compared), reported; then the comparison."""
    levels = [int(n) for n in args.levels.split(",")]
    setups = COMPARED if args.compare else (Setup(args.db, args.workers),)
    fd_note = raise_fd_limit(2 * (args.kiosks + max(levels)) + 256)
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        postgres = None
        if any(setup.db == "postgresql" for setup in setups):
            progress("starting PostgreSQL (pgserver)")
            postgres = stack.enter_context(postgres_server(Path(tmp) / "postgres"))
        for number, setup in enumerate(setups, 1):
            progress(f"setup {setup.name}")
            outcome = await run_setup(args, levels, setup, Path(tmp) / str(number), postgres)
            report(args, levels, outcome, fd_note)
            outcomes.append(outcome)
    if args.compare:
        print(comparison(outcomes, levels))
    failed = any(outcome.problems or outcome.errors for outcome in outcomes)
    return 1 if failed else 0


async def run_setup(
    args: argparse.Namespace, levels: list[int], setup: Setup, folder: Path, postgres: Any
) -> Outcome:
    """Seed and start the backend on ``setup``, drive the ramp, stop it, check the database."""
    load_before = os.getloadavg()[0]
    folder.mkdir()
    on_postgres, database = setup.db == "postgresql", f"load_{folder.name}"
    if on_postgres:
        db_log_start = postgres.log.stat().st_size
        postgres.psql(f"CREATE DATABASE {database};")
        db, db_pid = postgres.get_uri(database), postgres.get_pid()
    else:
        db, db_pid = str(folder / "load.sqlite3"), None
    log_path = folder / "backend.log"
    command = [sys.executable, __file__, "--serve-child", db, "--workers", str(setup.workers)]
    command += ["--students", str(args.kiosks + sum(levels)), "--tags", str(args.tags)]
    keys = {name: secrets.token_hex(32) for name in KEY_ENV}
    with log_path.open("w") as log:
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **keys, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its workers in its process group, stopped with it
        )
    cpu = CpuMeter(child.pid, db_pid)
    try:
        line = child.stdout.readline()
        if " listening on " not in line:
            raise RuntimeError(f"backend did not start: {log_path.read_text()[-2000:]}")
        base = line.split(" listening on ", 1)[1].split()[0]
        measured, knee, rec = await drive(base, levels, args, cpu)
    finally:
        stop_backend(child)
    problems, orders = check_invariants(db)
    if on_postgres:  # its autovacuum not in the next setup's figures
        postgres.psql(f"DROP DATABASE {database};")
    return Outcome(
        setup=setup,
        measured=measured,
        knee=knee,
        rec=rec,
        backend_log=log_path.read_text().splitlines(),
        db_log=db_complaints(postgres.log, db_log_start) if on_postgres else [],
        backend_pids=len(cpu.backend_pids),
        problems=problems,
        orders=orders,
        load=(load_before, os.getloadavg()[0]),
    )


def db_complaints(log: Path, start: int) -> list[str]:
    """The lines of PostgreSQL's log past ``start`` that report an error."""
    with log.open("rb") as file:
        file.seek(start)
        lines = file.read().decode(errors="replace").splitlines()
    Path("/tmp/pg-full.log").write_text("\n".join(lines))
    return [line for line in lines if re.search(r"\b(ERROR|FATAL|PANIC):", line)]


def stop_backend(child: subprocess.Popen) -> None:
    """SIGTERM the backend, then SIGKILL what is left of its process group (workers):
    once it has ended, before it is reaped, so the group is still its own."""
    child.terminate()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


async def drive(base: str, levels: list[int], args: argparse.Namespace, cpu: CpuMeter):
    """Kiosks up, then the ramp; returns the levels run, the knee and the recorder."""
    rec = Recorder()
    lock = asyncio.Lock()
    names = [f"9{n:09d}" for n in range(args.kiosks + sum(levels))]
    started = time.perf_counter()
    gate = asyncio.Semaphore(8)

    async def one(username: str) -> tuple:
        async with gate:
            return await open_kiosk(base, username, lock)

    opened = await asyncio.gather(*(one(u) for u in names[: args.kiosks]))
    progress(f"{args.kiosks} kiosks logged in with a QR in {time.perf_counter() - started:.1f} s")
    monitor = asyncio.create_task(rec.monitor())
    stop = asyncio.Event()
    kiosks = [asyncio.create_task(kiosk(rec, http, no, args.wait, stop)) for http, no in opened]
    await asyncio.sleep(args.wait)  # every kiosk is polling, at phases spread over the wait
    measured: list[Level] = []
    knee = None
    offset = args.kiosks
    for payers in levels:
        started = time.perf_counter()
        level = await run_level(rec, base, lock, names[offset : offset + payers], args, cpu)
        offset += payers
        measured.append(level)
        worst = worst_p99(level)
        progress(
            f"level {payers} payers: worst p99 {worst[1] * 1000:.0f} ms ({worst[0]}),"
            f" errors {dict(level.errors) or 0}, {time.perf_counter() - started:.0f} s"
        )
        if worst[1] > KNEE_SECONDS:
            knee = worst
            break
    stop.set()  # the polls in flight answer (and count) before the kiosks go
    done, late = await asyncio.wait(kiosks, timeout=args.wait + TIMEOUT)
    crashed(rec, "kiosk", done)
    for task in (*late, monitor):
        task.cancel()
    await asyncio.gather(*late, monitor, return_exceptions=True)

    async def close_kiosk(http: httpx.AsyncClient, order_no: str) -> None:
        response = await http.post(f"/api/v1/orders/{order_no}/cancel")
        if response.status_code != 200 or response.json()["status"] != "closed":
            rec.error(None, f"teardown: kiosk cancel {response.status_code}")
        await http.aclose()

    await asyncio.gather(*(close_kiosk(http, no) for http, no in opened))
    return measured, knee, rec


def crashed(rec: Recorder, who: str, done: set[asyncio.Task]) -> None:
    """A task that died of an exception (a body not as expected) is an error too."""
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            rec.error(None, f"{who} crashed: {exc!r}"[:200])


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- figures
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def total_requests(level: Level) -> int:
    return sum(len(v) for name, v in level.timings.items() if name not in DERIVED)


def worst_p99(level: Level) -> tuple[str, float]:
    """The call (long polls excepted) with the highest p99."""
    candidates = [
        (name, pct(values, 0.99))
        for name, values in level.timings.items()
        if name not in NOT_KNEE and values
    ]
    return max(candidates, key=lambda c: c[1], default=("none", 0.0))


def cell(values: list[float], minus: float = 0.0) -> str:
    if not values:
        return "–"
    return f"{(pct(values, 0.5) - minus) * 1000:.0f} / {(pct(values, 0.99) - minus) * 1000:.0f}"


def share(level: Level, part: str) -> str:
    """``part``'s CPU in the level as % of one core; – when not measured apart."""
    used = level.cpu.get(part)
    return "–" if used is None else f"{used / level.seconds * 100:.0f}"


def per_paid(level: Level, part: str) -> float | None:
    """``part``'s CPU milliseconds per order paid in the level."""
    used, paid = level.cpu.get(part), level.cycles["paid"]
    return None if used is None or not paid else used / paid * 1000


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def cpu_cells(level: Level) -> list[str]:
    """CPU shares (backend / db / gen / other) and backend (+ db) ms per paid order."""
    parts = ("backend", "db", "gen", "other")
    backend, db = per_paid(level, "backend"), per_paid(level, "db")
    return [
        " / ".join(share(level, part) for part in parts),
        ms(backend) if db is None else f"{ms(backend)} + {ms(db)}",
    ]


def paid_rate(level: Level) -> str:
    return f"{level.cycles['paid'] / level.seconds:.1f}"


def p99(level: Level, name: str) -> str:
    values = level.timings.get(name)
    return f"{pct(values, 0.99) * 1000:.0f}" if values else "–"


def lag(level: Level) -> str:
    return f"{pct(level.lag, 0.99) * 1000:.0f}" if level.lag else "–"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


SHORT = {
    FEES: "fees",
    CREATE: "create",
    PAY: "QR",
    SANDBOX: "phone pays",
    TO_PAID: "pay → screen",
    CANCEL: "cancel",
}
CPU_HEAD = ["CPU % backend / db / gen / other", "CPU ms per paid: backend (+ db)"]
LEGEND = (
    "Latencies in ms, p50 / p99. fees: GET /fees; create: POST /orders; QR: POST"
    " /orders/{no}/pay; phone pays: POST /sandbox/pay/{token} (the sandbox gateway, in the"
    " backend, sends its notify before answering); pay → screen: from that POST to"
    " the payer's long poll answering paid; cancel: POST /orders/{no}/cancel (payers on their"
    " last unpaid group); kiosk over wait: how far past the wait the kiosks' long polls answer;"
    " held: the fewest kiosk polls in flight at any 50 ms sample; CPU %: of one core, used by"
    " the backend (its serve process and every worker under it), the database server"
    " (PostgreSQL's processes; – on SQLite, whose work is inside the backend), this generator"
    " and the rest of the machine; CPU ms per paid: the backend's (and the database server's)"
    " CPU in the level over the orders paid in it, every other request included; lag: p99 of"
    " this generator's event-loop delay (its own load plus the machine's)."
)


def shown_calls(levels: list[Level]) -> list[str]:
    cancels = any(level.cycles["cancelled"] for level in levels)
    return [FEES, CREATE, PAY, SANDBOX, TO_PAID] + ([CANCEL] if cancels else [])


def summary(levels: list[Level], wait: float) -> str:
    shown = shown_calls(levels)
    head = ["payers", "req/s", "paid/s"] + [SHORT[name] for name in shown]
    head += ["kiosk over wait", "held", "errors", *CPU_HEAD, "lag ms"]
    rows = [
        [str(level.payers), f"{total_requests(level) / level.seconds:.0f}"]
        + [paid_rate(level)]
        + [cell(level.timings.get(name, [])) for name in shown]
        + [cell(level.timings.get(IDLE, []), minus=wait)]
        + [str(min(level.kiosks_polling, default=0)), str(sum(level.errors.values()))]
        + cpu_cells(level)
        + [lag(level)]
        for level in levels
    ]
    return table(head, rows)


def detail(levels: list[Level]) -> str:
    rows = [
        "| payers | call | n | req/s | p50 ms | p99 ms | max ms | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        failed = Counter()
        for what, n in level.errors.items():
            failed[what.split(": ", 1)[0]] += n
        for name in CALLS:
            values = level.timings.get(name, [])
            if not values and not failed[name]:
                continue
            rate = "" if name in DERIVED else f"{len(values) / level.seconds:.1f}"
            figures = (
                [f"{pct(values, q) * 1000:.0f}" for q in (0.5, 0.99, 1.0)] if values else ["–"] * 3
            )
            rows.append(
                f"| {level.payers} | {name} | {len(values)} | {rate} | "
                + " | ".join(figures)
                + f" | {failed[name]} |"
            )
    return "\n".join(rows)


def knee_text(measured: list[Level], knee: tuple[str, float] | None) -> str:
    """Where the knee is, in words: between two levels, at or below the first, or none."""
    if knee is None:
        return f"none up to {measured[-1].payers}"
    if len(measured) == 1:
        return f"at or below {measured[0].payers}"
    return f"between {measured[-2].payers} and {measured[-1].payers}"


BACKENDS = {"sqlite": "a SQLite file", "postgresql": "PostgreSQL 16 (pgserver)"}


def first_lines(what: str, lines: list[str]) -> str:
    return f"{what}: {len(lines)} lines" + (
        " (first: " + " | ".join(lines[:3]) + ")" if lines else ""
    )


def report(args: argparse.Namespace, levels: list[int], outcome: Outcome, fd_note: str) -> None:
    """One setup's tables, knee, errors, orders and invariants."""
    setup, measured, knee = outcome.setup, outcome.measured, outcome.knee
    workers = "1 process" if setup.workers == 1 else f"{setup.workers} workers"
    print(f"## {setup.name}: the backend on {BACKENDS[setup.db]}, {workers}")
    print()
    print(
        f"{args.kiosks} kiosks long-polling (wait={args.wait:g} s) + payers ramped"
        f" {args.levels} ({args.seconds:g} s per level, think {args.think:g} s,"
        f" {args.tags} school years owed each); {platform.machine()} {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, backend in processes of its own"
        f" ({outcome.backend_pids} seen), load generator in one asyncio process; {fd_note};"
        f" load average {outcome.load[0]:.2f} before, {outcome.load[1]:.2f} after"
    )
    print()
    print(summary(measured, args.wait))
    print()
    print(textwrap.fill(LEGEND, 100))
    print()
    if knee is None:
        worst = max((worst_p99(level) for level in measured), key=lambda w: w[1])
        because = f"worst p99: {worst[0]} {worst[1] * 1000:.0f} ms"
    else:
        because = f"p99 of {knee[0]} passed 1 s: {knee[1] * 1000:.0f} ms"
    print(f"knee: {knee_text(measured, knee)} concurrent payers ({because})")
    if len(measured) < len(levels):
        print(f"levels not run (past the knee): {', '.join(map(str, levels[len(measured) :]))}")
    print()
    print(detail(measured))
    print()
    errors, rec, orders = outcome.errors, outcome.rec, outcome.orders
    print(
        f"errors: {sum(errors.values())}"
        + ("" if not errors else " (" + "; ".join(f"{w} ×{n}" for w, n in errors.items()) + ")")
    )
    print(
        f"orders: {orders['paid']} paid (payers saw {rec.paid_seen}), {orders['closed']} closed,"
        f" {orders['unfinished']} unfinished; discrepancies recorded: {orders['discrepancies']}"
    )
    print(first_lines("backend stderr", [line for line in outcome.backend_log if line.strip()]))
    if outcome.setup.db == "postgresql":
        print(first_lines("database server log, errors", outcome.db_log))
    print(
        "invariants: "
        + ("hold" if not outcome.problems else "BROKEN: " + "; ".join(outcome.problems))
    )
    print()


def comparison(outcomes: list[Outcome], levels: list[int]) -> str:
    """The setups side by side: knee and paid/s per level, then CPU and p99 per call at
    the highest level every setup ran."""
    common = min(len(outcome.measured) for outcome in outcomes) - 1
    at = levels[common]
    shown = shown_calls([outcome.measured[common] for outcome in outcomes])
    rows, calls = [], []
    for outcome in outcomes:
        rates = [paid_rate(level) for level in outcome.measured]
        rates += ["–"] * (len(levels) - len(rates))
        level, name = outcome.measured[common], outcome.setup.name
        knee = knee_text(outcome.measured, outcome.knee)
        errors = str(sum(outcome.errors.values()))
        rows.append([name, knee, " / ".join(rates), *cpu_cells(level), lag(level), errors])
        worst = worst_p99(level)[0]
        calls.append([name, *(p99(level, call) for call in shown), SHORT.get(worst, worst)])
    head = ["setup", "knee (payers)", "paid/s at " + " / ".join(map(str, levels))]
    head += [f"{name} at {at} payers" for name in CPU_HEAD] + [f"gen lag ms at {at}", "errors"]
    broken = [outcome.setup.name for outcome in outcomes if outcome.problems]
    return "\n\n".join(
        [
            "## comparison",
            table(head, rows),
            f"p99 per call in ms at {at} payers, the highest level all setups ran:",
            table(["setup", *(SHORT[call] for call in shown), "worst"], calls),
            "invariants: "
            + (f"BROKEN in {', '.join(broken)}" if broken else "hold in every setup"),
        ]
    )


# ---------------------------------------------------------------------------- invariants
ALWAYS = {
    "items overpaid": "SELECT id FROM fee_items WHERE amount_paid > amount_due",
    "items in two paid orders": "SELECT oi.item_id FROM order_items oi JOIN orders o"
    " USING(order_no) WHERE o.status='paid' GROUP BY oi.item_id HAVING COUNT(*) > 1",
    "items whose paid amount is not their one paid order's": "SELECT f.id FROM fee_items f"
    " JOIN order_items oi ON oi.item_id=f.id JOIN orders o ON o.order_no=oi.order_no"
    " WHERE o.status='paid' GROUP BY f.id HAVING SUM(oi.amount) <> MAX(f.amount_paid)"
    " OR MAX(f.amount_paid) <> MAX(f.amount_due)",
    "items in two unfinished orders": "SELECT oi.item_id FROM order_items oi JOIN orders o"
    " USING(order_no) WHERE o.status IN ('open', 'awaiting_confirmation')"
    " GROUP BY oi.item_id HAVING COUNT(*) > 1",
    "item locks not held by an unfinished order": "SELECT l.item_id FROM item_locks l"
    " LEFT JOIN orders o USING(order_no)"
    " WHERE o.status IS NULL OR o.status NOT IN ('open', 'awaiting_confirmation')",
    "items of unfinished orders not locked by them": "SELECT oi.item_id FROM order_items oi"
    " JOIN orders o USING(order_no) LEFT JOIN item_locks l ON l.item_id=oi.item_id"
    " WHERE o.status IN ('open', 'awaiting_confirmation')"
    " AND (l.order_no IS NULL OR l.order_no <> o.order_no)",
    "closed orders with a gateway trade not closed": "SELECT o.order_no FROM orders o"
    " JOIN gw_trades t USING(order_no) WHERE o.status='closed' AND t.state <> 'CLOSED'",
    "gateway payments not recorded on their order": "SELECT t.trade_no FROM gw_trades t"
    " JOIN orders o USING(order_no) WHERE t.state='SUCCESS' AND (o.status <> 'paid'"
    " OR o.transaction_id IS DISTINCT FROM t.transaction_id)",
    "gateway payments still in progress": "SELECT trade_no FROM gw_trades WHERE state='PAYING'",
}


def check_invariants(db: str) -> tuple[list[str], dict[str, int]]:
    """The store's invariants after the run, and the orders by outcome (SQLite or PostgreSQL)."""
    from sqlalchemy import create_engine

    from epay_tui.server.store.engine import database_url

    engine = create_engine(database_url(db))
    with engine.connect() as conn:

        def rows(sql: str) -> list:
            return conn.exec_driver_sql(sql).fetchall()

        problems = [f"{len(found)} {name}" for name, sql in ALWAYS.items() if (found := rows(sql))]
        paid = {r[0] for r in rows("SELECT order_no FROM orders WHERE status='paid'")}
        sent = defaultdict(set)
        for channel, body in rows("SELECT channel, body FROM outbox"):
            if match := re.search(r"订单号 (\d+)", body):
                sent[match[1]].add(channel)
        count = dict(rows("SELECT status, COUNT(*) FROM orders GROUP BY status"))
        discrepancies = rows("SELECT COUNT(*) FROM discrepancies")[0][0]
    engine.dispose()
    unreceipted = [no for no in paid if sent[no] != {"sms", "email"}]
    if unreceipted:
        problems.append(f"{len(unreceipted)} paid orders without an SMS and an e-mail receipt")
    orders = {
        "paid": len(paid),
        "closed": count.get("closed", 0),
        "unfinished": count.get("open", 0) + count.get("awaiting_confirmation", 0),
        "discrepancies": discrepancies,
    }
    return problems, orders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=200, help="long-polling kiosks (200)")
    parser.add_argument(
        "--levels", default=",".join(map(str, LEVELS)), help="concurrent payers per level"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--wait", type=float, default=10.0, help="long-poll wait, at most 25")
    parser.add_argument("--think", type=float, default=1.0, help="a payer's pause between steps")
    parser.add_argument("--tags", type=int, default=4, help="school years of fees per student")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql"), help="the backend's database (sqlite)"
    )
    parser.add_argument("--workers", type=int, help="backend processes, above 1 on postgresql")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run sqlite×1, postgresql×1 and postgresql×2 in turn and compare them",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 20 kiosks, levels 5,10, 3 s, wait 2"
    )
    parser.add_argument("--serve-child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--students", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.students, args.tags, args.workers)
        return 0
    if args.compare and (args.db or args.workers):
        parser.error("--compare runs every setup: no --db or --workers with it")
    args.db, args.workers = args.db or "sqlite", 1 if args.workers is None else args.workers
    if args.workers < 1 or (args.workers > 1 and args.db != "postgresql"):
        parser.error("--workers above 1 needs --db postgresql (SQLite is served by one process)")
    if args.quick:
        args.kiosks, args.levels, args.seconds, args.wait = 20, "5,10", 3.0, 2.0
    if not 0 < args.wait <= 25:
        parser.error("--wait must be in (0, 25]")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
