"""Benchmark the core: auth overhead, recovery from a dead token, import time.

Run with `python bench/bench_core.py`. Each figure is measured side by side in
one run; the machine is shared, so compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

import pomerium_jupyter
from pomerium_jupyter import LoopbackLogin, MemoryTokenStore, PomeriumAuth, Token
from pomerium_jupyter.testing import PomeriumTestServer, ScriptedBrowser


class _OkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY each
    # response waits for the client's delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def _serve_ok() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _requests_per_second(client: httpx.Client, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        client.get("/")
    return count / (time.perf_counter() - started)


def bench_overhead(count: int, rounds: int) -> dict[str, float]:
    """Compare PomeriumAuth with a static header, alternating rounds."""
    server, url = _serve_ok()
    token = Token("header.payload.signature", source="bench")
    store = MemoryTokenStore()
    store.remember_route(url, "bench-deployment")
    store.put("bench-deployment", token)
    auth = PomeriumAuth(url, store=store, interactive=False)
    plain = httpx.Client(
        base_url=url, headers={"Authorization": f"Pomerium {token.value}"}
    )
    with plain, pomerium_jupyter.client(url, auth=auth) as wrapped:
        _requests_per_second(plain, 200)
        _requests_per_second(wrapped, 200)
        plain_rates, auth_rates = [], []
        for _ in range(rounds):
            plain_rates.append(_requests_per_second(plain, count))
            auth_rates.append(_requests_per_second(wrapped, count))
    server.shutdown()
    plain_rps = statistics.median(plain_rates)
    auth_rps = statistics.median(auth_rates)
    return {
        "plain_rps": plain_rps,
        "auth_rps": auth_rps,
        "overhead_percent": (plain_rps / auth_rps - 1) * 100,
    }


def bench_dead_token(count: int) -> dict[str, float]:
    """Time `count` concurrent requests with a live and with a revoked token."""
    with PomeriumTestServer(version="0.33") as server:
        login = LoopbackLogin(
            browser=ScriptedBrowser("alice"), timeout=60, announce=lambda _: None
        )
        auth = PomeriumAuth(
            server.route_url(), store=MemoryTokenStore(), login=login, interactive=True
        )
        login_started = time.perf_counter()
        auth.current_token()
        login_seconds = time.perf_counter() - login_started

        async def burst() -> float:
            limits = httpx.Limits(max_connections=20)
            async with pomerium_jupyter.async_client(
                server.route_url(), auth=auth, limits=limits, timeout=120
            ) as client:
                started = time.perf_counter()
                responses = await asyncio.gather(
                    *(client.get(f"/item/{n}") for n in range(count))
                )
                elapsed = time.perf_counter() - started
            assert all(r.status_code == 200 for r in responses)
            return elapsed

        live = asyncio.run(burst())
        logins_before = auth.login_count
        server.revoke(auth.current_token().session_id or "")
        dead = asyncio.run(burst())
        new_logins = auth.login_count - logins_before
    return {
        "live_seconds": live,
        "dead_seconds": dead,
        "new_logins": new_logins,
        "login_seconds": login_seconds,
    }


def _import_seconds(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - started


def bench_import(runs: int) -> dict[str, float]:
    """Median wall time of importing httpx alone vs httpx plus pomerium_jupyter."""
    base, full = [], []
    for _ in range(runs):
        base.append(_import_seconds("import httpx"))
        full.append(_import_seconds("import httpx, pomerium_jupyter"))
    return {
        "httpx_ms": statistics.median(base) * 1000,
        "with_pomerium_jupyter_ms": statistics.median(full) * 1000,
        "extra_ms": (statistics.median(full) - statistics.median(base)) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--import-runs", type=int, default=15)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, httpx {httpx.__version__}"
    )
    overhead = bench_overhead(args.requests, args.rounds)
    print(
        f"sequential GETs: plain httpx {overhead['plain_rps']:.0f} req/s, "
        f"PomeriumAuth {overhead['auth_rps']:.0f} req/s, "
        f"overhead {overhead['overhead_percent']:+.1f} %"
    )
    dead = bench_dead_token(args.burst)
    print(
        f"{args.burst} concurrent GETs: live token {dead['live_seconds']:.2f} s, "
        f"revoked token {dead['dead_seconds']:.2f} s with "
        f"{dead['new_logins']:.0f} new login(s); one scripted login alone takes "
        f"{dead['login_seconds']:.2f} s"
    )
    imports = bench_import(args.import_runs)
    print(
        f"import: httpx {imports['httpx_ms']:.0f} ms, httpx + pomerium_jupyter "
        f"{imports['with_pomerium_jupyter_ms']:.0f} ms "
        f"(extra {imports['extra_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
