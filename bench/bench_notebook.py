"""Benchmark the notebook sign-in: completion-to-kernel latency and click-to-200.

Run with `python bench/bench_notebook.py`. It starts the Pomerium test server,
a JupyterLab subprocess with the server extension, and Chromium, all on
127.0.0.1, and prints the machine and the figures.

(a) From the POST that completes a flow to the moment a kernel blocked in
    `%pomerium wait` has printed after it returned. The kernel stamps the
    time itself, so Jupyter's message round trip is not counted.
(b) From the click on the widget's sign-in button to the next cell's 200,
    with a browser that already has a Pomerium session, so the popup signs
    in without a form.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _jupyter_process import JupyterProcess, jupyter_server, launch_chromium  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402
from test_notebook_e2e import (  # noqa: E402
    fill_sign_in_form,
    open_in_lab,
    output_of,
    run_cell,
    sign_in_button,
    write_notebook,
)

from pomerium_jupyter import FileTokenStore  # noqa: E402
from pomerium_jupyter.kernel._methods import STORE_POLL_INTERVAL  # noqa: E402
from pomerium_jupyter.testing import PomeriumTestServer, ScriptedBrowser  # noqa: E402

STAMP_PREFIX = "stamp "


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    return (
        f"{os.cpu_count()} cores, {cpu_model()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def sign_out(server: JupyterProcess) -> None:
    store = FileTokenStore(server.cache_dir)
    for entry in store.entries():
        store.delete(entry.deployment)


def read_stamp(client: Any, msg_id: str, timeout: float) -> float:
    """Return the time the kernel printed for a cell, and wait for its end."""
    stamp: float | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = client.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            continue
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        content = message["content"]
        if kind == "stream" and STAMP_PREFIX in content["text"]:
            text = content["text"].split(STAMP_PREFIX, 1)[1].split()[0]
            stamp = float(text)
        elif kind == "error":
            raise RuntimeError(f"the cell failed: {content['ename']}")
        elif kind == "status" and content["execution_state"] == "idle":
            if stamp is None:
                raise RuntimeError("the cell finished without printing a stamp")
            return stamp
    raise RuntimeError(f"the cell did not finish within {timeout} s")


def bench_completion_to_kernel(
    server: JupyterProcess, pomerium: PomeriumTestServer, repetitions: int
) -> list[float]:
    """Return seconds from the completing POST to the kernel's stamp."""
    route = pomerium.route_url("app")
    env = dict(os.environ, POMERIUM_JUPYTER_CACHE_DIR=str(server.cache_dir))
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    code = f"%pomerium wait {route}\nimport time\nprint('{STAMP_PREFIX}', time.time())"
    latencies = []
    try:
        client.execute("%load_ext pomerium_jupyter", silent=True)
        for index in range(repetitions):
            sign_out(server)
            start = httpx.get(
                f"{server.url}pomerium/start",
                params={
                    "route": route,
                    "origin": server.origin,
                    "request": f"b{index}",
                },
                headers=server.headers(),
            )
            sign_in_url = start.headers["Location"]
            browser = ScriptedBrowser(deliver=False)
            browser(sign_in_url)
            browser.close()
            callback = httpx.URL(browser.final_url or "")
            flow = callback.params["flow"]
            token = callback.params["pomerium_jwt"]
            msg_id = client.execute(code)
            # Give the kernel time to enter its wait loop. The varying extra
            # delay spreads the completions over the store's poll interval.
            time.sleep(0.3 + (index % 7) * 0.013)
            started = time.time()
            done = httpx.post(
                f"{server.url}pomerium/api/flows/{flow}/complete",
                json={"token": token},
                headers=server.headers(),
            )
            if done.status_code != 200:
                raise RuntimeError(f"completion failed: {done.status_code}")
            stamp = read_stamp(client, msg_id, timeout=30)
            latencies.append(stamp - started)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return latencies


def bench_click_to_200(
    server: JupyterProcess, pomerium: PomeriumTestServer, repetitions: int
) -> list[float]:
    """Return seconds from the sign-in click to the next cell's 200."""
    route = pomerium.route_url("app")
    name = write_notebook(
        server.root_dir / "bench.ipynb",
        [
            "%load_ext pomerium_jupyter",
            f"client = %pomerium login {route}",
            f"%pomerium wait {route}\nimport time\n"
            'response = client.get("/items")\n'
            f"print('{STAMP_PREFIX}', time.time(), response.status_code)",
        ],
    )
    latencies = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context()
            context.set_default_timeout(30_000)
            page = context.new_page()
            open_in_lab(page, server, name)
            run_cell(page, 0)
            # One sign-in with the form gives the browser a Pomerium session;
            # it is not measured.
            for index in range(repetitions + 1):
                sign_out(server)
                run_cell(page, 1)
                button = sign_in_button(output_of(page, 1))
                run_cell(page, 2)
                started = time.time()
                with page.expect_popup() as popup_info:
                    button.click()
                if index == 0:
                    fill_sign_in_form(popup_info.value)
                output = output_of(page, 2)
                expect(output).to_contain_text(STAMP_PREFIX)
                words = output.inner_text().split(STAMP_PREFIX, 1)[1].split()
                if words[1] != "200":
                    raise RuntimeError(f"the request returned {words[1]}")
                if index > 0:
                    latencies.append(float(words[0]) - started)
        finally:
            browser.close()
    return latencies


def describe(label: str, values: list[float]) -> str:
    milliseconds = [v * 1000 for v in values]
    return (
        f"{label}: n={len(values)}, p50 {statistics.median(milliseconds):.0f} ms, "
        f"p90 {percentile(milliseconds, 0.9):.0f} ms, "
        f"max {max(milliseconds):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-repetitions", type=int, default=40)
    parser.add_argument("--browser-repetitions", type=int, default=10)
    parser.add_argument(
        "--no-record", action="store_true", help="Do not append to bench/README.md."
    )
    args = parser.parse_args()

    machine = machine_line()
    print(f"Machine: {machine}")
    with (
        tempfile.TemporaryDirectory() as directory,
        PomeriumTestServer(routes=("app",)) as pomerium,
        jupyter_server(Path(directory) / "jupyter") as server,
    ):
        kernel = bench_completion_to_kernel(server, pomerium, args.kernel_repetitions)
        browser = bench_click_to_200(server, pomerium, args.browser_repetitions)
    kernel_line = describe(
        "(a) completion POST to token usable in a kernel blocked in %pomerium wait "
        f"(store poll interval {STORE_POLL_INTERVAL * 1000:.0f} ms)",
        kernel,
    )
    browser_line = describe(
        "(b) click to the next cell's 200 with a silent Pomerium sign-in", browser
    )
    print(kernel_line)
    print(browser_line)
    if args.no_record:
        return
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    if "## Notebook sign-in" not in text:
        text = text.rstrip("\n") + (
            "\n\n## Notebook sign-in\n\n"
            "Measured by `python bench/bench_notebook.py` against the Pomerium "
            "test server, a JupyterLab subprocess and headless Chromium, all "
            "on 127.0.0.1. Goals: (a) p50 <= 50 ms, (b) median <= 2 s.\n"
        )
    today = datetime.date.today().isoformat()
    text = text.rstrip("\n") + (
        f"\n\n{today}, {machine}:\n\n- {kernel_line}\n- {browser_line}\n"
    )
    readme.write_text(text)


if __name__ == "__main__":
    main()
