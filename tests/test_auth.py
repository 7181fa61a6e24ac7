"""PomeriumAuth end to end against the Pomerium test server on loopback."""

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

import pomerium_jupyter
from pomerium_jupyter import (
    FileTokenStore,
    LoginRequired,
    LoopbackLogin,
    MemoryTokenStore,
    PomeriumAuth,
    PomeriumError,
    RequestNotReplayable,
    TokenRejected,
)
from pomerium_jupyter.testing import (
    PomeriumTestServer,
    RecordingServer,
    ScriptedBrowser,
)

VERSIONS = ["0.14", "0.16", "0.31", "0.32.0", "0.33"]
Factory = Callable[..., PomeriumTestServer]


def quiet(_: str) -> None:
    """Swallow the 'open this URL' announcement."""


def browser_login(
    user: str = "alice", browser: ScriptedBrowser | None = None
) -> LoopbackLogin:
    return LoopbackLogin(
        browser=browser or ScriptedBrowser(user), timeout=20, announce=quiet
    )


def make_auth(
    server: PomeriumTestServer, route: str = "app", **kwargs: Any
) -> PomeriumAuth:
    kwargs.setdefault("login", browser_login())
    kwargs.setdefault("interactive", True)
    kwargs.setdefault("store", FileTokenStore())
    return PomeriumAuth(server.route_url(route), **kwargs)


@pytest.fixture
def server(pomerium_server_factory: Factory) -> PomeriumTestServer:
    return pomerium_server_factory()


@pytest.mark.parametrize("version", VERSIONS)
def test_login_then_request(pomerium_server_factory: Factory, version: str) -> None:
    server = pomerium_server_factory(version=version)
    auth = make_auth(server)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        response = client.get("/data", headers={"Accept": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == "alice"
    upstream = {k.lower() for k in body["headers"]}
    assert "authorization" not in upstream
    assert "x-pomerium-authorization" not in upstream
    assert auth.login_count == 1
    assert server.login_api_calls == 1


def test_token_reused_from_store(server: PomeriumTestServer) -> None:
    make_auth(server).current_token()
    second = make_auth(server, login=browser_login("bob"))
    with pomerium_jupyter.client(server.route_url(), auth=second) as client:
        assert client.get("/").json()["user"] == "alice"
    assert second.login_count == 0


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("accept", ["*/*", "application/json"])
def test_relogin_after_revoke(
    pomerium_server_factory: Factory, version: str, accept: str
) -> None:
    server = pomerium_server_factory(version=version)
    auth = make_auth(server)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        first = auth.current_token()
        assert client.get("/", headers={"Accept": accept}).status_code == 200
        assert first.session_id is not None
        server.revoke(first.session_id)
        response = client.get("/after", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    assert auth.login_count == 2
    assert auth.current_token() != first


@pytest.mark.parametrize("version", ["0.14", "0.31"])
def test_relogin_when_client_follows_redirects(
    pomerium_server_factory: Factory, version: str
) -> None:
    server = pomerium_server_factory(version=version)
    auth = make_auth(server)
    with pomerium_jupyter.client(
        server.route_url(), auth=auth, follow_redirects=True
    ) as client:
        token = auth.current_token()
        assert token.session_id is not None
        server.revoke(token.session_id)
        response = client.get("/after")
    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    assert auth.login_count == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_forbidden_keeps_token(pomerium_server_factory: Factory, version: str) -> None:
    server = pomerium_server_factory(version=version, policy={"app": {"bob"}})
    store = FileTokenStore()
    auth = make_auth(server, store=store)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        for _ in range(3):
            response = client.get("/", headers={"Accept": "application/json"})
            assert response.status_code == 403
    assert auth.login_count == 1
    assert server.login_api_calls == 1
    assert len(store.entries()) == 1


@pytest.mark.parametrize("version", ["0.31", "0.33"])
def test_single_login_for_async_burst(
    pomerium_server_factory: Factory, version: str
) -> None:
    server = pomerium_server_factory(version=version)
    auth = make_auth(server)
    token = auth.current_token()
    assert token.session_id is not None
    server.revoke(token.session_id)
    calls_before = server.login_api_calls

    async def burst() -> list[int]:
        async with pomerium_jupyter.async_client(
            server.route_url(),
            auth=auth,
            limits=httpx.Limits(max_connections=50),
            timeout=60,
        ) as client:
            responses = await asyncio.gather(
                *(client.get(f"/item/{n}") for n in range(200))
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    assert statuses == [200] * 200
    assert auth.login_count == 2
    assert server.login_api_calls == calls_before + 1


def test_single_login_for_threads(server: PomeriumTestServer) -> None:
    auth = make_auth(server)
    token = auth.current_token()
    assert token.session_id is not None
    server.revoke(token.session_id)
    statuses: list[int] = []
    lock = threading.Lock()

    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:

        def worker() -> None:
            status = client.get("/").status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert statuses == [200] * 20
    assert auth.login_count == 2


def test_one_sign_in_serves_all_routes(server: PomeriumTestServer) -> None:
    make_auth(server, "app").current_token()
    api = make_auth(server, "api", login=browser_login("bob"))
    with pomerium_jupyter.client(server.route_url("api"), auth=api) as client:
        response = client.get("/")
    assert response.json()["user"] == "alice"
    assert api.login_count == 0


def test_deployments_isolated(pomerium_server_factory: Factory) -> None:
    one = pomerium_server_factory()
    two = pomerium_server_factory()
    store = FileTokenStore()
    make_auth(one, store=store).current_token()
    recorder = ScriptedBrowser("bob")
    auth_two = make_auth(two, store=store, login=browser_login(browser=recorder))
    with pomerium_jupyter.client(two.route_url(), auth=auth_two) as client:
        assert client.get("/").json()["user"] == "bob"
    assert auth_two.login_count == 1
    assert len(store.entries()) == 2
    tokens = {entry.token.value for entry in store.entries()}
    assert len(tokens) == 2
    for request in two.requests:
        for value in request.headers.values():
            assert not any(
                token in value for token in tokens - {auth_two.current_token().value}
            )


@pytest.mark.parametrize("own_authorization", [False, True])
def test_redirect_to_foreign_host_drops_token(
    server: PomeriumTestServer, own_authorization: bool
) -> None:
    auth = make_auth(server)
    with (
        RecordingServer() as foreign,
        pomerium_jupyter.client(
            server.route_url(), auth=auth, follow_redirects=True
        ) as client,
    ):
        headers = {"Authorization": "Bearer upstream"} if own_authorization else {}
        response = client.get(
            "/redirect", params={"to": f"{foreign.url}/landing"}, headers=headers
        )
        assert response.status_code == 200
        assert len(foreign.requests) == 1
        token = auth.current_token().value
        for value in foreign.requests[0].headers.values():
            assert token not in value


def test_own_authorization_header_kept(server: PomeriumTestServer) -> None:
    auth = make_auth(server)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        response = client.get("/", headers={"Authorization": "Bearer upstream-token"})
    body = response.json()
    headers = {k.lower(): v for k, v in body["headers"].items()}
    assert body["user"] == "alice"
    assert headers["authorization"] == "Bearer upstream-token"
    assert "x-pomerium-authorization" not in headers


def test_own_authorization_needs_guarded_client(server: PomeriumTestServer) -> None:
    auth = make_auth(server)
    with (
        httpx.Client(auth=auth) as client,
        pytest.raises(PomeriumError, match="X-Pomerium-Authorization"),
    ):
        client.get(server.route_url(), headers={"Authorization": "Bearer upstream"})


def test_foreign_host_request_gets_no_token(server: PomeriumTestServer) -> None:
    auth = make_auth(server)
    with RecordingServer() as foreign, httpx.Client(auth=auth) as client:
        client.get(f"{foreign.url}/x")
        assert "authorization" not in {k.lower() for k in foreign.requests[0].headers}
    assert auth.login_count == 0


def test_body_replayed_after_relogin(server: PomeriumTestServer) -> None:
    auth = make_auth(server)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        token = auth.current_token()
        assert token.session_id is not None
        server.revoke(token.session_id)
        response = client.post("/upload", content=b"payload-bytes")
    assert response.json()["body"] == "payload-bytes"
    assert auth.login_count == 2


def test_stream_body_not_replayed(server: PomeriumTestServer) -> None:
    auth = make_auth(server)

    def chunks() -> Iterator[bytes]:
        yield b"part-1"
        yield b"part-2"

    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        token = auth.current_token()
        assert token.session_id is not None
        server.revoke(token.session_id)
        with pytest.raises(RequestNotReplayable, match="cannot be sent again"):
            client.post("/upload", content=chunks())
    assert auth.login_count == 2


def test_noninteractive_raises_login_required(server: PomeriumTestServer) -> None:
    auth = make_auth(server, interactive=False)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        with pytest.raises(LoginRequired) as caught:
            client.get("/")
    message = str(caught.value)
    assert f"jupyter pomerium login {server.route_url()}" in message
    assert "POMERIUM_JUPYTER_TOKEN" in message
    assert server.login_api_calls == 0


def test_ci_environment_is_noninteractive(
    server: PomeriumTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    auth = make_auth(server, interactive=None)
    with pytest.raises(LoginRequired):
        auth.current_token()


def test_noninteractive_after_token_dies(server: PomeriumTestServer) -> None:
    make_auth(server).current_token()
    auth = make_auth(server, interactive=False)
    token = auth.current_token()
    assert token.session_id is not None
    server.revoke(token.session_id)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        with pytest.raises(LoginRequired, match="no longer accepts"):
            client.get("/")


def test_service_account_from_environment(
    server: PomeriumTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POMERIUM_JUPYTER_TOKEN", server.mint_service_account("robot"))
    auth = make_auth(server, interactive=False)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        assert client.get("/").json()["user"] == "robot"
    assert server.login_api_calls == 0


def test_service_account_from_file(server: PomeriumTestServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(server.mint_service_account("robot") + "\n")
    auth = make_auth(server, service_account_file=path)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        assert client.get("/").json()["user"] == "robot"


def test_expired_service_account_rejected(server: PomeriumTestServer) -> None:
    token = server.mint_service_account("robot", expires_in=60)
    server.advance(120)
    auth = make_auth(server, service_account=token)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        with pytest.raises(TokenRejected, match="service-account token"):
            client.get("/")
    assert server.login_api_calls == 0


def test_missing_service_account_file(
    tmp_path: Path, server: PomeriumTestServer
) -> None:
    with pytest.raises(PomeriumError, match="Cannot read the service-account"):
        make_auth(server, service_account_file=tmp_path / "absent")


def test_stale_exp_claim_does_not_loop(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(version="0.32.0")
    auth = make_auth(server)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        for _ in range(3):
            assert client.get("/").status_code == 200
    token = auth.current_token()
    assert token.expires_at is not None
    assert auth.login_count == 1


def test_upstream_401_is_not_a_dead_token(server: PomeriumTestServer) -> None:
    auth = make_auth(server)
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        response = client.get("/status/401")
    assert response.status_code == 401
    assert auth.login_count == 1


def test_memory_store_leaves_no_files(
    server: PomeriumTestServer, isolated_environment: Path
) -> None:
    auth = make_auth(server, store=MemoryTokenStore())
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        assert client.get("/").status_code == 200
    assert not any(isolated_environment.rglob("*.json"))


def test_token_absent_from_logs_and_errors(
    pomerium_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = pomerium_server_factory()
    auth = make_auth(server)
    errors: list[BaseException] = []
    with pomerium_jupyter.client(server.route_url(), auth=auth) as client:
        client.get("/")
        token = auth.current_token()
        assert token.session_id is not None
        server.revoke(token.session_id)
        client.get("/again")

        def chunks() -> Iterator[bytes]:
            yield b"x"

        server.revoke(auth.current_token().session_id or "")
        try:
            client.post("/upload", content=chunks())
        except RequestNotReplayable as exc:
            errors.append(exc)
    auth_offline = make_auth(server, interactive=False, store=MemoryTokenStore())
    try:
        auth_offline.current_token()
    except LoginRequired as exc:
        errors.append(exc)
    assert len(errors) == 2
    secrets = {token.value, auth.current_token().value}
    texts = [repr(auth), repr(token), str(token)]
    texts += ["".join(traceback.format_exception(error)) for error in errors]
    # The scripted browser logs the callback URL it visits; the client side
    # must not log the token anywhere else.
    texts += [
        record.getMessage()
        for record in caplog.records
        if "/pomerium-callback/" not in record.getMessage()
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_tls_needs_deployment_ca(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(tls=True)
    assert server.ca_file is not None
    untrusted = make_auth(server, trust_env=False)
    with pytest.raises(PomeriumError) as caught:
        untrusted.current_token()
    assert "ca_file" in str(caught.value)
    assert "SSL_CERT_FILE" in str(caught.value)
    trusted = make_auth(
        server,
        verify=server.ca_file,
        login=browser_login(browser=ScriptedBrowser("alice", verify=server.ca_file)),
    )
    with pomerium_jupyter.client(server.route_url(), auth=trusted) as client:
        assert client.get("/").json()["user"] == "alice"


class _HostileRoute(ThreadingHTTPServer):
    """A host that replays a real route's sign-in URL from its own login API."""

    def __init__(self, real_route: str) -> None:
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        self.real_route = real_route
        self.seen_headers: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HostileHandler(BaseHTTPRequestHandler):
    server: _HostileRoute

    def do_GET(self) -> None:
        self.server.seen_headers.append(dict(self.headers.items()))
        if self.path.startswith("/.pomerium/api/v1/login"):
            real = httpx.get(self.server.real_route + self.path)
            body = real.content
        else:
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_hostile_host_cannot_borrow_token(server: PomeriumTestServer) -> None:
    store = FileTokenStore()
    token = make_auth(server, store=store).current_token()
    hostile = _HostileRoute(server.route_url())
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    try:
        auth = PomeriumAuth(hostile.url, store=store, interactive=False)
        with pomerium_jupyter.client(hostile.url, auth=auth) as client:
            with pytest.raises(LoginRequired):
                client.get("/")
    finally:
        hostile.shutdown()
        hostile.server_close()
    assert hostile.seen_headers, "the hostile login API was never asked"
    for headers in hostile.seen_headers:
        for value in headers.values():
            assert token.value not in value


def test_foreign_sign_in_redirect_keeps_token(
    pomerium_server_factory: Factory,
) -> None:
    ours = pomerium_server_factory()
    other = pomerium_server_factory()
    auth = make_auth(ours)
    token = auth.current_token()
    elsewhere = f"{other.route_url()}/private"
    with pomerium_jupyter.client(
        ours.route_url(), auth=auth, follow_redirects=True
    ) as client:
        response = client.get("/redirect", params={"to": elsewhere})
    assert response.history, "the request should have followed the redirect"
    assert auth.login_count == 1
    assert auth.current_token() == token
