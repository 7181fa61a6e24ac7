"""ScriptedBrowser: a pure-Python stand-in for a user's browser."""

from __future__ import annotations

import html
import logging
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from urllib.parse import urljoin

import httpx

from ._registry import is_test_server

logger = logging.getLogger("pomerium_jupyter.testing")

# Accept header that Chromium sends when it navigates to a page.
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,*/*;q=0.8"
)
MAX_STEPS = 30

_INPUT = re.compile(r'<input[^>]*\bname="state"[^>]*\bvalue="([^"]*)"')
_ACTION = re.compile(r'<form[^>]*\baction="([^"]*)"')


class ScriptedBrowser:
    """Opens sign-in URLs like a browser profile with its own cookie jar.

    Calling it follows redirects from the sign-in URL, fills in the identity
    provider's form when shown, and stops at the first redirect that leaves the
    running PomeriumTestServer origins (the client's callback). With `deliver`
    it then requests that URL, handing `pomerium_jwt` to the client's listener.
    Failures do not raise, as in a real browser: they are stored in `error`.
    With `background`, each call returns at once and works in a thread, which
    suits clients whose listener runs on the calling thread's event loop.
    """

    def __init__(
        self,
        username: str = "alice",
        password: str | None = None,
        *,
        users_password_lookup: Mapping[str, str] | Callable[[str], str] | None = None,
        verify: bool | str = True,
        deliver: bool = True,
        background: bool = False,
        timeout: float = 10.0,
    ) -> None:
        if password is None:
            if users_password_lookup is None:
                password = f"{username}-password"
            elif callable(users_password_lookup):
                password = users_password_lookup(username)
            else:
                password = users_password_lookup[username]
        self.username = username
        self.password = password
        self.deliver = deliver
        self.background = background
        verify_setting: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify)
            if isinstance(verify, str)
            else verify
        )
        self.client = httpx.Client(
            verify=verify_setting,
            follow_redirects=False,
            timeout=timeout,
            headers={"Accept": BROWSER_ACCEPT},
        )
        self.opened: list[str] = []
        self.final_url: str | None = None
        self.delivery_status: int | None = None
        self.last_url: str | None = None
        self.last_status: int | None = None
        self.error: str | None = None
        self._threads: list[threading.Thread] = []

    def __call__(self, url: str) -> None:
        self.opened.append(url)
        if not self.background:
            self._navigate(url)
            return
        thread = threading.Thread(
            target=self._navigate, args=(url,), name="scripted-browser", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background navigations to finish."""
        for thread in self._threads:
            thread.join(timeout)

    def close(self) -> None:
        self.client.close()

    def _get(self, url: str) -> httpx.Response:
        response = self.client.get(url)
        self.last_url = url
        self.last_status = response.status_code
        return response

    def _navigate(self, url: str) -> None:
        try:
            self._follow(url)
        except httpx.HTTPError as exc:
            self.error = f"request failed: {exc!r}"
            logger.debug("scripted browser: %s", self.error)

    def _follow(self, url: str) -> None:
        response = self._get(url)
        submitted = False
        for _ in range(MAX_STEPS):
            current = str(response.url)
            if response.is_redirect:
                target = urljoin(current, response.headers["Location"])
                if not is_test_server(target):
                    self.final_url = target
                    if self.deliver:
                        self.delivery_status = self._get(target).status_code
                    return
                response = self._get(target)
                continue
            form_action = _ACTION.search(response.text)
            state = _INPUT.search(response.text)
            if response.status_code == 200 and form_action and state:
                if submitted:
                    self.error = (
                        f"the identity provider rejected user {self.username!r}"
                    )
                    return
                submitted = True
                response = self.client.post(
                    urljoin(current, html.unescape(form_action.group(1))),
                    data={
                        "username": self.username,
                        "password": self.password,
                        "state": html.unescape(state.group(1)),
                        "action": "sign-in",
                    },
                )
                self.last_url = current
                self.last_status = response.status_code
                continue
            self.error = f"stopped at {current} with status {response.status_code}"
            return
        self.error = f"more than {MAX_STEPS} steps without reaching the callback"
