"""Hostile local callers, non-interactive runs and damaged caches."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from base64 import urlsafe_b64encode
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pomerium_jupyter import (
    FileTokenStore,
    LoginTimeout,
    LoopbackLogin,
    PomeriumError,
    SignIn,
    Token,
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


KILLED_WRITER = """
import os, signal, sys
from pomerium_jupyter import FileTokenStore, Token

def die(source, target):
    os.kill(os.getpid(), signal.SIGKILL)

os.replace = die
FileTokenStore(sys.argv[1]).put(sys.argv[2], Token(sys.argv[3]))
"""


def write_and_die(cache: Path, deployment: str, value: str) -> None:
    """Run FileTokenStore.put in a process that is killed before its rename."""
    writer = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(cache), deployment, value],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert writer.returncode == -signal.SIGKILL, writer.stderr


def token_copies(cache: Path, value: str) -> list[Path]:
    return [
        path
        for path in cache.rglob("*")
        if path.is_file() and value in path.read_text(encoding="utf-8")
    ]


def test_killed_writer_keeps_old_token(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    store.put(DEPLOYMENT, Token("old-token-value"))
    write_and_die(tmp_path, DEPLOYMENT, "new-token-value")
    stored = store.get(DEPLOYMENT)
    assert stored is not None
    assert stored.value == "old-token-value"


@pytest.mark.parametrize("arguments", [["logout"], ["logout", "https://a.example"]])
def test_logout_removes_killed_writer_copies(
    tmp_path: Path, arguments: list[str]
) -> None:
    store = FileTokenStore(tmp_path)
    store.remember_route("https://a.example", DEPLOYMENT)
    store.put(DEPLOYMENT, Token("first-token-value"))
    write_and_die(tmp_path, DEPLOYMENT, "second-token-value")
    assert len(token_copies(tmp_path, "second-token-value")) == 1
    assert main(["--cache-dir", str(tmp_path), *arguments]) == 0
    assert token_copies(tmp_path, "first-token-value") == []
    assert token_copies(tmp_path, "second-token-value") == []


def test_logout_all_removes_orphan_copies(tmp_path: Path) -> None:
    write_and_die(tmp_path, DEPLOYMENT, "orphan-token-value")
    assert main(["--cache-dir", str(tmp_path), "logout"]) == 0
    assert token_copies(tmp_path, "orphan-token-value") == []


def test_cache_path_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(PomeriumError, match="Cannot use the token cache directory"):
        FileTokenStore(blocker).get(DEPLOYMENT)
    assert main(["--cache-dir", str(blocker), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: Cannot use the token cache directory")
    assert "POMERIUM_JUPYTER_CACHE_DIR" in err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to create a directory owned by another user",
)
def test_cache_owned_by_other_user(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o777)
    os.chown(foreign, 65534, 65534)
    store = FileTokenStore(foreign)
    with pytest.raises(PomeriumError, match="belongs to user id 65534"):
        store.put(DEPLOYMENT, Token("secret-token-value"))
    assert token_copies(foreign, "secret-token-value") == []


@pytest.mark.parametrize("claims", ['{"exp":1e400}', '{"exp":1e20}', '{"exp":-1}'])
def test_status_with_absurd_exp_claim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims: str
) -> None:
    payload = urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    token = Token(f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl")
    assert token.expires_at is None
    FileTokenStore(tmp_path).put(DEPLOYMENT, token)
    assert main(["--cache-dir", str(tmp_path), "status"]) == 0
    out = capsys.readouterr().out
    assert DEPLOYMENT in out
    assert "exp claim" not in out
