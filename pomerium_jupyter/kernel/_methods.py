"""Login methods for notebooks, and the choice between them.

PomeriumAuth calls a login method, from the cell that sends the request, when
it has no live token. These methods wait on the token store, a loopback
listener or stdin, never on a comm message, because a busy kernel does not
read comm messages until the cell finishes.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from .._errors import LoginRequired, LoginTimeout, PomeriumError
from .._login import DEFAULT_LOGIN_TIMEOUT, LoopbackLogin, PasteBackLogin, SignIn
from .._protocol import deployment_key, origin_of
from .._store import TokenStore
from ._discovery import probe_sign_in_url
from ._environment import (
    Frontend,
    FrontendReport,
    can_prompt,
    frontend_report,
)
from ._widget import LoginWidget

log = logging.getLogger("pomerium_jupyter")

# The server extension's flow life: Pomerium's sign-in URL is valid for 300 s
# plus 60 s of leeway, and a sign-in cannot finish after that.
WIDGET_LOGIN_TIMEOUT = 360.0
# Seconds between reads of the token store while a cell waits for a sign-in.
# The interval bounds the delay between the server storing the token and the
# cell going on. A read of a missing entry took about 16 us in a timeit run on
# a 2-core Xeon, so 40 reads a second stay far below 1 % of a core.
STORE_POLL_INTERVAL = 0.025

METHOD_CHOICES = ("auto", "widget", "loopback", "paste")

Displayer = Callable[..., Any]


def show(*objects: Any, **kwargs: Any) -> Any:
    """Call IPython's display(), imported late so the module loads without it."""
    from IPython import display as ipython_display

    displayer: Displayer = ipython_display.display
    return displayer(*objects, **kwargs)


def _print_line(message: str) -> None:
    print(message, flush=True)


def _read_line(prompt: str) -> str:
    # Looked up at call time: ipykernel swaps builtins.input for one that asks
    # the frontend while a cell runs, and the builtin bound at import time
    # would read the kernel process's own stdin instead.
    return input(prompt)


def _noninteractive_reason() -> str:
    return "the notebook runs without a person at the frontend"


class WidgetLogin:
    """Show a login widget in the running cell and wait for the token store.

    The widget's popup flow goes through the Jupyter server extension, whose
    callback writes the token into the shared FileTokenStore. This method
    polls that store, so it needs no message from the busy kernel's frontend.
    When the widget's script has reported that the server lacks the
    extension, the sign-in falls back to paste-back through `input()`.
    """

    name = "widget"

    def __init__(
        self,
        *,
        store: TokenStore,
        timeout: float = WIDGET_LOGIN_TIMEOUT,
        poll_interval: float = STORE_POLL_INTERVAL,
        verify: bool | str = True,
        trust_env: bool = True,
        display: Displayer = show,
        report: FrontendReport = frontend_report,
        on_sign_out: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.verify = verify
        self.trust_env = trust_env
        self.display = display
        self.report = report
        self.on_sign_out = on_sign_out

    def login(self, route_url: str, client: httpx.Client) -> SignIn:
        if not can_prompt():
            raise LoginRequired(route_url, _noninteractive_reason())
        if self.report.method == "paste":
            return PasteBackLogin(prompt=_read_line, announce=_print_line).login(
                route_url, client
            )
        sign_in_url = probe_sign_in_url(client, route_url)
        deployment = deployment_key(route_url, sign_in_url)
        self.store.remember_route(origin_of(route_url), deployment)
        widget = LoginWidget(
            route_url,
            store=self.store,
            method="widget",
            deployment=deployment,
            verify=self.verify,
            trust_env=self.trust_env,
            on_sign_out=self.on_sign_out,
        )
        widget.show_pending(
            "Pomerium needs a sign-in; this cell continues once it finishes."
        )
        self.display(widget)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                token = self.store.get(deployment)
                if token is not None:
                    widget.refresh()
                    return SignIn(token, sign_in_url)
                if time.monotonic() >= deadline:
                    raise LoginTimeout(route_url, self.timeout)
                time.sleep(self.poll_interval)
        except LoginTimeout as exc:
            widget.show_error(str(exc))
            raise
        except BaseException:
            widget.show_error("The cell stopped before the sign-in finished.")
            raise


class _LinkOutput:
    """One output area that shows a sign-in link, then the outcome only."""

    def __init__(self, display: Displayer, route_url: str) -> None:
        self.route_url = route_url
        self.handle = display(
            self._bundle(f"Starting the sign-in to {route_url}."),
            raw=True,
            display_id=True,
        )

    @staticmethod
    def _bundle(text: str, link: str | None = None) -> dict[str, str]:
        if link is None:
            return {"text/plain": text, "text/html": f"<p>{html.escape(text)}</p>"}
        anchor = (
            f'<a href="{html.escape(link)}" target="_blank" '
            'rel="noopener noreferrer" data-pomerium="link">'
            "Open the sign-in page</a>"
        )
        return {
            "text/plain": f"{text}\n  {link}",
            "text/html": f"<p>{html.escape(text)} {anchor}</p>",
        }

    def show(self, text: str, link: str | None = None) -> None:
        if self.handle is not None:
            self.handle.update(self._bundle(text, link), raw=True)


class LinkLoopbackLogin:
    """Sign in through a loopback listener in the kernel, shown as a link.

    For kernels that VS Code starts on the user's machine: the browser can
    reach 127.0.0.1 of the kernel, but the notebook view cannot open windows,
    so the user clicks the link. The link is replaced by the outcome when the
    sign-in ends, so the saved notebook keeps no sign-in URL.
    """

    name = "loopback"

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_LOGIN_TIMEOUT,
        display: Displayer = show,
    ) -> None:
        self.timeout = timeout
        self.display = display
        self._reserved: _LinkOutput | None = None

    def reserve_output(self, route_url: str) -> None:
        """Create the output area now, for a sign-in that runs in a thread.

        Output sent from a background thread may land in whichever cell runs
        then, so the area is created by the cell that starts the sign-in and
        only updated later.
        """
        self._reserved = _LinkOutput(self.display, route_url)

    def login(self, route_url: str, client: httpx.Client) -> SignIn:
        if not can_prompt():
            raise LoginRequired(route_url, _noninteractive_reason())
        output = self._reserved or _LinkOutput(self.display, route_url)
        self._reserved = None

        def show_link(url: str) -> None:
            output.show(f"Sign in to {route_url} in your browser:", url)

        inner = LoopbackLogin(
            browser=show_link, timeout=self.timeout, announce=lambda _text: None
        )
        try:
            result = inner.login(route_url, client)
        except PomeriumError as exc:
            output.show(str(exc))
            raise
        except BaseException:
            output.show(f"The sign-in to {route_url} was stopped.")
            raise
        user = result.token.user or "an unnamed user"
        output.show(f"Signed in to {route_url} as {user}.")
        return result


def describe_method(method: str, frontend: Frontend) -> str:
    """Return the one line that names the sign-in method for the user."""
    if method == "paste":
        return (
            "Sign-in method: paste-back (sign in in any browser, then paste "
            "the final address)."
        )
    if method == "loopback":
        if frontend == "terminal":
            return (
                "Sign-in method: a browser on this machine, returning to a "
                "listener on 127.0.0.1."
            )
        return (
            "Sign-in method: a link to open in your browser, returning to a "
            "listener in the kernel on 127.0.0.1."
        )
    return "Sign-in method: a popup through this Jupyter server."


def resolve_method(requested: str, frontend: Frontend) -> str:
    """Map --method auto to a concrete method for the frontend."""
    if requested != "auto":
        return requested
    if frontend in ("terminal", "vscode"):
        return "loopback"
    return "auto"


def build_login_method(
    method: str,
    frontend: Frontend,
    *,
    store: TokenStore,
    verify: bool | str,
    trust_env: bool,
    on_sign_out: Callable[[str], None] | None = None,
) -> Any:
    """Return the LoginMethod that PomeriumAuth calls for `method`."""
    if method == "loopback":
        if frontend == "terminal":
            return LoopbackLogin()
        return LinkLoopbackLogin()
    if method == "paste":
        return PasteBackLogin(prompt=_read_line, announce=_print_line)
    return WidgetLogin(
        store=store, verify=verify, trust_env=trust_env, on_sign_out=on_sign_out
    )
