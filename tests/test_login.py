"""Loopback listener and paste-back login, driven without a browser."""

import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pomerium_jupyter import (
    CallbackError,
    LoginError,
    LoginTimeout,
    LoopbackLogin,
    PasteBackLogin,
)

ROUTE = "https://app.example.com"


class FakeLoginAPI:
    """Serves the login API like Pomerium and remembers the callback URL."""

    def __init__(self) -> None:
        self.callbacks: list[str] = []
        self.browser_threads: list[threading.Thread] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        callback = parse_qs(request.url.query.decode())["pomerium_redirect_uri"][0]
        self.callbacks.append(callback)
        return httpx.Response(
            200,
            text="https://authenticate.example.com/.pomerium/sign_in?x=1",
            headers={"content-type": "text/plain; charset=utf-8"},
        )

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def with_token(callback: str, token: str) -> str:
    separator = "&" if "?" in callback else "?"
    return f"{callback}{separator}pomerium_jwt={token}"


def browser_that(
    action: Callable[[str], None], api: FakeLoginAPI
) -> Callable[[str], None]:
    """Return a browser stand-in that runs `action` on the callback in a thread."""

    def open_url(url: str) -> None:
        thread = threading.Thread(target=action, args=(api.callbacks[-1],))
        api.browser_threads.append(thread)
        thread.start()

    return open_url


def test_loopback_accepts_matching_callback() -> None:
    api = FakeLoginAPI()
    pages: list[httpx.Response] = []

    def deliver(callback: str) -> None:
        pages.append(httpx.get(with_token(callback, "tok.en.value")))

    announced: list[str] = []
    login = LoopbackLogin(
        browser=browser_that(deliver, api), timeout=10, announce=announced.append
    )
    result = login.login(ROUTE, api.client())
    assert result.token.value == "tok.en.value"
    assert result.sign_in_url.startswith("https://authenticate.example.com/")
    callback = urlsplit(api.callbacks[0])
    assert callback.hostname == "127.0.0.1"
    assert len(callback.path) > 30, "the path must carry an unguessable part"
    assert "state=" in callback.query
    assert "https://authenticate.example.com/" in announced[0]
    # The login returns once the listener has the token, which can be before
    # the browser thread has read the page.
    for thread in api.browser_threads:
        thread.join(10)
    page = pages[0]
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "tok.en.value" not in page.text
    assert "replaceState" in page.text


def test_loopback_ignores_foreign_callbacks() -> None:
    api = FakeLoginAPI()
    statuses: list[int] = []

    def attack_then_deliver(callback: str) -> None:
        parts = urlsplit(callback)
        base = f"{parts.scheme}://{parts.netloc}"
        statuses.append(httpx.get(f"{base}/other?pomerium_jwt=evil").status_code)
        wrong_state = callback.split("state=")[0] + "state=forged"
        statuses.append(httpx.get(with_token(wrong_state, "evil")).status_code)
        statuses.append(httpx.post(with_token(callback, "evil")).status_code)
        statuses.append(httpx.get(with_token(callback, "good.token.x")).status_code)

    login = LoopbackLogin(
        browser=browser_that(attack_then_deliver, api), timeout=10, announce=print
    )
    result = login.login(ROUTE, api.client())
    assert result.token.value == "good.token.x"
    assert statuses == [404, 400, 405, 200]
    with pytest.raises(httpx.ConnectError):
        httpx.get(with_token(api.callbacks[0], "late"))


def test_loopback_callback_without_token_fails() -> None:
    api = FakeLoginAPI()
    login = LoopbackLogin(
        browser=browser_that(lambda cb: httpx.get(cb), api), timeout=10, announce=print
    )
    with pytest.raises(CallbackError, match="no pomerium_jwt"):
        login.login(ROUTE, api.client())


def test_loopback_times_out_and_closes() -> None:
    api = FakeLoginAPI()
    login = LoopbackLogin(open_browser=False, timeout=0.3, announce=print)
    with pytest.raises(LoginTimeout, match="did not finish within 0 s"):
        login.login(ROUTE, api.client())
    with pytest.raises(httpx.ConnectError):
        httpx.get(with_token(api.callbacks[0], "late"))


def test_loopback_browser_command(tmp_path: Path) -> None:
    api = FakeLoginAPI()
    script = f"{tmp_path}/open.sh"
    with open(script, "w") as file:
        file.write('#!/bin/sh\necho "$1" > "$(dirname "$0")/opened.txt"\n')
    os.chmod(script, 0o755)
    login = LoopbackLogin(browser=f"{script} {{url}}", timeout=0.5, announce=print)
    with pytest.raises(LoginTimeout):
        login.login(ROUTE, api.client())
    with open(f"{tmp_path}/opened.txt") as file:
        assert file.read().startswith("https://authenticate.example.com/")


def test_paste_back_accepts_address() -> None:
    api = FakeLoginAPI()
    answers: list[str] = []

    def prompt(text: str) -> str:
        callback = api.callbacks[-1]
        answers.append(callback)
        return with_token(callback, "pasted.token.v")

    shown: list[str] = []
    result = PasteBackLogin(prompt=prompt, announce=shown.append).login(
        ROUTE, api.client()
    )
    assert result.token.value == "pasted.token.v"
    assert urlsplit(answers[0]).hostname == "127.0.0.1"
    assert "https://authenticate.example.com/" in shown[0]


def test_paste_back_retries_foreign_state() -> None:
    api = FakeLoginAPI()
    pasted = iter(
        [
            "http://127.0.0.1:1/cb?state=forged&pomerium_jwt=evil",
            "",
        ]
    )
    shown: list[str] = []
    with pytest.raises(LoginError, match="cancelled"):
        PasteBackLogin(prompt=lambda _: next(pasted), announce=shown.append).login(
            ROUTE, api.client()
        )
    assert any("another sign-in attempt" in line for line in shown)
    assert not any("evil" in line for line in shown)


def test_paste_back_without_input() -> None:
    def no_input(_: str) -> str:
        raise EOFError

    with pytest.raises(LoginError, match="no input"):
        PasteBackLogin(prompt=no_input, announce=print).login(
            ROUTE, FakeLoginAPI().client()
        )
