"""Wrong logins for known and unknown usernames: does the time tell whether one exists?

Interleaved pairs (a known username, then an unknown one, each with a fresh captcha)
against the demo backend on a loopback port; prints both medians and their ratio for
each round. The test suite counts instead (one scrypt each, same cost parameters:
tests/test_accounts_api.py::test_unknown_and_known_usernames_cost_the_same_scrypt).

    python benchmarks/login_timing.py [--pairs 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from epay_tui.server import accounts
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer

KNOWN = ("2024010001", "2024010002", "2024010003", "2024010004")


async def one_round(server: BackgroundServer, pairs: int, round_no: int) -> tuple[float, float]:
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for n in range(pairs):
            known = KNOWN[n % len(KNOWN)]  # 4 failures each per round at most: no lock
            unknown = f"20249{round_no:02d}{n:03d}"
            for kind, username in (("known", known), ("unknown", unknown)):
                captcha = (await http.post("/api/v1/captcha")).json()["captcha_id"]
                answer = accounts.latest_captcha(server.backend).answer
                started = time.perf_counter()
                await http.post(
                    "/api/v1/auth/login",
                    json={
                        "username": username,
                        "password": "Wrong-pass-9",
                        "captcha_id": captcha,
                        "captcha_answer": answer,
                    },
                )
                times[kind].append((time.perf_counter() - started) * 1000)
    return statistics.median(times["known"]), statistics.median(times["unknown"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("| round | known median ms | unknown median ms | unknown / known |")
    print("|---:|---:|---:|---:|")
    for round_no in range(args.rounds):
        config = ServerConfig(demo_data=True, dev_hooks=True, port=0)
        with BackgroundServer(config) as server:
            known, unknown = asyncio.run(one_round(server, args.pairs, round_no))
        print(f"| {round_no + 1} | {known:.1f} | {unknown:.1f} | {unknown / known:.2f}x |")


if __name__ == "__main__":
    main()
