"""The login widget: a sign-in button in the notebook, backed by the token store.

Synced state holds only what the page may show and what a notebook file may
keep: the route, its host, the status, the user name and a message. The token
stays in the token store, and the sign-in URL is fetched at click time by the
server extension (or sent once in a custom message for paste-back), because
widget state can be saved into the .ipynb file.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import httpx
import traitlets

from .._errors import CallbackError, PomeriumError
from .._protocol import (
    STATE_PARAM,
    deployment_key,
    new_state,
    origin_of,
    parse_callback,
    request_sign_in_url,
)
from .._store import TokenStore
from .._token import Token
from ._environment import FrontendReport, frontend_report

log = logging.getLogger("pomerium_jupyter")

STATUSES = ("signed-out", "pending", "signed-in", "error")
METHODS = ("auto", "widget", "loopback", "paste")

_ESM_PATH = Path(__file__).with_name("login_widget.js")

SignOutHook = Callable[[str], None]


@dataclass
class _PasteAttempt:
    """A paste-back sign-in waiting for the user to paste the final address."""

    state: str
    sign_in_url: str

    def __repr__(self) -> str:
        return "_PasteAttempt(...)"


def paste_callback_url(state: str) -> str:
    """Build a loopback callback URL on a port where nothing is expected to listen.

    The browser fails to load it, and its address bar then shows the callback
    with the token and `state`, which the user pastes back.
    """
    port = 49152 + secrets.randbelow(16000)
    path = secrets.token_urlsafe(8)
    return f"http://127.0.0.1:{port}/pomerium-callback/{path}?{STATE_PARAM}={state}"


class LoginWidget(anywidget.AnyWidget):
    """A "Sign in to <host>" button that runs Pomerium's login for one route."""

    _esm = _ESM_PATH.read_text(encoding="utf-8")

    route = traitlets.Unicode(help="URL of the Pomerium route to sign in to.").tag(
        sync=True
    )
    host = traitlets.Unicode(
        help="Host name of the route, shown on the sign-in button."
    ).tag(sync=True)
    status = traitlets.Enum(
        STATUSES,
        default_value="signed-out",
        help="Sign-in status: signed-out, pending, signed-in or error.",
    ).tag(sync=True)
    user = traitlets.Unicode(
        None, allow_none=True, help="User name or e-mail of the stored token."
    ).tag(sync=True)
    message = traitlets.Unicode(
        "", help="A sentence shown under the button: progress, hint or error."
    ).tag(sync=True)
    method = traitlets.Enum(
        METHODS,
        default_value="auto",
        help=(
            "Sign-in method: widget (popup through the Jupyter server), paste "
            "(paste the final address back), loopback (listener in the "
            "kernel), or auto (the script picks widget or paste)."
        ),
    ).tag(sync=True)
    expires_at = traitlets.Float(
        None,
        allow_none=True,
        help="Unverified expiry of the stored token in Unix seconds, if known.",
    ).tag(sync=True)

    def __init__(
        self,
        route_url: str,
        *,
        store: TokenStore,
        method: str = "auto",
        deployment: str | None = None,
        verify: bool | str = True,
        trust_env: bool = True,
        on_sign_out: SignOutHook | None = None,
        report: FrontendReport = frontend_report,
        message: str = "",
    ) -> None:
        origin = origin_of(route_url)
        super().__init__(
            route=route_url,
            host=httpx.URL(origin).host,
            method=method,
            message=message,
        )
        self._store = store
        self._deployment = deployment
        self._verify = verify
        self._trust_env = trust_env
        self._on_sign_out = on_sign_out
        self._report = report
        self._lock = threading.Lock()
        self._paste: _PasteAttempt | None = None
        self.on_msg(self._handle_message)
        self.refresh(keep_message=True)

    # State shown in the page

    def _known_deployment(self) -> str | None:
        if self._deployment is None:
            self._deployment = self._store.deployment_for(origin_of(self.route))
        return self._deployment

    def refresh(self, *, keep_message: bool = False) -> Token | None:
        """Re-read the token store and show whether a token is there."""
        deployment = self._known_deployment()
        token = self._store.get(deployment) if deployment is not None else None
        with self.hold_sync():
            if token is not None:
                self.status = "signed-in"
                self.user = token.user
                # The claim is unverified: an infinite exp would break the
                # JSON of the widget's state, so only finite ones are shown.
                expiry = token.expires_at
                finite = expiry is not None and math.isfinite(expiry)
                self.expires_at = expiry if finite else None
                if not keep_message:
                    self.message = ""
            else:
                if self.status == "signed-in":
                    self.status = "signed-out"
                self.user = None
                self.expires_at = None
        return token

    def show_pending(self, message: str) -> None:
        with self.hold_sync():
            self.status = "pending"
            self.message = message

    def show_error(self, message: str) -> None:
        with self.hold_sync():
            self.status = "error"
            self.message = message

    # Messages from the page

    def _handle_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        try:
            if event == "signed-in":
                self.refresh()
            elif event == "signed-out":
                self.sign_out()
            elif event == "method":
                self._record_method(content.get("method"))
            elif event == "paste-start":
                self.start_paste()
            elif event == "paste":
                address = content.get("address")
                self.finish_paste(address if isinstance(address, str) else "")
            else:
                log.debug("Ignored a login widget message with event %r.", event)
        except PomeriumError as exc:
            self.show_error(str(exc))

    def _record_method(self, method: object) -> None:
        if method not in ("widget", "paste"):
            return
        self._report.record(method)
        if self.method == "auto":
            self.method = method

    def sign_out(self) -> None:
        """Remove the route's token from the kernel's store and show it."""
        deployment = self._known_deployment()
        if deployment is not None:
            self._store.delete(deployment)
            if self._on_sign_out is not None:
                self._on_sign_out(deployment)
        with self.hold_sync():
            self.status = "signed-out"
            self.user = None
            self.expires_at = None
            self.message = "Signed out."

    # Paste-back, used while the cell is idle

    def _http(self) -> httpx.Client:
        return httpx.Client(verify=self._verify, trust_env=self._trust_env)

    def start_paste(self) -> None:
        """Fetch a sign-in URL for paste-back and send it to the page only."""
        state = new_state()
        with self._http() as client:
            sign_in_url = request_sign_in_url(
                client, self.route, paste_callback_url(state)
            )
        with self._lock:
            self._paste = _PasteAttempt(state, sign_in_url)
        self.show_pending(
            "Sign in on the page that opens. Loading 127.0.0.1 then fails in "
            "the browser, which is expected: copy the whole address from the "
            "address bar and paste it here."
        )
        # A custom message is never part of the saved widget state.
        self.send({"event": "sign-in-url", "url": sign_in_url})

    def finish_paste(self, address: str) -> None:
        """Check a pasted callback address and store its token."""
        with self._lock:
            attempt = self._paste
        if attempt is None:
            self.show_error(
                "No paste-back sign-in is in progress; click the sign-in button first."
            )
            return
        try:
            value = parse_callback(address, attempt.state)
        except CallbackError as exc:
            # The attempt stays open so the user can paste the right address.
            self.show_pending(str(exc))
            return
        with self._lock:
            self._paste = None
        deployment = deployment_key(self.route, attempt.sign_in_url)
        self._store.put(deployment, Token(value, source="browser"))
        self._store.remember_route(origin_of(self.route), deployment)
        self._deployment = deployment
        self.refresh()
