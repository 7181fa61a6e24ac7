"""The login widget and the widget login method, in this process."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pomerium_jupyter import FileTokenStore, LoginRequired, LoginTimeout, Token
from pomerium_jupyter._protocol import deployment_key, origin_of
from pomerium_jupyter.kernel import LoginWidget, WidgetLogin, _environment, _methods
from pomerium_jupyter.kernel._environment import FrontendReport
from pomerium_jupyter.testing import PomeriumTestServer, ScriptedBrowser

SYNCED = {"route", "host", "status", "user", "message", "method", "expires_at"}
JS_PATH = Path(_methods.__file__).with_name("login_widget.js")


def discover(route: str) -> tuple[str, str]:
    sign_in_url = httpx.get(
        f"{route}/.pomerium/api/v1/login",
        params={"pomerium_redirect_uri": "http://127.0.0.1/"},
    ).text
    return deployment_key(route, sign_in_url), sign_in_url


class SentMessages:
    """Collects the custom messages a widget sends to the page."""

    def __init__(self, widget: LoginWidget) -> None:
        self.messages: list[dict[str, Any]] = []
        widget.send = self.messages.append  # type: ignore[method-assign]


def test_widget_state_has_only_public_traits(
    pomerium_server: PomeriumTestServer,
) -> None:
    route = pomerium_server.route_url("app")
    deployment, _ = discover(route)
    store = FileTokenStore()
    token = Token(pomerium_server.mint_token("alice"))
    store.put(deployment, token)
    store.remember_route(origin_of(route), deployment)

    widget = LoginWidget(route, store=store, method="widget")
    state = widget.get_state()
    own = {name for name in state if not name.startswith("_")}
    assert own - {"layout", "tabbable", "tooltip"} == SYNCED
    assert state["status"] == "signed-in"
    assert state["user"] == "alice"
    assert state["host"] == "127.0.0.1"
    assert token.value not in json.dumps(state, default=str)
    for name in SYNCED:
        assert widget.trait_metadata(name, "help"), name
    widget.close()


def test_widget_state_drops_infinite_expiry() -> None:
    # An exp claim of 1e400 decodes to infinity, which JSON cannot carry.
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    payload = b'{"email": "mallory@example.com", "exp": 1e400}'
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    store = FileTokenStore()
    store.put("https://odd.example", Token(f"{header}.{body}.sig"))
    store.remember_route("https://odd.example", "https://odd.example")

    widget = LoginWidget("https://odd.example", store=store, method="widget")
    state = widget.get_state()
    assert state["status"] == "signed-in"
    assert state["user"] == "mallory@example.com"
    assert state["expires_at"] is None
    json.dumps(state, default=str, allow_nan=False)
    widget.close()


def test_widget_esm_is_shipped_script() -> None:
    widget = LoginWidget("http://127.0.0.1:1", store=FileTokenStore())
    assert widget.get_state()["_esm"] == JS_PATH.read_text(encoding="utf-8")
    assert widget.status == "signed-out"
    widget.close()


def test_widget_script_selectors() -> None:
    script = JS_PATH.read_text(encoding="utf-8")
    for role in ("sign-in", "link", "status", "sign-out", "retry", "paste-input"):
        assert f'"{role}"' in script, role
    assert 'credentials: "same-origin"' in script
    assert '"X-XSRFToken"' in script
    assert "new BroadcastChannel(CHANNEL_NAME)" in script
    assert "The sign-in window was closed before the sign-in finished." in script


def test_widget_signed_in_message_rereads_store(
    pomerium_server: PomeriumTestServer,
) -> None:
    route = pomerium_server.route_url("app")
    deployment, _ = discover(route)
    store = FileTokenStore()
    store.remember_route(origin_of(route), deployment)
    widget = LoginWidget(route, store=store)
    assert widget.status == "signed-out"
    store.put(deployment, Token(pomerium_server.mint_token("bob")))
    widget._handle_message(widget, {"event": "signed-in"}, [])
    assert widget.status == "signed-in"
    assert widget.user == "bob"
    widget.close()


def test_widget_sign_out_message(pomerium_server: PomeriumTestServer) -> None:
    route = pomerium_server.route_url("app")
    deployment, _ = discover(route)
    store = FileTokenStore()
    store.put(deployment, Token(pomerium_server.mint_token("alice")))
    store.remember_route(origin_of(route), deployment)
    forgotten: list[str] = []
    widget = LoginWidget(route, store=store, on_sign_out=forgotten.append)
    widget._handle_message(widget, {"event": "signed-out"}, [])
    assert widget.status == "signed-out"
    assert widget.user is None
    assert store.get(deployment) is None
    assert forgotten == [deployment]
    widget.close()


def test_widget_method_report() -> None:
    report = FrontendReport()
    widget = LoginWidget("http://127.0.0.1:1", store=FileTokenStore(), report=report)
    widget._handle_message(widget, {"event": "method", "method": "paste"}, [])
    assert report.method == "paste"
    assert widget.method == "paste"
    widget._handle_message(widget, {"event": "method", "method": "steal"}, [])
    assert report.method == "paste"
    widget.close()


def test_widget_paste_back(pomerium_server: PomeriumTestServer) -> None:
    route = pomerium_server.route_url("app")
    store = FileTokenStore()
    widget = LoginWidget(route, store=store, method="paste")
    sent = SentMessages(widget)
    widget._handle_message(widget, {"event": "paste-start"}, [])
    assert widget.status == "pending"
    assert len(sent.messages) == 1
    assert sent.messages[0]["event"] == "sign-in-url"
    sign_in_url = sent.messages[0]["url"]
    # The sign-in URL travels only in the custom message, never in state.
    assert sign_in_url not in json.dumps(widget.get_state(), default=str)

    browser = ScriptedBrowser("alice", deliver=False)
    browser(sign_in_url)
    assert browser.final_url is not None, browser.error
    browser.close()

    widget._handle_message(widget, {"event": "paste", "address": "http://x/?a=b"}, [])
    assert widget.status == "pending"
    assert "no state parameter" in widget.message

    widget._handle_message(widget, {"event": "paste", "address": browser.final_url}, [])
    assert widget.status == "signed-in"
    assert widget.user == "alice"
    token_value = browser.final_url.split("pomerium_jwt=")[1].split("&")[0]
    assert token_value not in json.dumps(widget.get_state(), default=str)
    deployment, _ = discover(route)
    stored = store.get(deployment)
    assert stored is not None
    assert stored.user == "alice"
    widget.close()


def test_widget_paste_without_start() -> None:
    widget = LoginWidget("http://127.0.0.1:1", store=FileTokenStore())
    widget._handle_message(widget, {"event": "paste", "address": "x"}, [])
    assert widget.status == "error"
    assert "No paste-back sign-in is in progress" in widget.message
    widget.close()


def test_widget_paste_start_unreachable() -> None:
    widget = LoginWidget("http://127.0.0.1:9", store=FileTokenStore(), method="paste")
    widget._handle_message(widget, {"event": "paste-start"}, [])
    assert widget.status == "error"
    assert widget.message.startswith("Could not reach http://127.0.0.1:9")
    widget.close()


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_methods, "can_prompt", lambda: True)


def test_widget_login_waits_for_store(
    pomerium_server: PomeriumTestServer, interactive: None
) -> None:
    route = pomerium_server.route_url("app")
    deployment, _ = discover(route)
    store = FileTokenStore()
    shown: list[Any] = []
    method = WidgetLogin(
        store=store, poll_interval=0.05, display=shown.append, report=FrontendReport()
    )
    token = Token(pomerium_server.mint_token("alice"))

    def sign_in_later() -> None:
        time.sleep(0.5)
        store.put(deployment, token)

    writer = threading.Thread(target=sign_in_later)
    writer.start()
    started = time.monotonic()
    with httpx.Client() as client:
        result = method.login(route, client)
    writer.join()
    assert time.monotonic() - started >= 0.45
    assert result.token == token
    assert deployment_key(route, result.sign_in_url) == deployment
    assert len(shown) == 1
    widget = shown[0]
    assert isinstance(widget, LoginWidget)
    assert widget.status == "signed-in"
    assert widget.user == "alice"
    assert store.deployment_for(origin_of(route)) == deployment
    widget.close()


def test_widget_login_timeout(
    pomerium_server: PomeriumTestServer, interactive: None
) -> None:
    route = pomerium_server.route_url("app")
    shown: list[Any] = []
    method = WidgetLogin(
        store=FileTokenStore(),
        timeout=0.3,
        poll_interval=0.05,
        display=shown.append,
        report=FrontendReport(),
    )
    with httpx.Client() as client, pytest.raises(LoginTimeout):
        method.login(route, client)
    assert shown[0].status == "error"
    assert "did not finish within" in shown[0].message
    shown[0].close()


def test_widget_login_noninteractive(
    pomerium_server: PomeriumTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POMERIUM_JUPYTER_NONINTERACTIVE", "1")
    shown: list[Any] = []
    method = WidgetLogin(store=FileTokenStore(), display=shown.append)
    with httpx.Client() as client, pytest.raises(LoginRequired):
        method.login(pomerium_server.route_url("app"), client)
    assert shown == []


def test_can_prompt_reads_allow_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeKernel:
        def __init__(self, allow: bool) -> None:
            self.allow = allow

        def get_parent(self, channel: str) -> dict[str, Any]:
            return {"content": {"allow_stdin": self.allow}}

    monkeypatch.setattr(_environment, "current_kernel", lambda: FakeKernel(False))
    assert _environment.can_prompt() is False
    monkeypatch.setattr(_environment, "current_kernel", lambda: FakeKernel(True))
    assert _environment.can_prompt() is True
    monkeypatch.setenv("CI", "1")
    assert _environment.can_prompt() is False


def test_detect_frontend(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _environment.VSCODE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_environment, "current_kernel", lambda: None)
    assert _environment.detect_frontend() == "terminal"
    monkeypatch.setattr(_environment, "current_kernel", lambda: object())
    assert _environment.detect_frontend() == "jupyter"
    monkeypatch.setenv("VSCODE_PID", "1234")
    assert _environment.detect_frontend() == "vscode"
