"""The login widget's script in Chromium, against a stand-in server extension.

The page loads the shipped ES module with a small model object in place of
anywidget's, and a local HTTP server serves the extension's endpoints, so
each test controls what the script sees and records what it sends.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from _jupyter_process import CHROMIUM, launch_chromium

from pomerium_jupyter.kernel import _widget

pytestmark = pytest.mark.browser

ROUTE = "http://127.0.0.1:9/"
XSRF = "2|test|xsrf|1"
SCRIPT = Path(_widget.__file__).with_name("login_widget.js").read_text(encoding="utf-8")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<script id="jupyter-config-data" type="application/json">{"baseUrl": "/base/"}</script>
</head><body><div id="root"></div>
<script type="module">
import widget from "/widget.js";
const state = %(state)s;
const listeners = {};
window.sent = [];
const model = {
  get: (name) => state[name],
  on: (event, callback) => { (listeners[event] ||= []).push(callback); },
  off: () => {},
  send: (content) => { window.sent.push(content); },
};
window.setTrait = (name, value) => {
  state[name] = value;
  (listeners["change:" + name] || []).forEach((callback) => callback());
};
window.emit = (content) => {
  (listeners["msg:custom"] || []).forEach((callback) => callback(content));
};
widget.render({ model, el: document.getElementById("root") });
</script></body></html>
"""


@dataclass
class Extension:
    """The stand-in extension's responses, and the requests it received."""

    has_extension: bool = True
    request_state: dict[str, Any] = field(
        default_factory=lambda: {"status": "pending", "message": None, "user": None}
    )
    # False makes the request-state endpoint answer 404, as after a restart.
    request_known: bool = True
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)

    def page(self) -> bytes:
        state = {
            "route": ROUTE,
            "host": "127.0.0.1",
            "status": "signed-out",
            "user": None,
            "message": "",
            "method": "auto",
            "expires_at": None,
            **self.traits,
        }
        return (PAGE % {"state": json.dumps(state)}).encode()

    def seen(self, path_prefix: str) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[1].startswith(path_prefix)]


def make_handler(extension: Extension) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def reply(
            self, status: int, body: bytes, content_type: str, cookie: bool = False
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if cookie:
                self.send_header("Set-Cookie", f"_xsrf={XSRF}; Path=/")
            self.end_headers()
            self.wfile.write(body)

        def record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            extension.requests.append((self.command, self.path, headers, body))

        def do_GET(self) -> None:
            self.record()
            path = urlsplit(self.path).path
            if path == "/page":
                self.reply(200, extension.page(), "text/html", cookie=True)
            elif path == "/widget.js":
                self.reply(200, SCRIPT.encode(), "text/javascript")
            elif path == "/base/pomerium/api/status" and extension.has_extension:
                self.reply(200, b'{"deployments": []}', "application/json")
            elif path == "/base/pomerium/start":
                self.reply(200, b"<p>Signing in</p>", "text/html")
            elif (
                path.startswith("/base/pomerium/api/requests/")
                and extension.request_known
            ):
                body = json.dumps({**extension.request_state, "expires_in": 300})
                self.reply(200, body.encode(), "application/json")
            else:
                self.reply(404, b"{}", "application/json")

        def do_POST(self) -> None:
            self.record()
            self.reply(200, b'{"deployments": []}', "application/json")

    return Handler


@pytest.fixture
def extension() -> Iterator[tuple[Extension, str]]:
    state = Extension()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def page() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context()
        yield context.new_page()
        context.close()
        browser.close()


def selector(role: str) -> str:
    return f'[data-pomerium="{role}"]'


def test_popup_flow_signs_in(page: Any, extension: tuple[Extension, str]) -> None:
    state, origin = extension
    page.goto(f"{origin}/page")
    page.wait_for_function("window.sent.some((m) => m.event === 'method')")
    assert page.evaluate("window.sent") == [{"event": "method", "method": "widget"}]
    assert page.text_content(selector("sign-in")) == "Sign in to 127.0.0.1"
    assert "popup through this Jupyter server" in page.text_content(selector("method"))

    with page.expect_popup() as popup_info:
        page.click(selector("sign-in"))
    popup = popup_info.value
    start = urlsplit(popup.url)
    query = {k: v[0] for k, v in parse_qs(start.query).items()}
    assert start.path == "/base/pomerium/start"
    assert query["route"] == ROUTE
    assert query["origin"] == origin
    assert query["_xsrf"] == XSRF
    request_id = query["request"]
    assert len(request_id) == 32

    page.wait_for_function(
        "document.querySelector('[data-pomerium=status]').textContent"
        ".includes('s left')"
    )
    state.request_state = {"status": "done", "message": None, "user": "alice"}
    page.wait_for_function("window.sent.some((m) => m.event === 'signed-in')")
    assert page.text_content(selector("status")) == "Signed in as alice"
    assert page.is_visible(selector("sign-out"))
    assert not page.is_visible(selector("sign-in"))

    polls = state.seen(f"/base/pomerium/api/requests/{request_id}")
    assert polls
    for _, _, headers, _ in polls + state.seen("/base/pomerium/api/status"):
        assert headers.get("x-xsrftoken") == XSRF
        assert "_xsrf=" in headers.get("cookie", "")

    page.click(selector("sign-out"))
    page.wait_for_function("window.sent.some((m) => m.event === 'signed-out')")
    logout = state.seen("/base/pomerium/api/logout")
    assert len(logout) == 1
    assert logout[0][0] == "POST"
    assert logout[0][2].get("x-xsrftoken") == XSRF
    assert json.loads(logout[0][3]) == {"route": ROUTE}


def test_blocked_popup_shows_link(page: Any, extension: tuple[Extension, str]) -> None:
    _, origin = extension
    page.goto(f"{origin}/page")
    page.wait_for_function("window.sent.length > 0")
    page.evaluate("window.open = () => null")
    page.click(selector("sign-in"))
    link = page.locator(selector("link"))
    link.wait_for(state="visible")
    assert link.text_content() == "Open the sign-in page"
    assert link.get_attribute("target") == "_blank"
    href = link.get_attribute("href")
    assert href.startswith("/base/pomerium/start?")
    assert f"_xsrf={XSRF.replace('|', '%7C')}" in href


def test_closed_popup_offers_retry(page: Any, extension: tuple[Extension, str]) -> None:
    _, origin = extension
    page.goto(f"{origin}/page")
    page.wait_for_function("window.sent.length > 0")
    with page.expect_popup() as popup_info:
        page.click(selector("sign-in"))
    popup_info.value.close()
    page.locator(selector("retry")).wait_for(state="visible", timeout=15000)
    assert (
        page.text_content(selector("status"))
        == "The sign-in window was closed before the sign-in finished."
    )
    with page.expect_popup():
        page.click(selector("retry"))
    assert "s left" in page.text_content(selector("status"))


def test_forgotten_flow_fails_fast(page: Any, extension: tuple[Extension, str]) -> None:
    # A restarted Jupyter server has lost its flows and answers 404. Without
    # a failure the widget would wait out the whole flow life of 6 minutes.
    state, origin = extension
    page.goto(f"{origin}/page")
    page.wait_for_function("window.sent.length > 0")
    with page.expect_popup():
        page.click(selector("sign-in"))
    # Polls are a second apart, so by the second one the widget has read
    # the pending state of the first.
    while len(state.seen("/base/pomerium/api/requests/")) < 2:
        page.wait_for_timeout(100)
    assert "s left" in page.text_content(selector("status"))
    state.request_known = False
    page.locator(selector("retry")).wait_for(state="visible", timeout=5000)
    status = page.text_content(selector("status"))
    assert "no longer knows this sign-in" in status


def test_error_state_shows_sentence(
    page: Any, extension: tuple[Extension, str]
) -> None:
    state, origin = extension
    sentence = "Pomerium at http://127.0.0.1:9 rejected the callback URL with 400."
    state.request_state = {"status": "error", "message": sentence, "user": None}
    page.goto(f"{origin}/page")
    page.wait_for_function("window.sent.length > 0")
    with page.expect_popup():
        page.click(selector("sign-in"))
    page.locator(selector("retry")).wait_for(state="visible")
    assert page.text_content(selector("status")) == sentence


def test_paste_back_without_extension(
    page: Any, extension: tuple[Extension, str]
) -> None:
    state, origin = extension
    state.has_extension = False
    page.goto(f"{origin}/page")
    page.wait_for_function("window.sent.length > 0")
    assert page.evaluate("window.sent") == [{"event": "method", "method": "paste"}]
    page.evaluate("window.setTrait('method', 'paste')")
    page.click(selector("sign-in"))
    assert page.evaluate("window.sent.at(-1)") == {"event": "paste-start"}
    page.evaluate(
        "window.emit({event: 'sign-in-url', url: 'http://127.0.0.1:9/sign_in'})"
    )
    link = page.locator(selector("link"))
    link.wait_for(state="visible")
    assert link.get_attribute("href") == "http://127.0.0.1:9/sign_in"
    address = "http://127.0.0.1:50000/cb?state=s&pomerium_jwt=secret-value"
    page.fill(selector("paste-input"), address)
    page.press(selector("paste-input"), "Enter")
    assert page.evaluate("window.sent.at(-1)") == {"event": "paste", "address": address}
    assert page.input_value(selector("paste-input")) == ""
    page.evaluate("window.setTrait('user', 'alice')")
    page.evaluate("window.setTrait('status', 'signed-in')")
    assert page.text_content(selector("status")) == "Signed in as alice"
    assert not page.is_visible(selector("link"))
    assert page.get_attribute(selector("link"), "href") is None
