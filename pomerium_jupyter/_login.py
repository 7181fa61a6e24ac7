"""Login methods that need no Jupyter: loopback listener and paste-back.

Both ask the route's login API for a fresh sign-in URL right before showing it,
because Pomerium signs that URL for 5 minutes plus 1 minute of leeway.
"""

from __future__ import annotations

import contextlib
import html
import logging
import secrets
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from ._errors import CallbackError, LoginError, LoginTimeout
from ._protocol import STATE_PARAM, new_state, parse_callback, request_sign_in_url
from ._token import Token

log = logging.getLogger("pomerium_jupyter")

# Just under the sign-in URL's life (300 s plus 60 s leeway), so the listener
# gives up before Pomerium would reject the URL anyway.
DEFAULT_LOGIN_TIMEOUT = 340.0
# Seconds a connection to the loopback listener may take to send its request.
# A browser sends it at once, but any local process can connect and stall.
CALLBACK_READ_TIMEOUT = 10.0

BrowserOpener = Callable[[str], object]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SignIn:
    """The result of a login: the token and the sign-in URL that produced it."""

    token: Token
    sign_in_url: str

    def __repr__(self) -> str:
        return f"SignIn(token={self.token!r})"


class LoginMethod(Protocol):
    """A way to run Pomerium's browser sign-in and collect the token."""

    name: str

    def login(self, route_url: str, client: httpx.Client) -> SignIn: ...


def browser_opener(browser: str | BrowserOpener | None) -> BrowserOpener:
    """Return a callable that opens a URL in the configured browser.

    None uses Python's webbrowser module, which honours the BROWSER variable.
    A string is a command line; `{url}` in it is replaced by the URL, or the URL
    is appended as the last argument.
    """
    if browser is None:
        import webbrowser

        return webbrowser.open
    if callable(browser):
        return browser
    command = browser

    def run_command(url: str) -> object:
        args = shlex.split(command)
        if any("{url}" in arg for arg in args):
            args = [arg.replace("{url}", url) for arg in args]
        else:
            args.append(url)
        return subprocess.Popen(args, stdin=subprocess.DEVNULL)  # noqa: S603

    return run_command


_DONE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Signed in</title></head>
<body><p>{message}</p>
<script nonce="{nonce}">history.replaceState(null, "", location.pathname);</script>
</body></html>
"""


class _CallbackServer(ThreadingHTTPServer):
    """A one-shot listener that accepts exactly one callback with our state.

    Each connection gets its own thread, so a stalled connection from another
    local process cannot hold up the browser's callback or the shutdown.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, state: str) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.expected_path = path
        self.expected_state = state
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.token: str | None = None
        self.error: CallbackError | None = None

    def handle_error(self, request: object, client_address: object) -> None:
        # The default prints a traceback to stderr for every client that hangs
        # up early. Only the exception type is logged, never the request line.
        error = sys.exc_info()[1]
        log.debug(
            "Loopback listener connection from %s failed: %s.",
            client_address,
            type(error).__name__,
        )

    @property
    def callback_url(self) -> str:
        port = self.server_address[1]
        return f"http://127.0.0.1:{port}{self.expected_path}?{STATE_PARAM}={self.expected_state}"


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    timeout = CALLBACK_READ_TIMEOUT

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.expected_path:
            self._reply(404, "Not found.")
            return
        with self.server.lock:
            self._complete(parts.query)

    def _complete(self, query: str) -> None:
        if self.server.done.is_set():
            self._reply(404, "Not found.")
            return
        states = [v for k, v in parse_qsl(query) if k == STATE_PARAM]
        if len(states) != 1 or not secrets.compare_digest(
            states[0], self.server.expected_state
        ):
            # Another local process or a stale tab: ignore it and keep waiting
            # for the real callback.
            log.warning("Ignored a sign-in callback with a foreign state value.")
            self._reply(400, "This sign-in link is not the one being waited for.")
            return
        try:
            self.server.token = parse_callback(self.path, self.server.expected_state)
        except CallbackError as exc:
            self.server.error = exc
            self._reply(400, str(exc))
        else:
            self._reply(200, "Signed in. You can close this tab.")
        self.server.done.set()

    def do_POST(self) -> None:
        self._reply(405, "Method not allowed.")

    def _reply(self, status: int, message: str) -> None:
        nonce = secrets.token_urlsafe(12)
        body = _DONE_PAGE.format(message=html.escape(message), nonce=nonce).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy", f"default-src 'none'; script-src 'nonce-{nonce}'"
        )
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # The request line carries the token: never log it.
        return


class LoopbackLogin:
    """Sign in through a browser that returns to a listener on 127.0.0.1.

    This is the embedded-web-server flow of native apps. Pomerium's default
    allow list accepts loopback callbacks, so no admin change is needed. The
    URL is always printed, so a user can open it by hand if no browser opens.
    """

    name = "loopback"

    def __init__(
        self,
        *,
        browser: str | BrowserOpener | None = None,
        open_browser: bool = True,
        timeout: float = DEFAULT_LOGIN_TIMEOUT,
        announce: Callable[[str], None] = _stderr,
    ) -> None:
        self.open = browser_opener(browser) if open_browser else None
        self.timeout = timeout
        self.announce = announce

    def login(self, route_url: str, client: httpx.Client) -> SignIn:
        path = f"/pomerium-callback/{secrets.token_urlsafe(16)}"
        server = _CallbackServer(path, new_state())
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pomerium-loopback",
            daemon=True,
        )
        thread.start()
        try:
            sign_in_url = request_sign_in_url(client, route_url, server.callback_url)
            self.announce(f"Sign in to {route_url} in your browser:\n  {sign_in_url}")
            if self.open is not None:
                try:
                    self.open(sign_in_url)
                except OSError as exc:
                    self.announce(
                        f"Could not open a browser ({exc}); open the URL above."
                    )
            if not server.done.wait(self.timeout):
                raise LoginTimeout(route_url, self.timeout)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        if server.error is not None:
            raise server.error
        assert server.token is not None
        return SignIn(Token(server.token, source="browser"), sign_in_url)


class PasteBackLogin:
    """Sign in in any browser, then paste the final address back.

    For a kernel the browser cannot reach: the callback points at a loopback
    port of the browser's own machine where nothing listens, so the browser
    shows an error page whose address contains the token and our state value.
    """

    name = "paste-back"

    def __init__(
        self,
        *,
        prompt: Callable[[str], str] | None = None,
        announce: Callable[[str], None] = _stderr,
        attempts: int = 3,
    ) -> None:
        # Looked up at call time, so a replaced builtins.input is honoured.
        self.prompt = prompt or (lambda text: input(text))
        self.announce = announce
        self.attempts = attempts

    def login(self, route_url: str, client: httpx.Client) -> SignIn:
        state = new_state()
        port = 49152 + secrets.randbelow(16000)
        callback = (
            f"http://127.0.0.1:{port}/pomerium-callback/"
            f"{secrets.token_urlsafe(8)}?{STATE_PARAM}={state}"
        )
        sign_in_url = request_sign_in_url(client, route_url, callback)
        self.announce(
            f"Open this URL in a browser and sign in to {route_url}:\n"
            f"  {sign_in_url}\n"
            "The browser then fails to load a page on 127.0.0.1; that is "
            "expected. Copy the whole address from its address bar and paste it "
            "below."
        )
        for attempt in range(1, self.attempts + 1):
            with contextlib.suppress(EOFError):
                pasted = self.prompt("Address after sign-in: ")
                if not pasted.strip():
                    raise LoginError(f"Sign-in to {route_url} was cancelled.")
                try:
                    token = parse_callback(pasted, state)
                except CallbackError as exc:
                    if attempt == self.attempts:
                        raise
                    self.announce(f"{exc} Try again.")
                    continue
                return SignIn(Token(token, source="browser"), sign_in_url)
            raise LoginError(
                f"Sign-in to {route_url} needs a pasted address, but there is no "
                "input to read from. Use `jupyter pomerium login` in a terminal."
            )
        # Every attempt returns or raises; this line only satisfies type checkers.
        raise LoginError(f"Sign-in to {route_url} failed.")
