"""A fleet of kiosks and a ramp of paying students against one backend: find the knee.

Setup (not measured): the backend starts in its own process (SQLite in a temporary
directory, payment hours 00:00-24:00, dev hooks on) with the demo college plus load
students, each owing ``--tags`` school years of the demo fees. Every kiosk logs in
(captchas read from ``/sandbox/captcha/latest`` under a lock), opens an order for its
fiscal fees and asks for the QR; from then on it long-polls that order
(``GET /orders/{no}?wait=--wait&status=open``) until the end of the run, so the kiosks
hold their connections through every level.

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
req/s, p50/p99 per call, errors, and the CPU share of the backend, of this generator
and of the rest of the machine, with the generator's event-loop lag: a generator near
100% of a core, or with a lag of the order of the latencies, measures itself.

    python benchmarks/load.py [--kiosks 200] [--levels 25,50,100,150,200,300,400,600,800]
        [--seconds 20] [--wait 10] [--think 1] [--quick]
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
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

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
def serve_child(db: str, students: int, tags: int) -> None:
    """Child process: the backend with demo data plus load students owing ``tags`` years."""
    from epay_tui.api.rules import parse_payment_hours
    from epay_tui.server import demo_data
    from epay_tui.server.backend import Backend
    from epay_tui.server.config import ServerConfig
    from epay_tui.server.runner import serve

    config = ServerConfig(
        db_path=db,
        demo_data=True,
        dev_hooks=True,
        port=0,
        order_ttl_seconds=6 * 3600,  # kiosk orders outlive any run (still capped at 24:00)
        payment_hours=parse_payment_hours("00:00-24:00"),
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
    serve(config, announce=lambda line: print(line, flush=True))


def raise_fd_limit(need: int) -> str:
    """Raise the soft ``ulimit -n`` to ``need`` if the hard limit allows (the child inherits)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    note = f"ulimit -n {soft} (need about {need})"
    return note if soft >= need else note + ": TOO LOW, expect connection errors"


class CpuMeter:
    """CPU seconds of this process, of the backend process and of the whole machine."""

    def __init__(self, backend_pid: int) -> None:
        self.pid = backend_pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> tuple[float, float, float | None, float | None]:
        backend = machine = None
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            backend = (int(stat[11]) + int(stat[12])) / self.tick  # utime + stime
            jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
            machine = (sum(jiffies) - jiffies[3] - jiffies[4]) / self.tick  # all but idle
        return time.perf_counter(), time.process_time(), backend, machine

    @staticmethod
    def shares(before: tuple, after: tuple) -> dict[str, float | None]:
        """Percent of one core each used between two samples (``other``: the rest of the box)."""
        wall = after[0] - before[0]
        gen = (after[1] - before[1]) / wall * 100
        if before[2] is None or after[2] is None:
            return {"backend": None, "gen": gen, "other": None}
        backend = (after[2] - before[2]) / wall * 100
        other = max(0.0, (after[3] - before[3]) / wall * 100 - backend - gen)
        return {"backend": backend, "gen": gen, "other": other}


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
    level.seconds = after[0] - before[0]
    level.cpu = CpuMeter.shares(before, after)
    stop.set()
    done, late = await asyncio.wait(tasks, timeout=args.wait + TIMEOUT)
    crashed(rec, "payer", done)
    for task in late:
        task.cancel()
        rec.error(None, "payer: cycle not finished after the level")
    await asyncio.gather(*(http.aclose() for http in clients))
    return level


async def run(args: argparse.Namespace) -> int:
    levels = [int(n) for n in args.levels.split(",")]
    students = args.kiosks + sum(levels)
    fd_note = raise_fd_limit(2 * (args.kiosks + max(levels)) + 256)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "load.sqlite3")
        log_path = Path(tmp) / "backend.log"
        command = [sys.executable, __file__, "--serve-child", db, "--students", str(students)]
        command += ["--tags", str(args.tags)]
        with log_path.open("w") as log:
            child = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            line = child.stdout.readline()
            if " listening on " not in line:
                raise RuntimeError(f"backend did not start: {log_path.read_text()[-2000:]}")
            base = line.split(" listening on ", 1)[1].split()[0]
            measured, knee, other = await drive(base, levels, args, CpuMeter(child.pid))
        finally:
            child.terminate()
            child.wait(timeout=10)
        backend_log = log_path.read_text().splitlines()
        problems, orders = check_invariants(db)
    report(args, levels, measured, knee, other, backend_log, problems, orders, fd_note)
    errors = sum(sum(level.errors.values()) for level in measured) + sum(other.outside.values())
    return 1 if problems or errors else 0


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


def percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


SHORT = {
    FEES: "fees",
    CREATE: "create",
    PAY: "QR",
    SANDBOX: "phone pays",
    TO_PAID: "pay → screen",
    CANCEL: "cancel",
}
LEGEND = (
    "Latencies in ms, p50 / p99. fees: GET /fees; create: POST /orders; QR: POST"
    " /orders/{no}/pay; phone pays: POST /sandbox/pay/{token} (the sandbox gateway, in the"
    " backend's process, sends its notify before answering); pay → screen: from that POST to"
    " the payer's long poll answering paid; cancel: POST /orders/{no}/cancel (payers on their"
    " last unpaid group); kiosk over wait: how far past the wait the kiosks' long polls answer;"
    " held: the fewest kiosk polls in flight at any 50 ms sample; CPU: % of one core used by the"
    " backend process, this generator and the rest of the machine; lag: p99 of this"
    " generator's event-loop delay (its own load plus the machine's)."
)


def summary(levels: list[Level], wait: float) -> str:
    cancels = any(level.cycles["cancelled"] for level in levels)
    shown = [FEES, CREATE, PAY, SANDBOX, TO_PAID] + ([CANCEL] if cancels else [])
    head = (
        ["payers", "req/s", "paid/s"]
        + [SHORT[name] for name in shown]
        + ["kiosk over wait", "held", "errors", "CPU backend / gen / other", "lag ms"]
    )
    rows = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for level in levels:
        cpu = level.cpu
        row = (
            [str(level.payers), f"{total_requests(level) / level.seconds:.0f}"]
            + [f"{level.cycles['paid'] / level.seconds:.1f}"]
            + [cell(level.timings.get(name, [])) for name in shown]
            + [cell(level.timings.get(IDLE, []), minus=wait)]
            + [str(min(level.kiosks_polling, default=0)), str(sum(level.errors.values()))]
            + [f"{percent(cpu['backend'])} / {percent(cpu['gen'])} / {percent(cpu['other'])}"]
            + [f"{pct(level.lag, 0.99) * 1000:.0f}" if level.lag else "–"]
        )
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


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


def report(args, levels, measured, knee, rec, backend_log, problems, orders, fd_note) -> None:
    print(
        f"{args.kiosks} kiosks long-polling (wait={args.wait:g} s) + payers ramped"
        f" {args.levels} ({args.seconds:g} s per level, think {args.think:g} s,"
        f" {args.tags} school years owed each); {platform.machine()} {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, backend in its own process, load generator"
        f" in one asyncio process; {fd_note}; load average {args.load_before:.2f} before,"
        f" {os.getloadavg()[0]:.2f} after"
    )
    print()
    print(summary(measured, args.wait))
    print()
    print(textwrap.fill(LEGEND, 100))
    print()
    if knee is None:
        worst = max((worst_p99(level) for level in measured), key=lambda w: w[1])
        print(
            f"no knee up to {measured[-1].payers} concurrent payers"
            f" (worst p99: {worst[0]} {worst[1] * 1000:.0f} ms)"
        )
    elif len(measured) == 1:
        print(
            f"knee: at or below {measured[0].payers} concurrent payers"
            f" (p99 of {knee[0]} passed 1 s: {knee[1] * 1000:.0f} ms)"
        )
    else:
        print(
            f"knee: between {measured[-2].payers} and {measured[-1].payers} concurrent payers"
            f" (p99 of {knee[0]} passed 1 s: {knee[1] * 1000:.0f} ms)"
        )
    if len(measured) < len(levels):
        print(f"levels not run (past the knee): {', '.join(map(str, levels[len(measured) :]))}")
    print()
    print(detail(measured))
    print()
    errors = Counter()
    for level in measured:
        errors.update(level.errors)
    errors.update(rec.outside)
    print(
        f"errors: {sum(errors.values())}"
        + ("" if not errors else " (" + "; ".join(f"{w} ×{n}" for w, n in errors.items()) + ")")
    )
    print(
        f"orders: {orders['paid']} paid (payers saw {rec.paid_seen}), {orders['closed']} closed,"
        f" {orders['unfinished']} unfinished; discrepancies recorded: {orders['discrepancies']}"
    )
    noise = [line for line in backend_log if line.strip()]
    print(
        f"backend stderr: {len(noise)} lines"
        + ("" if not noise else " (first: " + " | ".join(noise[:3]) + ")")
    )
    print("invariants: " + ("hold" if not problems else "BROKEN: " + "; ".join(problems)))


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
    " OR o.transaction_id IS NOT t.transaction_id)",
    "gateway payments still in progress": "SELECT trade_no FROM gw_trades WHERE state='PAYING'",
}


def check_invariants(db: str) -> tuple[list[str], dict[str, int]]:
    """The store's invariants after the run, and the orders by outcome."""
    conn = sqlite3.connect(db)
    problems = [
        f"{len(found)} {name}"
        for name, sql in ALWAYS.items()
        if (found := conn.execute(sql).fetchall())
    ]
    paid = {r[0] for r in conn.execute("SELECT order_no FROM orders WHERE status='paid'")}
    sent = defaultdict(set)
    for channel, body in conn.execute("SELECT channel, body FROM outbox"):
        if match := re.search(r"订单号 (\d+)", body):
            sent[match[1]].add(channel)
    unreceipted = [no for no in paid if sent[no] != {"sms", "email"}]
    if unreceipted:
        problems.append(f"{len(unreceipted)} paid orders without an SMS and an e-mail receipt")
    count = dict(conn.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall())
    orders = {
        "paid": len(paid),
        "closed": count.get("closed", 0),
        "unfinished": count.get("open", 0) + count.get("awaiting_confirmation", 0),
        "discrepancies": conn.execute("SELECT COUNT(*) FROM discrepancies").fetchone()[0],
    }
    conn.close()
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
        "--quick", action="store_true", help="smoke run: 20 kiosks, levels 5,10, 3 s, wait 2"
    )
    parser.add_argument("--serve-child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--students", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.students, args.tags)
        return 0
    if args.quick:
        args.kiosks, args.levels, args.seconds, args.wait = 20, "5,10", 3.0, 2.0
    if not 0 < args.wait <= 25:
        parser.error("--wait must be in (0, 25]")
    args.load_before = os.getloadavg()[0]
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
