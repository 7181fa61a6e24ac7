"""The %pomerium line magic."""

from __future__ import annotations

import argparse
import datetime
import logging
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from IPython.core import magic, magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class

from .._auth import (
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    PomeriumAuth,
    async_client,
    client,
    service_account_token,
)
from .._errors import LoginRequired, LoginTimeout, PomeriumError
from .._protocol import (
    USER_INFO_PATH,
    describe_transport_error,
    is_sign_in_redirect,
    origin_of,
)
from .._store import FileTokenStore, TokenStore
from .._token import Token
from ._discovery import find_deployment
from ._environment import Frontend, can_prompt, detect_frontend
from ._methods import (
    METHOD_CHOICES,
    STORE_POLL_INTERVAL,
    WIDGET_LOGIN_TIMEOUT,
    LinkLoopbackLogin,
    build_login_method,
    describe_method,
    resolve_method,
    show,
)
from ._widget import LoginWidget

log = logging.getLogger("pomerium_jupyter")

# IPython's decorators carry no annotations; these aliases give them types.
_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
line_magic: _Decorator = magic.line_magic
with_arguments: Callable[[], _Decorator] = magic_arguments.magic_arguments
argument: Callable[..., _Decorator] = magic_arguments.argument
parse_argstring: Callable[[Any, str], argparse.Namespace] = (
    magic_arguments.parse_argstring
)

ACTIONS = ("login", "wait", "status", "logout", "whoami")
USAGE_HINT = "Run %pomerium? for usage."


def _host_of(route_url: str) -> str:
    return httpx.URL(origin_of(route_url)).host


def _signed_in_line(route_url: str, token: Token) -> str:
    return f"Signed in to {_host_of(route_url)} as {token.user or 'an unnamed user'}."


def _describe_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _describe_expiry(expires_at: float | None) -> str | None:
    # The exp claim is unverified, so it can be any JSON number, including
    # ones that no local date can represent.
    if expires_at is None:
        return None
    try:
        stamp = datetime.datetime.fromtimestamp(expires_at)
    except (OverflowError, ValueError, OSError):
        return None
    return stamp.isoformat(sep=" ", timespec="minutes")


@magics_class
class PomeriumMagics(Magics):
    """Sign in to Pomerium routes and get httpx clients for them."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)  # type: ignore[no-untyped-call]
        # Clients made by %pomerium login, so logout can drop their cached
        # tokens too. Weak references let unused clients be collected.
        self._auths: weakref.WeakSet[PomeriumAuth] = weakref.WeakSet()

    @with_arguments()
    @argument(
        "action",
        help=(
            "login: return an httpx client for URL and start a sign-in if "
            "needed; wait: block until URL's deployment has a token; status: "
            "list the stored sign-ins; logout: remove the token of URL, or all "
            "tokens; whoami: show the user Pomerium sees for URL."
        ),
    )
    @argument(
        "url",
        nargs="?",
        help="URL of the Pomerium route, such as https://app.example.com.",
    )
    @argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="login: return an httpx.AsyncClient instead of an httpx.Client.",
    )
    @argument(
        "--method",
        default="auto",
        help=(
            "login: how to sign in: auto (default), widget (popup through "
            "this Jupyter server), loopback (listener on 127.0.0.1 in the "
            "kernel) or paste (paste the final address back)."
        ),
    )
    @argument(
        "--ca-file",
        help="Path of a PEM bundle of the CAs that sign Pomerium's TLS certificate.",
    )
    @argument(
        "--insecure",
        action="store_true",
        help="Turn off TLS certificate checks; for test deployments only.",
    )
    @argument(
        "--timeout",
        type=float,
        help=(
            "wait: seconds to wait for the sign-in "
            f"(default {WIDGET_LOGIN_TIMEOUT:.0f})."
        ),
    )
    @line_magic
    def pomerium(self, line: str) -> Any:
        """Sign in to a Pomerium route and get an authenticated httpx client.

            client = %pomerium login https://app.example.com
            %pomerium wait https://app.example.com
            client.get("/api/items").json()

        `login` returns at once; without a stored token it shows a sign-in
        button. `wait` blocks the cell until the sign-in has finished, which
        suits "Run All". Tokens are kept in the per-user token cache
        (POMERIUM_JUPYTER_CACHE_DIR) and never printed.
        """
        args = self._parse(line)
        try:
            return self._run(args)
        except PomeriumError as exc:
            # Its message says what failed and what to do next, and a
            # traceback through httpx internals would bury it. IPython shows
            # the lines from _render_traceback_ in place of the traceback.
            sentence = f"{type(exc).__name__}: {exc}"
            exc._render_traceback_ = lambda: [sentence]  # type: ignore[attr-defined]
            raise

    def _run(self, args: argparse.Namespace) -> Any:
        handlers = {
            "login": self._login,
            "wait": self._wait,
            "status": self._status,
            "logout": self._logout,
            "whoami": self._whoami,
        }
        return handlers[args.action](args)

    # Argument checks

    def _parse(self, line: str) -> argparse.Namespace:
        try:
            args = parse_argstring(self.pomerium, line)
        except UsageError as exc:
            message = f"Invalid %pomerium arguments: {exc}. {USAGE_HINT}"
            raise UsageError(message) from None
        if args.action not in ACTIONS:
            raise UsageError(
                f"Unknown %pomerium command {args.action!r}; expected one of "
                f"{', '.join(ACTIONS)}. {USAGE_HINT}"
            )
        if args.method not in METHOD_CHOICES:
            raise UsageError(
                f"Invalid --method {args.method!r}; expected one of "
                f"{', '.join(METHOD_CHOICES)}."
            )
        self._check_option_scope(args)
        if args.url is not None:
            try:
                origin_of(args.url)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if args.ca_file is not None and args.insecure:
            raise UsageError(
                "--ca-file and --insecure contradict each other; pass only one."
            )
        if args.ca_file is not None and not Path(args.ca_file).expanduser().is_file():
            raise UsageError(
                f"CA file {args.ca_file!r} not found; pass the path of a PEM bundle."
            )
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError(
                f"Invalid --timeout {args.timeout:g}; expected a number of "
                "seconds above 0."
            )
        return args

    @staticmethod
    def _check_option_scope(args: argparse.Namespace) -> None:
        if args.action != "login":
            if args.use_async:
                raise UsageError("--async applies only to %pomerium login.")
            if args.method != "auto":
                raise UsageError("--method applies only to %pomerium login.")
        if args.action != "wait" and args.timeout is not None:
            raise UsageError("--timeout applies only to %pomerium wait.")
        if args.action == "status" and args.url is not None:
            raise UsageError(
                "%pomerium status takes no URL; it lists every stored sign-in."
            )

    @staticmethod
    def _require_url(args: argparse.Namespace) -> str:
        if args.url is None:
            raise UsageError(
                f"%pomerium {args.action} needs the route URL, as in "
                f"%pomerium {args.action} https://app.example.com."
            )
        return str(args.url)

    @staticmethod
    def _verify(args: argparse.Namespace) -> bool | str:
        if args.insecure:
            return False
        if args.ca_file is not None:
            return str(Path(args.ca_file).expanduser())
        return True

    def _http(self, args: argparse.Namespace) -> httpx.Client:
        return httpx.Client(verify=self._verify(args), timeout=10.0)

    def _deployment(
        self, store: TokenStore, route_url: str, args: argparse.Namespace
    ) -> str:
        with self._http(args) as http:
            return find_deployment(store, route_url, http)

    # login

    def _login(self, args: argparse.Namespace) -> httpx.Client | httpx.AsyncClient:
        route_url = self._require_url(args)
        frontend = detect_frontend()
        if args.method == "widget" and frontend == "terminal":
            raise UsageError(
                "--method widget needs a notebook; in a terminal use --method "
                "loopback or --method paste."
            )
        method = resolve_method(args.method, frontend)
        store = FileTokenStore()
        verify = self._verify(args)
        interactive = can_prompt()
        login_method = build_login_method(
            method,
            frontend,
            store=store,
            verify=verify,
            trust_env=True,
            on_sign_out=self.forget_deployment,
        )
        auth = PomeriumAuth(
            route_url,
            store=store,
            login=login_method,
            interactive=interactive,
            verify=verify,
        )
        self._auths.add(auth)
        if args.use_async:
            result: httpx.Client | httpx.AsyncClient = async_client(
                route_url, auth=auth
            )
        else:
            result = client(route_url, auth=auth)

        if auth.service_account is not None:
            print(
                f"Using the service-account token from {TOKEN_ENV} or "
                f"{TOKEN_FILE_ENV} for {route_url}."
            )
            return result
        deployment = self._deployment(store, route_url, args)
        token = store.get(deployment)
        if token is not None:
            print(_signed_in_line(route_url, token))
            return result
        if not interactive:
            print(
                f"Not signed in to {route_url}, and this run cannot show a "
                "sign-in; requests to it will raise LoginRequired."
            )
            return result
        self._start_sign_in(
            route_url, method, frontend, auth, store, deployment, verify
        )
        return result

    def _start_sign_in(
        self,
        route_url: str,
        method: str,
        frontend: Frontend,
        auth: PomeriumAuth,
        store: TokenStore,
        deployment: str,
        verify: bool | str,
    ) -> None:
        in_notebook = frontend != "terminal"
        if method in ("auto", "widget") or (method == "paste" and in_notebook):
            widget = LoginWidget(
                route_url,
                store=store,
                method=method,
                deployment=deployment,
                verify=verify,
                on_sign_out=self.forget_deployment,
            )
            show(widget)
            return
        print(describe_method(method, frontend))
        if frontend == "terminal":
            # A terminal has no other way to show progress, so the sign-in
            # blocks here and prints its URL.
            token = auth.current_token()
            print(_signed_in_line(route_url, token))
            return
        login_method = auth.login_method
        if isinstance(login_method, LinkLoopbackLogin):
            login_method.reserve_output(route_url)
        thread = threading.Thread(
            target=self._sign_in_in_background,
            args=(auth,),
            name="pomerium-sign-in",
            daemon=True,
        )
        thread.start()

    @staticmethod
    def _sign_in_in_background(auth: PomeriumAuth) -> None:
        try:
            auth.current_token()
        except PomeriumError as exc:
            # The login method has shown the sentence in the cell's output.
            log.info("Background sign-in to %s failed: %s", auth.origin, exc)

    # wait

    def _wait(self, args: argparse.Namespace) -> None:
        route_url = self._require_url(args)
        store = FileTokenStore()
        timeout = args.timeout if args.timeout is not None else WIDGET_LOGIN_TIMEOUT
        if service_account_token() is not None:
            print(
                f"Using the service-account token from {TOKEN_ENV} or {TOKEN_FILE_ENV}."
            )
            return
        deployment = self._deployment(store, route_url, args)
        token = store.get(deployment)
        if token is None and not can_prompt():
            raise LoginRequired(route_url, "no token is stored")
        deadline = time.monotonic() + timeout
        while token is None:
            if time.monotonic() >= deadline:
                raise LoginTimeout(route_url, timeout)
            time.sleep(STORE_POLL_INTERVAL)
            token = store.get(deployment)
        print(f"Signed in as {token.user or 'an unnamed user'}.")

    # status

    def _status(self, _args: argparse.Namespace) -> None:
        store = FileTokenStore()
        entries = store.entries()
        now = time.time()
        if not entries:
            print("Not signed in to any Pomerium deployment.")
        else:
            count = len(entries)
            noun = "deployment" if count == 1 else "deployments"
            print(f"Signed in to {count} Pomerium {noun}:")
        for entry in entries:
            token = entry.token
            parts = [
                f"  {entry.deployment}: {token.user or 'unnamed user'}",
                f"signed in {_describe_age(now - token.obtained_at)} ago",
            ]
            stamp = _describe_expiry(token.expires_at)
            if stamp is not None:
                parts.append(f"token claims expiry at {stamp}")
            print(", ".join(parts))
            if entry.routes:
                print(f"    routes: {', '.join(entry.routes)}")
        if service_account_token() is not None:
            print(
                f"{TOKEN_ENV} or {TOKEN_FILE_ENV} is set, so new clients use that "
                "service-account token instead."
            )

    # logout

    def forget_deployment(self, deployment: str) -> None:
        """Drop the cached token of every client made here for `deployment`."""
        store = FileTokenStore()
        routes = set(store.routes_of(deployment))
        for auth in list(self._auths):
            if auth.origin in routes or auth.origin == deployment:
                auth.forget()

    def _logout(self, args: argparse.Namespace) -> None:
        store = FileTokenStore()
        if args.url is None:
            count = len(store.entries())
            store.clear()
            for auth in list(self._auths):
                auth.forget()
            noun = "deployment" if count == 1 else "deployments"
            print(f"Signed out of {count} Pomerium {noun}.")
            return
        route_url = str(args.url)
        deployment = self._deployment(store, route_url, args)
        removed = store.delete(deployment)
        self.forget_deployment(deployment)
        for auth in list(self._auths):
            if auth.origin == origin_of(route_url):
                auth.forget()
        if removed:
            print(f"Signed out of {deployment}.")
        else:
            print(f"Not signed in to {route_url}; nothing to remove.")

    # whoami

    def _whoami(self, args: argparse.Namespace) -> None:
        route_url = self._require_url(args)
        store = FileTokenStore()
        token: Token | None = service_account_token()
        if token is None:
            deployment = self._deployment(store, route_url, args)
            token = store.get(deployment)
        if token is None:
            raise UsageError(
                f"Not signed in to {route_url}; run %pomerium login {route_url} first."
            )
        origin = origin_of(route_url)
        try:
            with self._http(args) as http:
                response = http.get(
                    f"{origin}{USER_INFO_PATH}",
                    headers={
                        "Authorization": f"Pomerium {token.value}",
                        "Accept": "application/json",
                    },
                    follow_redirects=False,
                )
        except httpx.TransportError as exc:
            raise describe_transport_error(route_url, exc) from None
        self._print_user(route_url, token, response)

    @staticmethod
    def _print_user(route_url: str, token: Token, response: httpx.Response) -> None:
        if response.status_code == 401 or is_sign_in_redirect(response):
            raise PomeriumError(
                f"Pomerium at {route_url} no longer accepts the stored token; run "
                f"%pomerium logout {route_url} and %pomerium login {route_url}."
            )
        if response.status_code == 404:
            # Pomerium before 0.27 has no user endpoint; the token's own
            # unverified claims are the best remaining source.
            print(f"user: {token.user or 'unknown'} (from the token's claims)")
            return
        if response.status_code != 200:
            raise PomeriumError(
                f"Pomerium at {route_url} returned {response.status_code} "
                f"{response.reason_phrase} on {USER_INFO_PATH}."
            )
        try:
            info = response.json()
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise PomeriumError(
                f"Pomerium at {route_url} returned a body for {USER_INFO_PATH} "
                "that is not a JSON object."
            )
        print(f"user: {info.get('user') or info.get('sub') or 'unknown'}")
        print(f"email: {info.get('email') or 'unknown'}")
        name = info.get("name")
        if isinstance(name, str) and name:
            print(f"name: {name}")
