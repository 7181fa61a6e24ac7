"""The `jupyter pomerium` command line, in process and as a real command."""

import signal
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pomerium_jupyter._cli import main
from pomerium_jupyter.testing import (
    PomeriumTestServer,
    RecordingServer,
    ScriptedBrowser,
)

Factory = Callable[..., PomeriumTestServer]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> ScriptedBrowser:
    scripted = ScriptedBrowser("alice")
    monkeypatch.setattr(webbrowser, "open", scripted)
    return scripted


def test_login_status_token_logout(
    pomerium_server: PomeriumTestServer,
    browser: ScriptedBrowser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    route = pomerium_server.route_url()
    assert main(["login", route]) == 0
    err = capsys.readouterr().err
    assert f"Signed in to {route} as alice." in err
    assert len(browser.opened) == 1

    assert main(["token", route]) == 0
    token = capsys.readouterr().out.strip()
    response = httpx.get(f"{route}/x", headers={"Authorization": f"Pomerium {token}"})
    assert response.json()["user"] == "alice"

    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert pomerium_server.authenticate_url in status
    assert "user:       alice" in status
    assert f"route:      {route}" in status
    assert token not in status

    assert main(["logout", route]) == 0
    assert "Signed out of" in capsys.readouterr().out
    assert main(["status"]) == 0
    assert "Not signed in" in capsys.readouterr().out


def test_login_force_signs_in_again(
    pomerium_server: PomeriumTestServer, browser: ScriptedBrowser
) -> None:
    route = pomerium_server.route_url()
    assert main(["login", route]) == 0
    assert main(["login", route]) == 0
    assert len(browser.opened) == 1
    assert main(["login", "--force", route]) == 0
    assert len(browser.opened) == 2


def test_logout_all(
    pomerium_server_factory: Factory,
    browser: ScriptedBrowser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for server in (pomerium_server_factory(), pomerium_server_factory()):
        assert main(["login", server.route_url()]) == 0
    capsys.readouterr()
    assert main(["logout"]) == 0
    assert "Removed 2 stored token(s)." in capsys.readouterr().out


def test_not_a_route(capsys: pytest.CaptureFixture[str]) -> None:
    with RecordingServer() as other:
        assert main(["login", "--no-browser", other.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ")
    assert "does not look like a Pomerium route" in err


def test_callback_host_not_allowed(
    pomerium_server_factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = pomerium_server_factory(allow_list=["jupyter.example.com"])
    assert main(["login", "--no-browser", server.route_url()]) == 1
    err = capsys.readouterr().err
    assert "- 127.0.0.1" in err
    assert "programmatic_redirect_domain_whitelist" in err


def test_invalid_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "app.example.com"]) == 2
    assert "Invalid Pomerium route URL" in capsys.readouterr().err


def test_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    with RecordingServer() as stopped:
        url = stopped.url
    assert main(["login", "--no-browser", url]) == 1
    assert "Could not reach" in capsys.readouterr().err


def test_paste_method(
    pomerium_server: PomeriumTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pasted = ScriptedBrowser("bob", deliver=False)

    def prompt(_: str) -> str:
        err = capsys.readouterr().err
        sign_in_url = err.split("\n")[1].strip()
        pasted(sign_in_url)
        assert pasted.final_url is not None
        return pasted.final_url

    monkeypatch.setattr("builtins.input", prompt)
    assert main(["login", "--method", "paste", pomerium_server.route_url()]) == 0
    assert "as bob." in capsys.readouterr().err


def test_jupyter_subcommand_and_test_server(tmp_path: Path) -> None:
    status = subprocess.run(
        ["jupyter", "pomerium", "status"], capture_output=True, text=True, check=False
    )
    assert status.returncode == 0, status.stderr
    assert "Not signed in" in status.stdout

    process = subprocess.Popen(
        [sys.executable, "-m", "pomerium_jupyter._cli", "test-server"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        route_line = next(line for line in lines if line.startswith("route app:"))
        route = route_line.split(": ", 1)[1].strip()
        login = httpx.get(
            f"{route}/.pomerium/api/v1/login",
            params={"pomerium_redirect_uri": "http://127.0.0.1:9/cb"},
        )
        assert login.status_code == 200
        assert "/.pomerium/sign_in?" in login.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
