"""PomeriumAuth: an httpx.Auth that signs in to Pomerium when needed.

The token goes only to origins of the route's Pomerium deployment. A 401 from
Pomerium or a redirect to its sign-in page drops the token, runs one sign-in
and retries the request once. Concurrent requests share that one sign-in. A 403
keeps the token, because the user is signed in but not allowed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Collection, Generator, Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx

from ._errors import (
    LoginRequired,
    PomeriumError,
    RedirectNotAllowed,
    RequestNotReplayable,
    TokenRejected,
)
from ._login import LoginMethod, LoopbackLogin
from ._protocol import (
    USER_INFO_PATH,
    deployment_key,
    is_sign_in_redirect,
    origin_of,
    request_sign_in_url,
)
from ._store import FileTokenStore, TokenStore
from ._token import Token

log = logging.getLogger("pomerium_jupyter")

TOKEN_ENV = "POMERIUM_JUPYTER_TOKEN"
TOKEN_FILE_ENV = "POMERIUM_JUPYTER_TOKEN_FILE"
NONINTERACTIVE_ENV = "POMERIUM_JUPYTER_NONINTERACTIVE"
SERVICE_ACCOUNT = "service account"
_TRUE = {"1", "true", "yes", "on"}
# Any loopback callback passes Pomerium's default allow list; the login API is
# asked with it only to learn which deployment serves a route.
_DISCOVERY_CALLBACK = "http://127.0.0.1/"
# Routes of the deployment learned by other processes are re-read from the
# store at most this often, so requests do not read files each time.
_ROUTES_REFRESH_SECONDS = 5.0


def environment_forbids_prompt() -> bool:
    """Tell whether POMERIUM_JUPYTER_NONINTERACTIVE or CI is set to a true value."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in (NONINTERACTIVE_ENV, "CI")
    )


def is_interactive() -> bool:
    """Guess whether a human can finish a browser sign-in in this process.

    False when POMERIUM_JUPYTER_NONINTERACTIVE or CI is set to a true value, or
    when standard input is not a terminal (cron, CI runners, pipes).
    """
    if environment_forbids_prompt():
        return False
    stdin = sys.stdin
    return bool(stdin is not None and stdin.isatty())


def service_account_token(
    token: str | None = None, token_file: str | os.PathLike[str] | None = None
) -> Token | None:
    """Return a configured service-account or pre-issued token, if any.

    Explicit arguments win over POMERIUM_JUPYTER_TOKEN and then
    POMERIUM_JUPYTER_TOKEN_FILE.
    """
    value = token if token is not None else None
    path = token_file
    if value is None and path is None:
        value = os.environ.get(TOKEN_ENV) or None
        path = os.environ.get(TOKEN_FILE_ENV) or None
    if value is None and path is not None:
        try:
            value = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PomeriumError(
                f"Cannot read the service-account token file {os.fspath(path)!r}: "
                f"{exc.strerror}. Check {TOKEN_FILE_ENV} or the token_file argument."
            ) from None
    if value is None:
        return None
    if not value.strip():
        raise PomeriumError(
            "The configured service-account token is empty. Check "
            f"{TOKEN_ENV} or the file named by {TOKEN_FILE_ENV}."
        )
    return Token(value, source=SERVICE_ACCOUNT)


def _is_replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _pomerium_401(response: httpx.Response) -> bool | None:
    """Tell whether a 401 came from Pomerium: True, False, or None if unsure."""
    if response.headers.get("x-pomerium-intercepted-response", "").lower() == "true":
        return True
    if "www-authenticate" in response.headers:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if isinstance(body, dict) and (
        body.get("error") == "Unauthenticated" or body.get("Status") == 401
    ):
        return True
    return None


class PomeriumAuth(httpx.Auth):
    """Authenticate httpx requests to a Pomerium route.

        auth = PomeriumAuth("https://app.example.com")
        with httpx.Client(auth=auth) as client:
            client.get("https://app.example.com/api/items")

    Prefer `pomerium_jupyter.client(url)`, which also guards redirects.
    """

    def __init__(
        self,
        route_url: str,
        *,
        store: TokenStore | None = None,
        login: LoginMethod | None = None,
        interactive: bool | None = None,
        service_account: str | None = None,
        service_account_file: str | os.PathLike[str] | None = None,
        hosts: Iterable[str] = (),
        verify: bool | str = True,
        trust_env: bool = True,
    ) -> None:
        self.route_url = route_url
        self.origin = origin_of(route_url)
        self.store = store if store is not None else FileTokenStore()
        self.login_method: LoginMethod = login or LoopbackLogin()
        self.interactive = interactive
        self.verify = verify
        self.trust_env = trust_env
        self.service_account = service_account_token(
            service_account, service_account_file
        )
        self._extra_origins = frozenset(origin_of(h) for h in hosts)
        self._allowed = frozenset({self.origin, *self._extra_origins})
        self._allowed_read_at = 0.0
        self._lock = threading.RLock()
        self._async_lock = anyio.Lock()
        self._token: Token | None = None
        self._deployment: str | None = None
        self._http_client: httpx.Client | None = None
        self.guarded = False
        self.login_count = 0

    def __repr__(self) -> str:
        return f"PomeriumAuth({self.route_url!r}, store={self.store!r})"

    # Where the token may go

    def allowed_origins(self) -> Collection[str]:
        """Return the origins that may receive the token: the deployment's routes."""
        self._read_allowed_origins()
        return self._allowed

    def _read_allowed_origins(self) -> None:
        origins = {self.origin, *self._extra_origins}
        if self._deployment is not None:
            origins.update(self.store.routes_of(self._deployment))
        self._allowed = frozenset(origins)
        self._allowed_read_at = time.monotonic()

    def applies_to(self, url: httpx.URL) -> bool:
        try:
            origin = origin_of(url)
        except ValueError:
            return False
        if origin in self._allowed:
            return True
        stale = time.monotonic() - self._allowed_read_at > _ROUTES_REFRESH_SECONDS
        if self._deployment is None or not stale:
            return False
        self._read_allowed_origins()
        return origin in self._allowed

    def guard_request(self, request: httpx.Request) -> None:
        """Strip Pomerium credentials from a request to a foreign origin.

        Installed as a request event hook, it runs on every redirect hop.
        httpx drops Authorization on cross-origin redirects by itself but keeps
        X-Pomerium-Authorization.
        """
        if self.applies_to(request.url):
            return
        request.headers.pop("x-pomerium-authorization", None)
        if request.headers.get("authorization", "").startswith("Pomerium "):
            del request.headers["authorization"]

    async def aguard_request(self, request: httpx.Request) -> None:
        self.guard_request(request)

    def _http(self) -> httpx.Client:
        if self._http_client is None:
            self._http_client = httpx.Client(
                verify=self.verify, trust_env=self.trust_env, timeout=10.0
            )
        return self._http_client

    # Token acquisition (blocking; async callers run these in a worker thread)

    def _can_prompt(self) -> bool:
        return self.interactive if self.interactive is not None else is_interactive()

    def _discover_deployment(self) -> str | None:
        if self._deployment is not None:
            return self._deployment
        known = self.store.deployment_for(self.origin)
        if known is None and self.store.entries():
            try:
                sign_in = request_sign_in_url(
                    self._http(), self.route_url, _DISCOVERY_CALLBACK
                )
            except RedirectNotAllowed:
                known = self.origin
            else:
                known = deployment_key(self.route_url, sign_in)
                self.store.remember_route(self.origin, known)
        self._deployment = known
        self._read_allowed_origins()
        return known

    def current_token(self) -> Token:
        """Return a token to send, signing in first when there is none."""
        token = self._token
        if token is not None:
            return token
        with self._lock:
            if self._token is not None:
                return self._token
            if self.service_account is not None:
                self._token = self.service_account
                return self._token
            deployment = self._discover_deployment()
            cached = self.store.get(deployment) if deployment else None
            if cached is not None:
                self._token = cached
                return cached
            return self._sign_in("no token is stored")

    def renew(self, failed: Token) -> Token:
        """Replace a token Pomerium refused; at most one sign-in for all callers."""
        with self._lock:
            if self._token is not None and self._token != failed:
                return self._token
            self._token = None
            if failed.source == SERVICE_ACCOUNT:
                raise TokenRejected(self.route_url, SERVICE_ACCOUNT)
            deployment = self._discover_deployment()
            if deployment is not None:
                stored = self.store.get(deployment)
                if stored is not None and stored != failed:
                    # Another process signed in meanwhile.
                    self._token = stored
                    return stored
                if stored is not None:
                    self.store.delete(deployment)
            return self._sign_in("Pomerium no longer accepts the stored token")

    def _sign_in(self, reason: str) -> Token:
        if not self._can_prompt():
            raise LoginRequired(self.route_url, reason)
        log.info(
            "Signing in to %s with the %s method.", self.origin, self.login_method.name
        )
        result = self.login_method.login(self.route_url, self._http())
        deployment = deployment_key(self.route_url, result.sign_in_url)
        self.store.put(deployment, result.token)
        self.store.remember_route(self.origin, deployment)
        self._deployment = deployment
        self._read_allowed_origins()
        self._token = result.token
        self.login_count += 1
        log.info(
            "Signed in to %s as %s.", deployment, result.token.user or "an unnamed user"
        )
        return result.token

    def forget(self) -> None:
        """Drop this process's copy of the token and the stored one."""
        with self._lock:
            self._token = None
            deployment = self._discover_deployment()
            if deployment is not None:
                self.store.delete(deployment)

    # Checks on responses

    def _probe(self, token: Token) -> bool | None:
        """Ask Pomerium whether a token is alive: True, False, or None if unknown."""
        try:
            response = self._http().get(
                f"{self.origin}{USER_INFO_PATH}",
                headers={
                    "Authorization": f"Pomerium {token.value}",
                    "Accept": "application/json",
                },
                follow_redirects=False,
            )
        except httpx.TransportError:
            return None
        if response.status_code == 200:
            return True
        if response.status_code == 401 or is_sign_in_redirect(response):
            return False
        return None

    def _classify(self, response: httpx.Response, skip: int = 0) -> bool | None:
        """Tell whether a response means the token is dead, or None if unsure.

        Only responses from the deployment's own origins count, because a
        redirect to another host that has its own sign-in is no verdict on
        this token.
        `skip` leaves out the first history entries, because httpx lists the
        earlier responses of the same auth flow there, not only redirects.
        """
        hops = [*response.history[skip:], response]
        ours = [hop for hop in hops if self.applies_to(hop.request.url)]
        if any(is_sign_in_redirect(hop) for hop in ours):
            return True
        if response.status_code != 401 or response not in ours:
            return False
        return _pomerium_401(response)

    def _token_dead(
        self, response: httpx.Response, token: Token, skip: int = 0
    ) -> bool:
        verdict = self._classify(response, skip)
        if verdict is None:
            # The upstream app may return 401 for its own reasons, so the token
            # is checked with Pomerium directly.
            verdict = self._probe(token) is not True
        return verdict

    async def _atoken_dead(
        self, response: httpx.Response, token: Token, skip: int = 0
    ) -> bool:
        verdict = self._classify(response, skip)
        if verdict is None:
            probed = await anyio.to_thread.run_sync(self._probe, token)
            verdict = probed is not True
        return verdict

    # Applying the token

    def _authorize(self, request: httpx.Request, token: Token) -> httpx.Request:
        own = request.headers.get("authorization")
        if own is not None and not own.startswith("Pomerium "):
            if not self.guarded:
                raise PomeriumError(
                    "This request sets its own Authorization header, so the "
                    "Pomerium token must go in X-Pomerium-Authorization, which "
                    "httpx would forward on redirects to other hosts. Use "
                    "pomerium_jupyter.client(...) or auth.install(client) so "
                    "redirects are guarded."
                )
            request.headers["X-Pomerium-Authorization"] = token.value
        else:
            request.headers["Authorization"] = f"Pomerium {token.value}"
        # A stale session cookie would take precedence over the header.
        cookie = request.headers.get("cookie")
        if cookie and "_pomerium=" in cookie:
            kept = [c for c in cookie.split("; ") if not c.startswith("_pomerium=")]
            if kept:
                request.headers["cookie"] = "; ".join(kept)
            else:
                del request.headers["cookie"]
        return request

    def _check_replay(self, request: httpx.Request) -> None:
        if not _is_replayable(request):
            raise RequestNotReplayable(
                request.method, str(request.url.copy_with(query=None))
            )

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if not self.applies_to(request.url):
            yield request
            return
        token = self.current_token()
        response = yield self._authorize(request, token)
        if response.status_code == 401:
            response.read()
        if not self._token_dead(response, token):
            return
        fresh = self.renew(token)
        self._check_replay(request)
        skip = len(response.history) + 1
        response = yield self._authorize(request, fresh)
        if response.status_code == 401:
            response.read()
        if self._token_dead(response, fresh, skip):
            raise TokenRejected(self.route_url, fresh.source)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> Any:  # AsyncGenerator[httpx.Request, httpx.Response]
        if not self.applies_to(request.url):
            yield request
            return
        token = self._token
        if token is None:
            async with self._async_lock:
                token = await anyio.to_thread.run_sync(self.current_token)
        response = yield self._authorize(request, token)
        if response.status_code == 401:
            await response.aread()
        if not await self._atoken_dead(response, token):
            return
        async with self._async_lock:
            current = self._token
            if current is not None and current != token:
                fresh = current
            else:
                fresh = await anyio.to_thread.run_sync(self.renew, token)
        self._check_replay(request)
        skip = len(response.history) + 1
        response = yield self._authorize(request, fresh)
        if response.status_code == 401:
            await response.aread()
        if await self._atoken_dead(response, fresh, skip):
            raise TokenRejected(self.route_url, fresh.source)

    # Installing into clients

    def install(self, client: httpx.Client | httpx.AsyncClient) -> None:
        """Use this auth on `client` and strip the token from foreign redirects."""
        client.auth = self
        if isinstance(client, httpx.AsyncClient):
            client.event_hooks["request"].append(self.aguard_request)
        else:
            client.event_hooks["request"].append(self.guard_request)
        self.guarded = True

    def close(self) -> None:
        if self._http_client is not None:
            self._http_client.close()
            self._http_client = None


def client(
    route_url: str, *, auth: PomeriumAuth | None = None, **kwargs: Any
) -> httpx.Client:
    """Return an httpx.Client bound to a Pomerium route.

    Keyword arguments of PomeriumAuth (store, login, interactive,
    service_account, service_account_file, hosts, verify, trust_env) configure
    the authentication; the others go to httpx.Client. Relative URLs resolve
    against the route.
    """
    auth, client_kwargs = _prepare_client(route_url, auth, kwargs)
    result = httpx.Client(**client_kwargs)
    auth.install(result)
    return result


def async_client(
    route_url: str, *, auth: PomeriumAuth | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """Return an httpx.AsyncClient bound to a Pomerium route (see `client`)."""
    auth, client_kwargs = _prepare_client(route_url, auth, kwargs)
    result = httpx.AsyncClient(**client_kwargs)
    auth.install(result)
    return result


_AUTH_KEYWORDS = frozenset(
    {
        "store",
        "login",
        "interactive",
        "service_account",
        "service_account_file",
        "hosts",
        "verify",
        "trust_env",
    }
)


def _prepare_client(
    route_url: str, auth: PomeriumAuth | None, kwargs: dict[str, Any]
) -> tuple[PomeriumAuth, dict[str, Any]]:
    """Split keyword arguments between PomeriumAuth and the httpx client."""
    auth_kwargs = {k: v for k, v in kwargs.items() if k in _AUTH_KEYWORDS}
    client_kwargs = {k: v for k, v in kwargs.items() if k not in _AUTH_KEYWORDS}
    auth = auth or PomeriumAuth(route_url, **auth_kwargs)
    client_kwargs.setdefault("base_url", route_url)
    client_kwargs.setdefault("verify", auth.verify)
    client_kwargs.setdefault("trust_env", auth.trust_env)
    return auth, client_kwargs
