"""The Jupyter server extension that runs Pomerium's programmatic login.

The Jupyter server is the callback server: the login widget opens
`{base_url}pomerium/start` in a popup, the server requests a sign-in URL from
the route's login API and redirects the popup there, and Pomerium sends the browser
back to `{base_url}pomerium/callback` with the token. The callback page hands
the token to an authenticated endpoint, which stores it in the token cache that
kernels of the same OS user read.

Pomerium only redirects to hosts in its `programmatic_redirect_domain_whitelist`
(by default loopback hosts only), so a Jupyter server reached under another
name needs that name added there by the Pomerium administrator.

Example `jupyter_server_config.py`::

    # Only these routes may be signed in to; an empty list allows any route.
    c.PomeriumExtension.allowed_routes = [
        "https://app.example.com",
        "https://api.example.com",
    ]
    # Behind a reverse proxy that changes the public address or path prefix:
    c.PomeriumExtension.callback_url = (
        "https://notebooks.example.com/jupyter/pomerium/callback"
    )
    # Or allow further browser origins besides the request's Host header:
    c.PomeriumExtension.callback_hosts = ["notebooks.example.com"]
    c.PomeriumExtension.flow_timeout = 360
    # Keep tokens in the server's memory only (kernels then cannot read them):
    c.PomeriumExtension.token_cache = "memory"
    # A private certificate authority for the login-API calls:
    c.PomeriumExtension.verify = "/etc/ssl/certs/internal-ca.pem"
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import SplitResult, urlsplit

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, List, TraitError, Unicode, Union, validate

from .._protocol import TOKEN_PARAM, origin_of
from .._store import FileTokenStore, MemoryTokenStore, TokenStore
from .flows import FlowRegistry
from .handlers import (
    CallbackHandler,
    CompleteHandler,
    LogoutHandler,
    RequestStateHandler,
    StartHandler,
    StatusHandler,
)

CALLBACK_PATH_SUFFIX = "/pomerium/callback"
# The web-app setting that jupyter_server/log.py (2.17 and later) reads for the
# access log. It replaces the value of every query parameter whose name
# contains one of the listed keys with "[secret]".
SCRUB_SETTING = "extra_log_scrub_param_keys"


class PomeriumExtension(ExtensionApp):
    """Pomerium sign-in endpoints under `{base_url}pomerium/`."""

    name = "pomerium"
    load_other_extensions = True

    allowed_routes = List(
        Unicode(),
        default_value=[],
        help=(
            "Route URLs or origins (such as https://app.example.com) that users "
            "may sign in to. Routes are compared by origin, so a path in an "
            "entry is ignored. An empty list allows any http(s) route."
        ),
    ).tag(config=True)

    callback_url = Unicode(
        "",
        help=(
            "The public callback URL, up to and including 'pomerium/callback', "
            "for example https://notebooks.example.com/jupyter/pomerium/callback. "
            "Set it when a reverse proxy changes the address or path prefix that "
            "the browser sees. Empty: built from the browser's origin and the "
            "server's base_url."
        ),
    ).tag(config=True)

    callback_hosts = List(
        Unicode(),
        default_value=[],
        help=(
            "Hosts (name, or name:port) accepted as the browser's origin besides "
            "the Host header of the request, for example when a proxy rewrites "
            "the Host header. Pomerium must allow the same hosts in its "
            "programmatic_redirect_domain_whitelist."
        ),
    ).tag(config=True)

    flow_timeout = Float(
        360.0,
        help=(
            "Seconds a sign-in may take from the click to the completed "
            "callback. Pomerium's sign-in URL is valid for about 6 minutes, so "
            "longer values do not help."
        ),
    ).tag(config=True)

    token_cache = Enum(
        ["file", "memory"],
        default_value="file",
        help=(
            "Where tokens are kept: 'file' is the per-user cache directory "
            "that kernels of the same OS user read; 'memory' keeps them in "
            "the server process only, so kernels cannot use them."
        ),
    ).tag(config=True)

    token_cache_dir = Unicode(
        "",
        help=(
            "Directory of the file token cache. Empty: the "
            "POMERIUM_JUPYTER_CACHE_DIR environment variable, or the per-user "
            "cache directory."
        ),
    ).tag(config=True)

    verify = Union(
        [Bool(), Unicode()],
        default_value=True,
        help=(
            "TLS verification for calls to Pomerium's login API: True, False "
            "(testing only), or the path of a CA bundle file."
        ),
    ).tag(config=True)

    @validate("allowed_routes")
    def _validate_allowed_routes(self, proposal: dict[str, Any]) -> list[str]:
        routes: list[str] = list(proposal["value"])
        for route in routes:
            try:
                origin_of(route)
            except ValueError as exc:
                raise TraitError(f"PomeriumExtension.allowed_routes: {exc}") from None
        return routes

    @validate("callback_url")
    def _validate_callback_url(self, proposal: dict[str, Any]) -> str:
        url: str = proposal["value"]
        if not url:
            return url
        parts = urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not parts.path.rstrip("/").endswith(CALLBACK_PATH_SUFFIX)
            or parts.query
            or parts.fragment
        ):
            raise TraitError(
                f"PomeriumExtension.callback_url {url!r} is invalid: expected an "
                "http(s) URL whose path ends with /pomerium/callback and that "
                "has no query or fragment, such as "
                "https://notebooks.example.com/pomerium/callback."
            )
        return url.rstrip("/")

    @validate("flow_timeout")
    def _validate_flow_timeout(self, proposal: dict[str, Any]) -> float:
        seconds = float(proposal["value"])
        if seconds <= 0:
            raise TraitError(
                f"PomeriumExtension.flow_timeout must be a positive number of "
                f"seconds, not {seconds}."
            )
        return seconds

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            [
                ("pomerium/start", StartHandler),
                ("pomerium/callback", CallbackHandler),
                (r"pomerium/api/flows/([^/]+)/complete", CompleteHandler),
                (r"pomerium/api/requests/([^/]+)", RequestStateHandler),
                ("pomerium/api/status", StatusHandler),
                ("pomerium/api/logout", LogoutHandler),
            ]
        )

    def initialize_settings(self) -> None:
        # NOTE: the store belongs to the OS user, not to a Jupyter user. Jupyter
        # users who share one server (JupyterHub sharing) see and sign out the
        # same deployments, as they already share its kernels.
        # JupyterHub names the owner of a single-user server in JUPYTERHUB_USER.
        # Visitors of a shared server may not start sign-ins, because their
        # tokens would land in the owner's store.
        self.server_owner: str | None = os.environ.get("JUPYTERHUB_USER") or None
        self.store: TokenStore = (
            MemoryTokenStore()
            if self.token_cache == "memory"
            else FileTokenStore(self.token_cache_dir or None)
        )
        self.flows = FlowRegistry(self.flow_timeout)
        # The callback URL carries the token as a query parameter. Jupyter
        # logs successful requests at DEBUG level with the query string, so
        # the parameter must be scrubbed. The list is copied because the
        # default is the ServerApp trait's own list.
        keys = list(self.settings.get(SCRUB_SETTING) or [])
        if TOKEN_PARAM not in keys:
            keys.append(TOKEN_PARAM)
        self.settings[SCRUB_SETTING] = keys
        self.log.debug(
            "Pomerium extension ready: token cache %r, flow timeout %.0f s.",
            self.store,
            self.flow_timeout,
        )

    def allowed_route_origins(self) -> tuple[str, ...]:
        """Return the origins of the configured allowed routes, or () for any."""
        return tuple(dict.fromkeys(origin_of(route) for route in self.allowed_routes))

    def is_route_allowed(self, route_origin: str) -> bool:
        """Tell whether users may sign in to a route with this origin."""
        allowed = self.allowed_route_origins()
        return not allowed or route_origin in allowed

    def is_callback_host_allowed(self, origin: SplitResult, request_host: str) -> bool:
        """Tell whether the browser origin may receive the callback.

        The origin must be the address the request came to, or a host listed in
        `callback_hosts`, so a page elsewhere cannot have tokens sent to a
        callback of its choosing.
        """
        netloc = origin.netloc.lower()
        if netloc == request_host.lower():
            return True
        hostname = (origin.hostname or "").lower()
        listed = {host.lower() for host in self.callback_hosts}
        return netloc in listed or hostname in listed

    def verify_setting(self) -> bool | str:
        """Return the `verify` argument for httpx."""
        value: bool | str = self.verify
        return value
