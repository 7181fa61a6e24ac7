"""End-to-end tests of the notebook sign-in on a real JupyterHub.

A JupyterHub with the pure-Python configurable-http-proxy, DummyAuthenticator
and SimpleLocalProcessSpawner runs on loopback. Chromium reaches it as
hub.example.test and Pomerium's authenticate origin as auth.example.test, both
mapped to 127.0.0.1 by --host-resolver-rules, so the Hub's host is not a
loopback name and Pomerium's redirect allow list has to name it. The kernels
and single-user servers call the route by 127.0.0.1, which needs no name
resolution outside the browser.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from _jupyter_process import launch_chromium
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    expect,
    sync_playwright,
)

from pomerium_jupyter import FileTokenStore
from pomerium_jupyter.testing import PomeriumTestServer

pytestmark = pytest.mark.browser

HUB_HOST = "hub.example.test"
AUTHENTICATE_HOST = "auth.example.test"
HUB_PASSWORD = "hub-password"
# Hub users; each signs in to Pomerium as the test server's user of the same
# initial (alice, bob).
ADA = "ada"
BEN = "ben"
NAMED_SERVER = "second"
SIGN_IN_NOTEBOOK = "sign-in.ipynb"
DENIED_NOTEBOOK = "denied.ipynb"
# Seconds. The Hub, the proxy and a single-user server each start within a few
# seconds on a small machine.
START_TIMEOUT = 60.0
# Milliseconds, for Playwright waits.
UI_TIMEOUT = 30_000
KERNEL_TIMEOUT = 60_000
WIDGET = '[data-pomerium="widget"]'


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _loopback_url(url: str) -> str:
    """Replace the host of a test-server URL with 127.0.0.1."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"127.0.0.1:{parts.port}").geturl()


def _notebook(*sources: str) -> dict[str, Any]:
    cells = [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": f"cell-{index}",
            "metadata": {},
            "outputs": [],
            "source": source,
        }
        for index, source in enumerate(sources)
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {
                "display_name": "Python 3",
                "language": "python",
                "name": "python3",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _write_notebook(path: Path, *sources: str) -> None:
    path.write_text(json.dumps(_notebook(*sources)))


def _login_sources(route: str) -> tuple[str, str]:
    return (
        f"%load_ext pomerium_jupyter\nclient = %pomerium login {route}",
        'print("upstream user:", client.get("/").json()["user"])',
    )


_HUB_CONFIG = """\
import json

settings = json.loads({settings!r})

c.JupyterHub.bind_url = settings["bind_url"]
c.JupyterHub.hub_bind_url = settings["hub_bind_url"]
c.ConfigurableHTTPProxy.api_url = settings["proxy_api_url"]
c.ConfigurableHTTPProxy.pid_file = settings["proxy_pid_file"]
c.JupyterHub.db_url = settings["db_url"]
c.JupyterHub.cookie_secret_file = settings["cookie_secret_file"]
c.JupyterHub.pid_file = settings["pid_file"]
c.JupyterHub.allow_named_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings["password"]
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = settings["home_template"]
c.Spawner.cmd = settings["singleuser_cmd"]
c.Spawner.args = settings["singleuser_args"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.env_keep = settings["env_keep"]
cache_root = settings["cache_root"]
# Every Hub user gets a token store of their own: the local spawner runs all
# single-user servers as the same OS user, and the store is per OS user.
# JupyterHub 6.1 does not expand {{username}} in Spawner.environment values,
# but it calls callables with the spawner.
c.Spawner.environment = {{
    "POMERIUM_JUPYTER_CACHE_DIR": (
        lambda spawner: f"{{cache_root}}/{{spawner.user.name}}"
    ),
    **settings["environment"],
}}
c.JupyterHub.services = [
    {{"name": "test-admin", "api_token": settings["admin_token"]}},
]
c.JupyterHub.load_roles = [
    {{
        "name": "test-admin",
        "scopes": ["admin:users", "admin:servers", "tokens", "shares", "read:users"],
        "services": ["test-admin"],
    }},
]
"""


@dataclass
class Hub:
    """A running JupyterHub and what the tests need to drive it."""

    public_url: str
    api_url: str
    admin_token: str
    root: Path
    log_file: Path
    started: set[tuple[str, str]] = field(default_factory=set)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def home(self, user: str) -> Path:
        path = self.root / "home" / user
        path.mkdir(parents=True, exist_ok=True)
        return path

    def store(self, user: str) -> FileTokenStore:
        return FileTokenStore(self.root / "cache" / user)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"token {self.admin_token}"}
        return httpx.request(
            method, f"{self.api_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def server_prefix(self, user: str, name: str = "") -> str:
        return f"/user/{user}/{name}/" if name else f"/user/{user}/"

    def start_server(self, user: str, name: str = "") -> None:
        """Create the user and start the server if needed; wait until it runs."""
        if (user, name) in self.started:
            return
        self.api("POST", f"users/{user}")
        response = self.api("POST", f"users/{user}/servers/{name}")
        # A Hub login starts the default server, so it may be running already.
        if response.status_code == 400:
            assert "already running" in response.text, response.text
        else:
            assert response.status_code in (201, 202), response.text
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{user}").json()
            server = model.get("servers", {}).get(name)
            if server and server.get("ready"):
                self.started.add((user, name))
                return
            time.sleep(0.3)
        pytest.fail(
            f"The server {name!r} of {user} did not start within {START_TIMEOUT} s; "
            f"the Hub log:\n{self.log_text()[-6000:]}"
        )


def _wait_for_hub(process: subprocess.Popen[bytes], hub: Hub) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"JupyterHub exited with code {process.returncode} while starting; "
                f"its log:\n{hub.log_text()}"
            )
        try:
            response = httpx.get(f"{hub.api_url}", timeout=5)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            return
        time.sleep(0.2)
    pytest.fail(
        f"JupyterHub did not answer within {START_TIMEOUT} s; its log:\n"
        f"{hub.log_text()}"
    )


@pytest.fixture(scope="module")
def pomerium() -> Iterator[PomeriumTestServer]:
    """A deployment whose allow list names the Hub's host."""
    with PomeriumTestServer(
        routes=("app",), public_host=AUTHENTICATE_HOST, allow_list=[HUB_HOST]
    ) as server:
        yield server


@pytest.fixture(scope="module")
def closed_pomerium() -> Iterator[PomeriumTestServer]:
    """A deployment with Pomerium's default allow list: loopback hosts only."""
    with PomeriumTestServer(routes=("app",), public_host=AUTHENTICATE_HOST) as server:
        yield server


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
    pomerium: PomeriumTestServer,
    closed_pomerium: PomeriumTestServer,
) -> Iterator[Hub]:
    if shutil.which("configurable-http-proxy") is None:
        pytest.fail(
            "The configurable-http-proxy command is missing; install the "
            "pure-Python proxy with `pip install configurable-http-proxy`."
        )
    root = tmp_path_factory.mktemp("hub")
    port = _free_port()
    admin_token = secrets.token_hex(24)
    config_dir = root / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"pomerium_jupyter": True}}})
    )
    # Turn off the question about Jupyter news, so no toast covers the page.
    notification_settings = (
        config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    )
    notification_settings.mkdir(parents=True)
    (notification_settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false"})
    )
    settings = {
        "bind_url": f"http://127.0.0.1:{port}",
        "hub_bind_url": f"http://127.0.0.1:{_free_port()}",
        "proxy_api_url": f"http://127.0.0.1:{_free_port()}",
        "proxy_pid_file": str(root / "proxy.pid"),
        "db_url": f"sqlite:///{root / 'jupyterhub.sqlite'}",
        "cookie_secret_file": str(root / "cookie_secret"),
        "pid_file": str(root / "jupyterhub.pid"),
        "password": HUB_PASSWORD,
        "home_template": str(root / "home" / "{username}"),
        "singleuser_cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
        "singleuser_args": ["--allow-root", "--ServerApp.log_level=INFO"],
        "env_keep": ["PATH", "PYTHONPATH", "LANG", "JUPYTERHUB_SINGLEUSER_APP"],
        "cache_root": str(root / "cache"),
        "environment": {
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_DATA_DIR": str(root / "jupyter-data"),
            "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"),
        },
        "admin_token": admin_token,
    }
    config_file = root / "jupyterhub_config.py"
    config_file.write_text(_HUB_CONFIG.format(settings=json.dumps(settings)))

    hub = Hub(
        public_url=f"http://{HUB_HOST}:{port}",
        api_url=f"http://127.0.0.1:{port}/hub/api/",
        admin_token=admin_token,
        root=root,
        log_file=root / "jupyterhub.log",
    )
    for user in (ADA, BEN):
        _write_notebook(
            hub.home(user) / SIGN_IN_NOTEBOOK,
            *_login_sources(_loopback_url(pomerium.route_url("app"))),
        )
    _write_notebook(
        hub.home(ADA) / DENIED_NOTEBOOK,
        _login_sources(_loopback_url(closed_pomerium.route_url("app")))[0],
    )

    env = dict(os.environ)
    for name in ("POMERIUM_JUPYTER_TOKEN", "POMERIUM_JUPYTER_TOKEN_FILE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "jupyterhub", "-f", str(config_file)]
    with hub.log_file.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root
        )
        try:
            _wait_for_hub(process, hub)
            yield hub
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def browser(hub: Hub) -> Iterator[Browser]:
    # Function scope: Playwright's sync API runs an event loop that must be
    # gone before pytest-jupyter's event-loop fixture is torn down.
    rules = f"MAP {HUB_HOST} 127.0.0.1, MAP {AUTHENTICATE_HOST} 127.0.0.1"
    # Chromium sends Sec-Fetch-* headers only to secure origins. Treating the
    # Hub's http origin as secure makes it behave like an https deployment, so
    # JupyterHub applies its XSRF rule to every fetch, GET included.
    secure = f"--unsafely-treat-insecure-origin-as-secure={hub.public_url}"
    with sync_playwright() as playwright:
        chromium = launch_chromium(
            playwright, extra_args=[f"--host-resolver-rules={rules}", secure]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _hub_context(browser: Browser, hub: Hub, user: str) -> BrowserContext:
    """Open a browser context signed in to the Hub as `user`."""
    context = browser.new_context()
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    page.goto(f"{hub.public_url}/hub/login")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill(HUB_PASSWORD)
    page.locator("#login_submit").click()
    page.wait_for_url(lambda url: "/hub/login" not in url)
    page.close()
    return context


def _open_notebook(context: BrowserContext, hub: Hub, prefix: str, name: str) -> Page:
    page = context.new_page()
    # "reset" drops the workspace saved by an earlier test, so only this
    # notebook is open.
    page.goto(f"{hub.public_url}{prefix}lab/tree/{name}?reset")
    kernel_idle = page.locator("#jp-main-statusbar", has_text="| Idle")
    kernel_idle.wait_for(state="visible", timeout=KERNEL_TIMEOUT)
    return page


def _run_cell(page: Page, index: int) -> None:
    page.locator(".jp-Cell .jp-InputArea-editor").nth(index).click()
    page.keyboard.press("Shift+Enter")


def _sign_in_through_widget(page: Page, user: str) -> None:
    widget = page.locator(WIDGET).first
    sign_in = widget.locator('[data-pomerium="sign-in"]')
    expect(sign_in).to_be_enabled(timeout=KERNEL_TIMEOUT)
    with page.expect_popup() as popup_info:
        sign_in.click()
    popup = popup_info.value
    popup.locator("#username").fill(user)
    popup.locator("#password").fill(f"{user}-password")
    with popup.expect_event("close", timeout=UI_TIMEOUT):
        popup.locator("#sign-in").click()


def _xsrf_cookie(context: BrowserContext, path: str) -> str:
    for cookie in context.cookies():
        if cookie["name"] == "_xsrf" and cookie.get("path") == path:
            return cookie["value"]
    raise AssertionError(f"no _xsrf cookie for {path}: {context.cookies()}")


def _get_as(context: BrowserContext, hub: Hub, path_and_query: str) -> httpx.Response:
    """Send a GET with the context's cookies, without following redirects.

    Playwright's request API resolves names outside Chromium, where the Hub's
    name does not exist, so the request goes to 127.0.0.1 with the Hub's name
    in the Host header.
    """
    parts = urlsplit(hub.public_url)
    path = path_and_query.split("?", 1)[0]
    cookies = "; ".join(
        f"{cookie['name']}={cookie['value']}"
        for cookie in context.cookies(hub.public_url + path)
    )
    return httpx.get(
        f"http://127.0.0.1:{parts.port}{path_and_query}",
        headers={"Host": parts.netloc, "Cookie": cookies},
        timeout=30,
    )


def _start_query(context: BrowserContext, hub: Hub, prefix: str, route: str) -> str:
    return urlencode(
        {
            "route": route,
            "origin": hub.public_url,
            "request": secrets.token_hex(8),
            "_xsrf": _xsrf_cookie(context, prefix),
        }
    )


def _sign_in_url_from(
    context: BrowserContext, hub: Hub, prefix: str, route: str
) -> str:
    """Start a flow on a server as the context's Hub user; return the sign-in URL."""
    query = _start_query(context, hub, prefix, route)
    response = _get_as(context, hub, f"{prefix}pomerium/start?{query}")
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"http://{AUTHENTICATE_HOST}:")
    return location


def _visit(context: BrowserContext, hub: Hub, prefix: str) -> Page:
    """Sign in to a server through the Hub's OAuth and return the open page.

    The landing page sets the server's login and _xsrf cookies. A visitor of a
    shared server first confirms the Hub's authorization page.
    """
    page = context.new_page()
    # API endpoints return 403 instead of starting the OAuth redirect, so the
    # visit loads a page. Its scripts are blocked: a JupyterLab page still
    # starting up could keep page.close() from returning on a busy machine.
    page.route(_SCRIPT_PATTERN, _abort_request)
    page.goto(f"{hub.public_url}{prefix}lab", wait_until="commit")
    if "/hub/api/oauth2/authorize" in page.url:
        page.locator("button[type=submit]", has_text="Authorize").click()
    page.wait_for_url(f"**{prefix}lab", wait_until="load")
    page.unroute(_SCRIPT_PATTERN, _abort_request)
    return page


_SCRIPT_PATTERN = re.compile(r"\.js(\?|$)")


def _abort_request(route: Route) -> None:
    route.abort()


def test_widget_sign_in_on_user_server(
    hub: Hub, browser: Browser, pomerium: PomeriumTestServer
) -> None:
    hub.start_server(ADA)
    hub.start_server(BEN)
    hub.store(ADA).clear()
    prefix = hub.server_prefix(ADA)
    context = _hub_context(browser, hub, ADA)
    try:
        page = _open_notebook(context, hub, prefix, SIGN_IN_NOTEBOOK)

        # JupyterHub 4.1 and later answers a cookie-authenticated fetch
        # without X-XSRFToken as anonymous, GET included.
        statuses = page.evaluate(
            """async (url) => {
                const xsrf = document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/)[1];
                const bare = await fetch(url, {credentials: "same-origin"});
                const sent = await fetch(url, {
                    credentials: "same-origin",
                    headers: {"X-XSRFToken": xsrf},
                });
                return [bare.status, sent.status];
            }""",
            f"{prefix}pomerium/api/status",
        )
        assert statuses == [403, 200]

        _run_cell(page, 0)
        _sign_in_through_widget(page, "alice")
        status = page.locator(WIDGET).first.locator('[data-pomerium="status"]')
        expect(status).to_have_text("Signed in as alice")

        _run_cell(page, 1)
        output = page.locator(".jp-OutputArea-output", has_text="upstream user:")
        expect(output).to_contain_text("upstream user: alice", timeout=KERNEL_TIMEOUT)

        entries = hub.store(ADA).entries()
        assert [entry.token.user for entry in entries] == ["alice"]
        assert hub.store(BEN).entries() == []
        token_value = entries[0].token.value
        assert token_value not in page.content()
        assert token_value not in page.url
    finally:
        context.close()

    log = hub.log_text()
    assert "Pomerium sign-in completed" in log
    assert token_value not in log


def test_cross_user_sign_in_rejected(
    hub: Hub, browser: Browser, pomerium: PomeriumTestServer
) -> None:
    hub.start_server(ADA)
    hub.start_server(BEN)
    hub.store(BEN).clear()
    route = _loopback_url(pomerium.route_url("app"))
    ben_prefix = hub.server_prefix(BEN)
    ben = _hub_context(browser, hub, BEN)
    ada = _hub_context(browser, hub, ADA)
    try:
        _visit(ben, hub, ben_prefix).close()
        sign_in_url = _sign_in_url_from(ben, hub, ben_prefix, route)

        # Ada opens the link from Ben's server and signs in to Pomerium:
        # Pomerium sends her token to Ben's callback in her browser, where
        # she has no login to Ben's server.
        page = ada.new_page()
        page.goto(sign_in_url)
        page.locator("#username").fill("alice")
        page.locator("#password").fill("alice-password")
        page.locator("#sign-in").click()
        page.wait_for_url(f"**{ben_prefix}pomerium/callback")
        status = page.locator('[data-pomerium="callback-status"]')
        expect(status).to_have_attribute("data-state", "error")
        expect(status).to_contain_text("Sign in to Jupyter in this browser")
        # The page removed the token from the address bar and history.
        assert "pomerium_jwt" not in page.url
        assert hub.store(BEN).entries() == []
    finally:
        ada.close()
        ben.close()

    log = hub.log_text()
    assert "pomerium_jwt=[secret]" in log
    for line in log.splitlines():
        if "pomerium_jwt=" in line:
            assert "pomerium_jwt=[secret]" in line, line


def test_shared_server_keeps_owner_binding(
    hub: Hub, browser: Browser, pomerium: PomeriumTestServer
) -> None:
    hub.start_server(ADA)
    hub.store(ADA).clear()
    route = _loopback_url(pomerium.route_url("app"))
    prefix = hub.server_prefix(ADA)
    hub.api("POST", f"users/{BEN}")
    response = hub.api("POST", f"shares/{ADA}/", json={"user": BEN})
    assert response.status_code in (200, 201), response.text
    ada = _hub_context(browser, hub, ADA)
    ben = _hub_context(browser, hub, BEN)
    try:
        _visit(ada, hub, prefix).close()
        page = _visit(ben, hub, prefix)
        # On a shared server the visitor is the current user, not the owner.
        identity = page.evaluate(
            """async (url) => {
                const xsrf = document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/)[1];
                const response = await fetch(url, {
                    credentials: "same-origin",
                    headers: {"X-XSRFToken": xsrf},
                });
                return (await response.json()).identity.username;
            }""",
            f"{prefix}api/me",
        )
        assert identity == BEN

        # Ben may not start a sign-in on Ada's server: his token would be
        # stored for her.
        query = _start_query(ben, hub, prefix, route)
        refused = _get_as(ben, hub, f"{prefix}pomerium/start?{query}")
        assert refused.status_code == 200
        assert f"This Jupyter server belongs to {ADA}" in refused.text

        # A flow Ada started cannot be completed in Ben's browser, although
        # Ben has a login to her server.
        sign_in_url = _sign_in_url_from(ada, hub, prefix, route)
        page.goto(sign_in_url)
        page.locator("#username").fill("bob")
        page.locator("#password").fill("bob-password")
        page.locator("#sign-in").click()
        page.wait_for_url(f"**{prefix}pomerium/callback")
        status = page.locator('[data-pomerium="callback-status"]')
        expect(status).to_have_attribute("data-state", "error")
        expect(status).to_contain_text("started by another Jupyter user")
        assert hub.store(ADA).entries() == []
    finally:
        ben.close()
        ada.close()
        hub.api("DELETE", f"shares/{ADA}/", params={"user": BEN})
    assert "Rejected a Pomerium sign-in completion for Jupyter user ben" in (
        hub.log_text()
    )


def test_named_server_sign_in(
    hub: Hub, browser: Browser, pomerium: PomeriumTestServer
) -> None:
    hub.start_server(ADA, NAMED_SERVER)
    hub.store(ADA).clear()
    prefix = hub.server_prefix(ADA, NAMED_SERVER)
    context = _hub_context(browser, hub, ADA)
    try:
        page = _open_notebook(context, hub, prefix, SIGN_IN_NOTEBOOK)
        _run_cell(page, 0)
        _sign_in_through_widget(page, "alice")
        status = page.locator(WIDGET).first.locator('[data-pomerium="status"]')
        expect(status).to_have_text("Signed in as alice")
        _run_cell(page, 1)
        output = page.locator(".jp-OutputArea-output", has_text="upstream user:")
        expect(output).to_contain_text("upstream user: alice", timeout=KERNEL_TIMEOUT)
    finally:
        context.close()
    entries = hub.store(ADA).entries()
    assert [entry.token.user for entry in entries] == ["alice"]
    assert f"(Jupyter user {ADA})" in hub.log_text()


def test_allow_list_without_hub_host(
    hub: Hub, browser: Browser, closed_pomerium: PomeriumTestServer
) -> None:
    hub.start_server(ADA)
    hub.store(ADA).clear()
    prefix = hub.server_prefix(ADA)
    context = _hub_context(browser, hub, ADA)
    try:
        page = _open_notebook(context, hub, prefix, DENIED_NOTEBOOK)
        _run_cell(page, 0)
        widget = page.locator(WIDGET).first
        sign_in = widget.locator('[data-pomerium="sign-in"]')
        expect(sign_in).to_be_enabled(timeout=KERNEL_TIMEOUT)
        with page.expect_popup() as popup_info:
            sign_in.click()
        popup = popup_info.value
        popup_error = popup.locator('[data-pomerium="start-error"]')
        expect(popup_error).to_contain_text(f"  - {HUB_HOST}\n")
        status = widget.locator('[data-pomerium="status"]')
        expect(status).to_contain_text("programmatic_redirect_domain_whitelist")
        # The line for the Pomerium admin stands on a line of its own.
        assert f"\n  - {HUB_HOST}\n" in status.inner_text()
    finally:
        context.close()
    assert hub.store(ADA).entries() == []


def _run_papermill(
    tmp_path: Path, route: str, token_file: Path | None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    source = tmp_path / "headless.ipynb"
    output = tmp_path / f"headless-{secrets.token_hex(4)}.ipynb"
    _write_notebook(source, *_login_sources(route))
    env = dict(os.environ)
    env["POMERIUM_JUPYTER_CACHE_DIR"] = str(tmp_path / "headless-cache")
    env.pop("POMERIUM_JUPYTER_TOKEN", None)
    env.pop("POMERIUM_JUPYTER_TOKEN_FILE", None)
    if token_file is not None:
        env["POMERIUM_JUPYTER_TOKEN_FILE"] = str(token_file)
    result = subprocess.run(
        [sys.executable, "-m", "papermill", str(source), str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return result, json.loads(output.read_text())


def test_papermill_with_service_account(
    tmp_path: Path, pomerium: PomeriumTestServer
) -> None:
    route = _loopback_url(pomerium.route_url("app"))
    token = pomerium.mint_service_account("robot")
    token_file = tmp_path / "pomerium-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)

    result, notebook = _run_papermill(tmp_path, route, token_file)
    assert result.returncode == 0, result.stderr
    outputs = json.dumps(notebook["cells"])
    assert "upstream user: robot" in outputs
    assert token not in outputs
    assert token not in result.stdout + result.stderr


def test_papermill_without_token_fails(
    tmp_path: Path, pomerium: PomeriumTestServer
) -> None:
    route = _loopback_url(pomerium.route_url("app"))
    result, notebook = _run_papermill(tmp_path, route, None)
    assert result.returncode != 0
    errors = [
        output
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert [error["ename"] for error in errors] == ["LoginRequired"]
    assert route in errors[0]["evalue"]
