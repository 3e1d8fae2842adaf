"""Backend throughput and latency with N concurrent simulated students.

Each student logs in, then for each receipt group creates an order, asks for the
QR, pays it in the sandbox and long-polls until the order is paid. A trivial
endpoint (``/healthz``) is first hammered by as many clients as there are students, in
a phase of its own against the same backend process, so the figure that matters is
each call's latency *relative* to it. The invariant
check at the end reads the database: no item paid twice, every gateway payment on
its order.

    python benchmarks/server.py [--students 50] [--trivial-requests 2000]

The backend runs in its own process (as in production), on a loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

PASSWORD = "Bench2026pass"
Timings = dict[str, list[float]]


def serve_child(db: str, students: int) -> None:
    """Child process: the backend with demo data plus benchmark students."""
    from epay_tui.api.rules import parse_payment_hours
    from epay_tui.server import demo_data
    from epay_tui.server.config import ServerConfig
    from epay_tui.server.runner import serve

    config = ServerConfig(
        db_path=db,
        demo_data=True,
        dev_hooks=True,
        port=0,
        payment_hours=parse_payment_hours("00:00-24:00"),
    )
    from epay_tui.server.backend import Backend

    backend = Backend(config)
    demo_data.seed(backend)
    demo_data.add_load_students(backend, students, PASSWORD)
    backend.store.close()
    serve(config, announce=lambda line: print(line, flush=True))


async def timed(timings: Timings, name: str, call):
    start = time.perf_counter()
    response = await call
    timings[name].append(time.perf_counter() - start)
    if response.status_code >= 500:
        raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
    return response


CAPTCHA_LOCK = asyncio.Lock()
"""The dev hook answers the *latest* captcha: fetch and read it as one step."""


async def student(base: str, username: str, timings: Timings, errors: list[str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        async with CAPTCHA_LOCK:
            await timed(timings, "POST /captcha", http.post("/api/v1/captcha"))
            latest = (await http.get("/sandbox/captcha/latest")).json()
        r = await timed(
            timings,
            "POST /auth/login",
            http.post(
                "/api/v1/auth/login",
                json={
                    "username": username,
                    "password": PASSWORD,
                    "captcha_id": latest["captcha_id"],
                    "captcha_answer": latest["answer"],
                },
            ),
        )
        if r.status_code != 200:
            errors.append(f"login {username}: {r.status_code}")
            return
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        fees = (await timed(timings, "GET /fees", http.get("/api/v1/fees"))).json()
        items = fees["tags"][0]["items"]
        for receipt_type in ("fiscal", "receipt"):
            ids = [i["id"] for i in items if i["receipt_type"] == receipt_type]
            r = await timed(
                timings,
                "POST /orders",
                http.post(
                    "/api/v1/orders",
                    json={"item_ids": ids},
                    headers={"Idempotency-Key": f"{username}-{receipt_type}"},
                ),
            )
            if r.status_code != 201:
                errors.append(f"order {username}: {r.status_code} {r.text[:120]}")
                continue
            order_no = r.json()["order_no"]
            qr = (
                await timed(
                    timings,
                    "POST /orders/{no}/pay",
                    http.post(f"/api/v1/orders/{order_no}/pay", json={"channel": "wechat"}),
                )
            ).json()
            token = qr["qr_url"].rsplit("/", 1)[1]
            poll = asyncio.create_task(
                timed(
                    timings,
                    "GET /orders/{no}?wait (to paid)",
                    http.get(f"/api/v1/orders/{order_no}", params={"wait": 25, "status": "open"}),
                )
            )
            await timed(
                timings,
                "POST /sandbox/pay/{token}",
                http.post(f"/sandbox/pay/{token}", json={"outcome": "success"}),
            )
            status = (await poll).json()["status"]
            if status != "paid":
                errors.append(f"order {order_no} ended {status}")
        await timed(timings, "GET /orders", http.get("/api/v1/orders"))


async def trivial(base: str, clients: int, requests: int, timings: Timings) -> None:
    async def one(count: int) -> None:
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(count):
                await timed(timings, "GET /healthz (trivial)", http.get("/healthz"))

    await asyncio.gather(*(one(requests // clients) for _ in range(clients)))


def check_invariants(db: str) -> list[str]:
    conn = sqlite3.connect(db)
    problems = []
    over = conn.execute("SELECT COUNT(*) FROM fee_items WHERE amount_paid > amount_due").fetchone()
    if over[0]:
        problems.append(f"{over[0]} items overpaid")
    twice = conn.execute(
        "SELECT oi.item_id FROM order_items oi JOIN orders o ON o.order_no = oi.order_no"
        " WHERE o.status='paid' GROUP BY oi.item_id HAVING COUNT(*) > 1"
    ).fetchall()
    if twice:
        problems.append(f"{len(twice)} items in two paid orders")
    lost = conn.execute(
        "SELECT t.trade_no FROM gw_trades t JOIN orders o ON o.order_no=t.order_no"
        " WHERE t.state='SUCCESS' AND (o.transaction_id IS NOT t.transaction_id)"
    ).fetchall()
    if lost:
        problems.append(f"{len(lost)} gateway payments not recorded")
    return problems


def table(timings: Timings, wall: dict[str, float]) -> str:
    base = statistics.median(timings["GET /healthz (trivial)"])
    rows = [
        "| call | n | req/s | p50 ms | p99 ms | p50 / trivial p50 |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in timings.items():
        values = sorted(values)
        p50 = statistics.median(values)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        rate = len(values) / wall["trivial" if "trivial" in name else "flow"]
        rows.append(
            f"| {name} | {len(values)} | {rate:.0f} | {p50 * 1000:.1f} | {p99 * 1000:.1f} |"
            f" {p50 / base:.1f}x |"
        )
    return "\n".join(rows)


async def run(students: int, trivial_requests: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.sqlite3")
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve-child", db, "--students", str(students)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            line = child.stdout.readline()
            base = line.split(" listening on ", 1)[1].split()[0]
            timings: Timings = defaultdict(list)
            errors: list[str] = []
            wall = {}
            start = time.perf_counter()
            await trivial(base, students, trivial_requests, timings)
            wall["trivial"] = time.perf_counter() - start
            start = time.perf_counter()
            names = [f"9{n:09d}" for n in range(students)]
            await asyncio.gather(*(student(base, n, timings, errors) for n in names))
            wall["flow"] = time.perf_counter() - start
        finally:
            child.terminate()
            child.wait(timeout=10)
        problems = check_invariants(db)
    print(
        f"{students} concurrent students, {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, backend in its own process"
    )
    print(table(timings, wall))
    print(
        f"\nflow wall time {wall['flow']:.2f} s; errors: {len(errors)}"
        + ("" if not errors else f" (first: {errors[0]})")
    )
    print("invariants: " + ("hold" if not problems else "BROKEN: " + "; ".join(problems)))
    return 1 if problems or errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--trivial-requests", type=int, default=2000)
    parser.add_argument("--serve-child", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.students)
        return 0
    return asyncio.run(run(args.students, args.trivial_requests))


if __name__ == "__main__":
    sys.exit(main())
