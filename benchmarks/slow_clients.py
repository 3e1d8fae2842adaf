"""Slow and silent clients against the backend: which server setup drops them, at what cost.

Each setup runs the real backend app in its own process on a loopback port:

- ``uvicorn``: uvicorn's stock HTTP/1.1 protocol (what the backend ran before);
- ``uvicorn-limit``: the same with ``limit_concurrency`` (uvicorn's own cap);
- ``hypercorn``: hypercorn with ``read_timeout`` (if hypercorn is installed);
- ``guard``: uvicorn with the backend's own protocol guard (``epay_tui/server/guard.py``).

Attacks, 100 connections each (``--per-attack``): ``silent`` (connects, sends nothing),
``half-headers`` (half a request, then nothing), ``half-body`` (headers, a tenth of the
body), ``trickle`` (one header line every timeout/2, never finishing). After the timeout
plus 3 s it counts the attack connections the server still holds, and times ``/healthz``
from another client meanwhile. Then ``over cap``: the cap plus 50 complete requests at
once (what is answered 200, 5xx, or closed); ``slow answer``: a response that takes the
timeout plus 3 s (as a long poll's may) still reaches its client; and ``req/s``: 2,000
``/healthz`` calls from 20 keep-alive clients with no attack, for the guard's own cost.

    python benchmarks/slow_clients.py [--timeout 5] [--cap 200] [--per-attack 100]

The timeout is shortened from the backend's 30 s so a run takes minutes; the mechanism
is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = {
    "silent": b"",
    "half-headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    "half-body": b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user',
    "trickle": b"GET /healthz HTTP/1.1\r\n",
}


# ---------------------------------------------------------------------------- the server side
def serve(setup: str, port: int, timeout: float, cap: int) -> None:
    """Run the backend app with one setup (in the child process)."""
    import uvicorn

    from epay_tui.server.app import create_app
    from epay_tui.server.config import ServerConfig

    backend_app = create_app(ServerConfig(port=port, max_connections=cap))

    async def app(scope, receive, send):
        """The backend, plus ``/bench/slow``: an answer that takes timeout + 3 s, as a long
        poll's does (the request itself arrives at once)."""
        if scope["type"] == "http" and scope["path"] == "/bench/slow":
            await asyncio.sleep(timeout + 3)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await backend_app(scope, receive, send)

    if setup == "hypercorn":
        from hypercorn.asyncio import serve as hyper_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.read_timeout = int(timeout)
        config.backlog = 1024
        asyncio.run(hyper_serve(app, config))
        return
    options: dict = {"http": "h11"}
    if setup == "uvicorn-limit":
        options["limit_concurrency"] = cap
    if setup == "guard":
        from epay_tui.server.guard import guarded_protocol

        options["http"] = guarded_protocol(timeout, cap)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", backlog=1024, **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(setup: str, timeout: float, cap: int):
    port = free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            setup,
            "--port",
            str(port),
            "--timeout",
            str(timeout),
            "--cap",
            str(cap),
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"{setup} did not start")
            time.sleep(0.1)
        yield port
    finally:
        child.terminate()
        child.wait(10)


# ---------------------------------------------------------------------------- the client side
async def attacker(port: int, first: bytes, trickle_every: float | None, stop: asyncio.Event):
    """One attack connection; returns True while the server still holds it at ``stop``."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        if first:
            writer.write(first)
            await writer.drain()
        reading = asyncio.ensure_future(reader.read())
        while not stop.is_set():
            waiter = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait(
                {reading, waiter}, timeout=trickle_every, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if reading in done:
                return False  # the server closed it
            if trickle_every and not stop.is_set():
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
        reading.cancel()
        return True
    except (ConnectionError, OSError):
        return False
    finally:
        writer.close()


async def healthz_times(port: int, n: int = 20) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for _ in range(n):
            start = time.perf_counter()
            try:
                await http.get("/healthz")
                times.append((time.perf_counter() - start) * 1000)
            except httpx.HTTPError:
                times.append(float("inf"))
    return times


async def attack(port: int, kind: str, per_attack: int, timeout: float) -> tuple[int, str]:
    stop = asyncio.Event()
    every = timeout / 2 if kind == "trickle" else None
    tasks = [
        asyncio.ensure_future(attacker(port, ATTACKS[kind], every, stop)) for _ in range(per_attack)
    ]
    await asyncio.sleep(1)
    times = await healthz_times(port)
    await asyncio.sleep(timeout + 2)
    stop.set()
    held = sum(await asyncio.gather(*tasks))
    finite = sorted(t for t in times if t != float("inf"))
    failed = len(times) - len(finite)
    p50 = statistics.median(finite) if finite else float("nan")
    p99 = finite[-1] if finite else float("nan")
    return held, f"{p50:.1f} / {p99:.1f}" + (f" ({failed} failed)" if failed else "")


async def over_cap(port: int, cap: int) -> str:
    """``cap`` + 50 complete requests at once, each on its own connection, held open."""

    async def one():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
            await asyncio.sleep(2)  # hold the connection while the others arrive
            writer.close()
            return line.split(b" ")[1].decode() if line else "closed"
        except (TimeoutError, ConnectionError, OSError, IndexError):
            return "closed"

    found = await asyncio.gather(*(one() for _ in range(cap + 50)))
    ok = found.count("200")
    fives = sum(1 for f in found if f.startswith("5"))
    return f"{ok} ok, {fives} 5xx, {found.count('closed')} closed"


async def slow_answer(port: int) -> str:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        try:
            return "answered" if (await http.get("/bench/slow")).status_code == 200 else "5xx"
        except httpx.HTTPError as exc:
            return f"lost ({type(exc).__name__})"


async def throughput(port: int, total: int = 2000, clients: int = 20) -> float:
    async def worker(n: int):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(n):
                await http.get("/healthz")

    start = time.perf_counter()
    await asyncio.gather(*(worker(total // clients) for _ in range(clients)))
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--cap", type=int, default=200)
    parser.add_argument("--per-attack", type=int, default=100)
    parser.add_argument("--setups", default="uvicorn,uvicorn-limit,hypercorn,guard")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.timeout, args.cap)
        return
    setups = args.setups.split(",")
    if "hypercorn" in setups:
        try:
            import hypercorn  # noqa: F401
        except ImportError:
            print("(hypercorn is not installed: pip install hypercorn to include it)")
            setups.remove("hypercorn")
    print(
        f"timeout {args.timeout:g} s, cap {args.cap}, {args.per_attack} connections per"
        " attack; held = attack connections still open at timeout + 3 s;"
        " /healthz during the attack: p50 / max ms"
    )
    header = [
        "setup",
        *(f"{k} held" for k in ATTACKS),
        "/healthz meanwhile",
        "slow answer",
        "over cap",
        "req/s",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setup in setups:
        with server(setup, args.timeout, args.cap) as port:
            cells, during = [], []
            for kind in ATTACKS:
                held, times = asyncio.run(attack(port, kind, args.per_attack, args.timeout))
                cells.append(f"{held}/{args.per_attack}")
                during.append(times)
            slow = asyncio.run(slow_answer(port))
            capped = asyncio.run(over_cap(port, args.cap))
            rate = asyncio.run(throughput(port))
        print(
            f"| {setup} | "
            + " | ".join(cells)
            + f" | {during[1]} | {slow} | {capped} | {rate:.0f} |"
        )


if __name__ == "__main__":
    main()
