"""Hostile local callers, non-interactive runs and damaged caches."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pomerium_jupyter import (
    LoginTimeout,
    LoopbackLogin,
    SignIn,
)
from pomerium_jupyter._cli import main
from pomerium_jupyter.testing import PomeriumTestServer, ScriptedBrowser

DEPLOYMENT = "https://authenticate.example.com#idp=test"


def callback_port(sign_in_url: str) -> int:
    callback = parse_qs(urlsplit(sign_in_url).query)["pomerium_redirect_uri"][0]
    port = urlsplit(callback).port
    assert port is not None
    return port


def stall_listener(port: int, stalled_connections: list[socket.socket]) -> None:
    """Open a connection to the listener and send only half a request line."""
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"GET /pomerium-callback/x HTTP/1.1\r\n")
    stalled_connections.append(stalled)


def login_in_thread(login: LoopbackLogin, route: str, seconds: float) -> object:
    """Run `login` in a thread and return its result or exception, or fail on a hang."""
    outcome: list[object] = []

    def run() -> None:
        try:
            with httpx.Client() as client:
                outcome.append(login.login(route, client))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the login still runs after {seconds} s"
    return outcome[0]


def test_loopback_survives_stalled_connection(
    pomerium_server: PomeriumTestServer,
) -> None:
    browser = ScriptedBrowser("alice", timeout=5)
    stalled_connections: list[socket.socket] = []

    def open_url(url: str) -> None:
        stall_listener(callback_port(url), stalled_connections)
        threading.Thread(target=browser, args=(url,), daemon=True).start()

    login = LoopbackLogin(browser=open_url, timeout=15, announce=lambda _: None)
    try:
        result = login_in_thread(login, pomerium_server.route_url(), 8)
    finally:
        for connection in stalled_connections:
            connection.close()
    assert isinstance(result, SignIn), result
    assert result.token.user == "alice"
    assert browser.error is None
    assert browser.delivery_status == 200


def test_loopback_timeout_with_stalled_connection(
    pomerium_server: PomeriumTestServer,
) -> None:
    stalled_connections: list[socket.socket] = []

    def open_url(url: str) -> None:
        stall_listener(callback_port(url), stalled_connections)

    login = LoopbackLogin(browser=open_url, timeout=1, announce=lambda _: None)
    try:
        result = login_in_thread(login, pomerium_server.route_url(), 8)
    finally:
        for connection in stalled_connections:
            connection.close()
    assert isinstance(result, LoginTimeout), result


@pytest.mark.parametrize("variable", ["POMERIUM_JUPYTER_NONINTERACTIVE", "CI"])
@pytest.mark.parametrize("command", ["login", "token"])
def test_cli_noninteractive_never_waits(
    pomerium_server: PomeriumTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    command: str,
) -> None:
    opened: list[str] = []
    monkeypatch.setenv(variable, "true")
    monkeypatch.setattr("webbrowser.open", opened.append)
    route = pomerium_server.route_url()
    started = time.monotonic()
    status = main([command, "--timeout", "5", route])
    assert time.monotonic() - started < 4
    assert status == 1
    assert opened == []
    assert "non-interactive" in capsys.readouterr().err


def test_cli_token_without_terminal_raises(
    pomerium_server: PomeriumTestServer, tmp_path: Path
) -> None:
    environment = {**os.environ, "POMERIUM_JUPYTER_CACHE_DIR": str(tmp_path)}
    environment["BROWSER"] = "true"
    route = pomerium_server.route_url()
    result = subprocess.run(
        [sys.executable, "-m", "pomerium_jupyter._cli", "token", route],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environment,
        timeout=15,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "non-interactive" in result.stderr
