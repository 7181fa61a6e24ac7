"""PomeriumTestServer: an authenticate origin plus one origin per route."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from ._authenticate import AuthenticateApp
from ._deployment import Deployment
from ._http import App, HTTPServerThread, Request, Response
from ._registry import register, unregister
from ._routes import RouteApp
from ._state import Behaviour, Clock
from ._tokens import SessionStore

DEFAULT_USERS = {"alice": "alice-password", "bob": "bob-password"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived, header values unchanged, names lowercased."""

    host_port: str
    method: str
    path: str
    headers: dict[str, str]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class PomeriumTestServer:
    """A local stand-in for a Pomerium deployment with the stateful login flow."""

    def __init__(
        self,
        *,
        version: str = "0.33",
        routes: Sequence[str] = ("app", "api"),
        allow_list: Sequence[str] | None = ("localhost",),
        users: Mapping[str, str] | None = None,
        policy: Mapping[str, Collection[str]] | None = None,
        host: str = "127.0.0.1",
        public_host: str | None = None,
        tls: bool = False,
        shared_secret: bytes | None = None,
        session_lifetime: float = 14 * 3600,
        sign_in_coop: bool = False,
        idp_id: str = "test-idp",
        port_base: int | None = None,
    ) -> None:
        if not routes:
            raise ValueError("routes must name at least one route")
        if len(set(routes)) != len(routes):
            raise ValueError(f"route names must be unique: {list(routes)}")
        self.version = version
        self.behaviour = Behaviour.parse(version)
        self.routes = tuple(routes)
        self.host = host
        self.public_host = public_host or host
        self.tls = tls
        self.port_base = port_base
        self.shared_secret = shared_secret or secrets.token_bytes(32)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self._clock = Clock()
        store = SessionStore(
            secret=self.shared_secret,
            idp_id=idp_id,
            behaviour=self.behaviour,
            clock=self._clock,
            session_lifetime=session_lifetime,
        )
        self.deployment = Deployment(
            behaviour=self.behaviour,
            clock=self._clock,
            store=store,
            secret=self.shared_secret,
            idp_id=idp_id,
            users=self.users,
            policy=None if policy is None else {k: set(v) for k, v in policy.items()},
            allow_list=None if allow_list is None else tuple(allow_list),
            session_lifetime=session_lifetime,
            sign_in_coop=sign_in_coop,
            scheme="https" if tls else "http",
        )
        self.requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._servers: list[HTTPServerThread] = []
        self._tls_directory: str | None = None
        self._registered: list[str] = []
        self.ca_file: str | None = None
        self.authenticate_url = ""
        self.route_urls: dict[str, str] = {}

    @property
    def login_api_calls(self) -> int:
        return self.deployment.login_api_calls

    @property
    def idp_id(self) -> str:
        return self.deployment.idp_id

    def start(self) -> PomeriumTestServer:
        """Bind every origin and serve it from background threads."""
        if self._servers:
            raise RuntimeError("the server is already running")
        ssl_context = None
        if self.tls:
            from ._tls import create_tls_files

            self._tls_directory = tempfile.mkdtemp(prefix="pomerium-test-tls-")
            files = create_tls_files(
                self._tls_directory,
                [self.public_host, self.host, "localhost", "127.0.0.1"],
            )
            self.ca_file = files.ca_file
            ssl_context = files.server_context()
        scheme = self.deployment.scheme
        try:
            labels = ["authenticate", *self.routes]
            for index, label in enumerate(labels):
                port = 0 if self.port_base is None else self.port_base + index
                app = self._authenticate_app() if index == 0 else self._route_app(label)
                server = HTTPServerThread(
                    app, host=self.host, port=port, ssl_context=ssl_context, label=label
                )
                self._servers.append(server)
                url = f"{scheme}://{_url_host(self.public_host)}:{server.port}"
                if index == 0:
                    self.authenticate_url = url
                else:
                    self.route_urls[label] = url
        except BaseException:
            self.stop()
            raise
        self.deployment.authenticate_url = self.authenticate_url
        self.deployment.route_urls = dict(self.route_urls)
        self._registered = self._origin_aliases()
        register(self._registered)
        for server in self._servers:
            server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; safe to call twice."""
        for server in self._servers:
            server.stop()
        self._servers = []
        unregister(self._registered)
        self._registered = []
        if self._tls_directory is not None:
            shutil.rmtree(self._tls_directory, ignore_errors=True)
            self._tls_directory = None

    def __enter__(self) -> PomeriumTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def route_url(self, name: str | None = None) -> str:
        """Return the origin URL of route `name`, or of the first route."""
        if not self.route_urls:
            raise RuntimeError("the server is not running; call start() first")
        key = self.routes[0] if name is None else name
        try:
            return self.route_urls[key]
        except KeyError:
            raise KeyError(
                f"unknown route {key!r}; routes: {list(self.routes)}"
            ) from None

    def advance(self, seconds: float) -> None:
        """Move the server clock forward, for sign-in URL and session expiry."""
        self._clock.advance(seconds)

    def revoke(self, jti: str) -> None:
        """Delete one session or service account; tokens with this jti stop working."""
        self.deployment.store.delete(jti)

    def revoke_user(self, user: str) -> None:
        """Delete every session of `user` (service accounts stay)."""
        self.deployment.store.delete_user(user)

    def sign_out_all(self) -> None:
        """Delete all sessions, which also ends every browser sign-in."""
        self.deployment.store.clear()

    def mint_service_account(self, user: str, expires_in: float | None = None) -> str:
        """Return a service-account JWT for `user`, accepted like a session token."""
        return self.deployment.store.mint_service_account(user, expires_in)

    def mint_token(self, user: str) -> str:
        """Create a session for `user` without a browser and return its token."""
        if not self.authenticate_url:
            raise RuntimeError("the server is not running; call start() first")
        session = self.deployment.store.create_session(user)
        authenticate_host = self.deployment.authenticate_host
        route_host = self.route_url().split("://", 1)[1]
        return self.deployment.store.mint_session_token(
            session, issuer=authenticate_host, audience=[authenticate_host, route_host]
        )

    def _authenticate_app(self) -> App:
        return self._recording(AuthenticateApp(self.deployment))

    def _route_app(self, name: str) -> App:
        return self._recording(RouteApp(self.deployment, name))

    def _recording(self, app: App) -> App:
        def handle(request: Request) -> Response:
            headers: dict[str, str] = {}
            for name, value in request.headers:
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            record = RecordedRequest(
                host_port=f"{request.local_host}:{request.local_port}",
                method=request.method,
                path=request.target,
                headers=headers,
            )
            with self._requests_lock:
                self.requests.append(record)
            return app(request)

        return handle

    def _origin_aliases(self) -> list[str]:
        hosts = {self.host, self.public_host}
        if hosts & {"127.0.0.1", "localhost"}:
            hosts |= {"127.0.0.1", "localhost"}
        scheme = self.deployment.scheme
        return [
            f"{scheme}://{_url_host(host)}:{server.port}"
            for server in self._servers
            for host in sorted(hosts)
        ]
