"""The %pomerium magic in IPython's in-process shell, against the test Pomerium.

These run without a kernel, so the shell counts as a terminal: sign-ins that
need a widget are covered by test_kernel_real.py.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import pomerium_jupyter
from pomerium_jupyter import FileTokenStore, LoginRequired, PomeriumError, Token
from pomerium_jupyter._protocol import deployment_key, origin_of
from pomerium_jupyter.kernel import _magics
from pomerium_jupyter.testing import PomeriumTestServer, ScriptedBrowser


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "pomerium_jupyter")
    yield ipython
    ipython.run_line_magic("unload_ext", "pomerium_jupyter")


def sign_in_alice(server: PomeriumTestServer, route: str) -> Token:
    """Store a fresh token for alice the way the server extension does."""
    sign_in_url = httpx.get(
        f"{route}/.pomerium/api/v1/login",
        params={"pomerium_redirect_uri": "http://127.0.0.1/"},
    ).text
    deployment = deployment_key(route, sign_in_url)
    token = Token(server.mint_token("alice"))
    store = FileTokenStore()
    store.put(deployment, token)
    store.remember_route(origin_of(route), deployment)
    return token


@pytest.fixture
def alice_route(pomerium_server: PomeriumTestServer) -> tuple[str, Token]:
    """Return the test server's "app" route and the token stored for alice there."""
    route = pomerium_server.route_url("app")
    return route, sign_in_alice(pomerium_server, route)


def magic_output(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str
) -> str:
    """Run `%pomerium line` and return what it printed to stdout."""
    shell.run_line_magic("pomerium", line)
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", "the following arguments are required: action"),
        ("logn http://a.example", "Unknown %pomerium command 'logn'"),
        ("login", "%pomerium login needs the route URL"),
        ("wait", "%pomerium wait needs the route URL"),
        ("whoami", "%pomerium whoami needs the route URL"),
        ("login ftp://a.example", "Invalid Pomerium route URL 'ftp://a.example'"),
        ("login http://a.example --method popup", "Invalid --method 'popup'"),
        ("login http://a.example --timeout 5", "--timeout applies only to"),
        ("wait http://a.example --method paste", "--method applies only to"),
        ("status --async", "--async applies only to %pomerium login"),
        ("status http://a.example", "%pomerium status takes no URL"),
        ("wait http://a.example --timeout 0", "Invalid --timeout 0"),
        ("wait http://a.example --timeout soon", "invalid float value: 'soon'"),
        ("login http://a.example --ca-file /nonexistent.pem", "CA file"),
        ("login http://a.example --bogus", "unrecognized arguments: --bogus"),
    ],
)
def test_magic_usage_errors(shell: InteractiveShell, line: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("pomerium", line)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_magic_ca_file_with_insecure(shell: InteractiveShell, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("placeholder")
    with pytest.raises(UsageError, match="contradict each other"):
        shell.run_line_magic(
            "pomerium", f"login http://a.example --ca-file {bundle} --insecure"
        )


def test_magic_widget_method_in_terminal(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="--method widget needs a notebook"):
        shell.run_line_magic("pomerium", "login http://a.example --method widget")


def test_magic_help_lists_options(shell: InteractiveShell) -> None:
    doc = shell.find_line_magic("pomerium").__doc__
    for option in ("--async", "--method", "--ca-file", "--insecure", "--timeout"):
        assert option in doc
    assert "seconds to wait" in doc


def test_status_without_sign_in(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    out = magic_output(shell, capsys, "status")
    assert out == "Not signed in to any Pomerium deployment.\n"


def test_status_lists_deployment(
    shell: InteractiveShell,
    alice_route: tuple[str, Token],
    capsys: pytest.CaptureFixture[str],
) -> None:
    route, token = alice_route
    out = magic_output(shell, capsys, "status")
    assert out.startswith("Signed in to 1 Pomerium deployment:\n")
    assert ": alice, signed in 0 s ago" in out
    assert f"routes: {route}" in out
    assert token.value not in out


def unsigned_token(claims: dict[str, Any]) -> Token:
    """Build a token with arbitrary claims, as a hostile route could hand out."""
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    payload = json.dumps(claims).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return Token(f"{header}.{body}.sig")


@pytest.mark.parametrize("expiry", [1e30, 1e400, -1e30])
def test_status_survives_odd_expiry(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], expiry: float
) -> None:
    store = FileTokenStore()
    odd = unsigned_token({"email": "mallory@example.com", "exp": expiry})
    store.put("https://odd.example", odd)
    store.put("https://b.example", unsigned_token({"email": "alice@example.com"}))
    out = magic_output(shell, capsys, "status")
    assert "https://odd.example: mallory@example.com" in out
    assert "https://b.example: alice@example.com" in out
    assert odd.value not in out


def test_status_mentions_service_account(
    shell: InteractiveShell,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POMERIUM_JUPYTER_TOKEN", "service-account-secret")
    out = magic_output(shell, capsys, "status")
    assert "service-account token instead" in out
    assert "service-account-secret" not in out


def test_login_returns_client_for_stored_token(
    shell: InteractiveShell,
    alice_route: tuple[str, Token],
    capsys: pytest.CaptureFixture[str],
) -> None:
    route, token = alice_route
    client = shell.run_line_magic("pomerium", f"login {route}")
    out = capsys.readouterr().out
    assert isinstance(client, httpx.Client)
    assert out == "Signed in to 127.0.0.1 as alice.\n"
    with client:
        response = client.get("/hello")
    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    assert token.value not in out


def test_login_async_returns_async_client(
    shell: InteractiveShell, alice_route: tuple[str, Token]
) -> None:
    route, _ = alice_route
    client = shell.run_line_magic("pomerium", f"login {route} --async")
    assert isinstance(client, httpx.AsyncClient)


def test_login_noninteractive_returns_client_then_raises(
    shell: InteractiveShell,
    pomerium_server: PomeriumTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CI", "true")
    route = pomerium_server.route_url("app")
    client = shell.run_line_magic("pomerium", f"login {route}")
    assert "requests to it will raise LoginRequired" in capsys.readouterr().out
    with client, pytest.raises(LoginRequired, match="non-interactive"):
        client.get("/hello")


def test_login_paste_in_terminal(
    shell: InteractiveShell,
    pomerium_server: PomeriumTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    route = pomerium_server.route_url("app")
    monkeypatch.setattr(_magics, "can_prompt", lambda: True)
    browser = ScriptedBrowser("alice", deliver=False)
    pasted: list[str] = []

    def answer(_prompt: str) -> str:
        shown = capsys.readouterr().out
        match = re.search(r"^  (http\S+)$", shown, re.MULTILINE)
        assert match is not None, shown
        browser(match.group(1))
        assert browser.final_url is not None, browser.error
        pasted.append(browser.final_url)
        return browser.final_url

    monkeypatch.setattr("builtins.input", answer)
    client = shell.run_line_magic("pomerium", f"login {route} --method paste")
    out = capsys.readouterr().out
    assert "Signed in to 127.0.0.1 as alice." in out
    with client:
        assert client.get("/").json()["user"] == "alice"
    token = re.search(r"pomerium_jwt=([^&]+)", pasted[0])
    assert token is not None
    assert token.group(1) not in out
    browser.close()


def test_logout_route(
    shell: InteractiveShell,
    alice_route: tuple[str, Token],
    capsys: pytest.CaptureFixture[str],
) -> None:
    route, _ = alice_route
    client = shell.run_line_magic("pomerium", f"login {route}")
    with client:
        assert client.get("/").status_code == 200
    capsys.readouterr()
    out = magic_output(shell, capsys, f"logout {route}")
    assert out.startswith("Signed out of http://127.0.0.1:")
    assert FileTokenStore().entries() == []
    # The client made by %pomerium login dropped its in-memory copy too.
    auth = client.auth
    assert isinstance(auth, pomerium_jupyter.PomeriumAuth)
    assert auth._token is None
    assert "nothing to remove" in magic_output(shell, capsys, f"logout {route}")


def test_logout_all(
    shell: InteractiveShell,
    pomerium_server_factory: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for _ in range(2):
        server = pomerium_server_factory()
        sign_in_alice(server, server.route_url("app"))
    out = magic_output(shell, capsys, "logout")
    assert out == "Signed out of 2 Pomerium deployments.\n"
    assert FileTokenStore().entries() == []


def test_whoami_prints_user(
    shell: InteractiveShell,
    alice_route: tuple[str, Token],
    capsys: pytest.CaptureFixture[str],
) -> None:
    route, token = alice_route
    out = magic_output(shell, capsys, f"whoami {route}")
    assert "user: alice\n" in out
    assert "email: alice@example.com\n" in out
    assert token.value not in out


def test_whoami_without_sign_in(
    shell: InteractiveShell, pomerium_server: PomeriumTestServer
) -> None:
    route = pomerium_server.route_url("app")
    with pytest.raises(UsageError, match=r"Not signed in to .*%pomerium login"):
        shell.run_line_magic("pomerium", f"whoami {route}")


def test_whoami_revoked_token_is_one_sentence(
    shell: InteractiveShell,
    pomerium_server: PomeriumTestServer,
    alice_route: tuple[str, Token],
    capsys: pytest.CaptureFixture[str],
) -> None:
    route, token = alice_route
    assert token.session_id is not None
    pomerium_server.revoke(token.session_id)
    with pytest.raises(PomeriumError) as caught:
        shell.run_line_magic("pomerium", f"whoami {route}")
    shown = caught.value._render_traceback_()  # type: ignore[attr-defined]
    assert shown == [f"PomeriumError: {caught.value}"]
    assert "no longer accepts the stored token" in shown[0]
    # In a cell, IPython prints that line in place of a traceback.
    result = shell.run_cell(f"%pomerium whoami {route}")
    assert isinstance(result.error_in_exec, PomeriumError)
    captured = capsys.readouterr()
    shown_text = captured.out + captured.err
    assert "no longer accepts the stored token" in shown_text
    assert "Traceback" not in shown_text
    assert token.value not in shown_text


def test_unreachable_route_is_one_sentence(shell: InteractiveShell) -> None:
    with pytest.raises(pomerium_jupyter.PomeriumUnreachable) as caught:
        shell.run_line_magic("pomerium", "whoami http://127.0.0.1:9")
    shown = caught.value._render_traceback_()  # type: ignore[attr-defined]
    assert len(shown) == 1
    assert shown[0].startswith("PomeriumUnreachable: Could not reach")


def test_wait_noninteractive_raises_login_required(
    shell: InteractiveShell,
    pomerium_server: PomeriumTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POMERIUM_JUPYTER_NONINTERACTIVE", "1")
    route = pomerium_server.route_url("app")
    with pytest.raises(LoginRequired, match="non-interactive"):
        shell.run_line_magic("pomerium", f"wait {route}")


def test_wait_times_out(
    shell: InteractiveShell,
    pomerium_server: PomeriumTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_magics, "can_prompt", lambda: True)
    route = pomerium_server.route_url("app")
    with pytest.raises(pomerium_jupyter.LoginTimeout, match="within 1 s"):
        shell.run_line_magic("pomerium", f"wait {route} --timeout 0.6")


def test_unload_removes_magic(shell: InteractiveShell) -> None:
    shell.run_line_magic("unload_ext", "pomerium_jupyter")
    assert shell.find_line_magic("pomerium") is None
    shell.run_line_magic("load_ext", "pomerium_jupyter")
    assert shell.find_line_magic("pomerium") is not None
