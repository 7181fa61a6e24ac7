"""The Pomerium server extension in a real Jupyter server against the test Pomerium.

The Jupyter server runs with a non-root base URL, with
`allow_unauthenticated_access = False`, and with an identity provider that maps
two tokens to the Jupyter users alice and bob. Requests authenticate either with
`Authorization: token` (jp_fetch, exempt from XSRF) or, like a browser, with the
login cookie from the /login form plus the XSRF token.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from _jupyter_process import CHROMIUM, launch_chromium
from jupyter_server.auth import Authorizer, IdentityProvider, User
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets import TraitError

from pomerium_jupyter import FileTokenStore, Token
from pomerium_jupyter._protocol import deployment_key, origin_of
from pomerium_jupyter.server import PomeriumExtension
from pomerium_jupyter.testing import PomeriumTestServer, ScriptedBrowser

ALICE_TOKEN = "alice-jupyter-token"
BOB_TOKEN = "bob-jupyter-token"
JUPYTER_USERS = {ALICE_TOKEN: "alice", BOB_TOKEN: "bob"}


class TwoUserIdentityProvider(IdentityProvider):
    """Maps each of two API tokens (header, ?token= or login form) to a user."""

    async def get_user_token(self, handler: Any) -> User | None:
        name = JUPYTER_USERS.get(self.get_token(handler) or "")
        return User(name) if name else None

    def process_login_form(self, handler: Any) -> User | None:
        name = JUPYTER_USERS.get(handler.get_argument("password", default=""))
        return User(name) if name else None


Fetch = Callable[..., Awaitable[HTTPResponse]]


@pytest.fixture
def token_dir(tmp_path: Path) -> Path:
    return tmp_path / "tokens"


@pytest.fixture
def jp_server_config(token_dir: Path) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {
                "pomerium_jupyter": True,
                "jupyter_server_terminals": False,
            },
            "allow_unauthenticated_access": False,
            "identity_provider_class": TwoUserIdentityProvider,
        },
        "IdentityProvider": {"token": ALICE_TOKEN},
        "PomeriumExtension": {"token_cache_dir": str(token_dir)},
    }


@pytest.fixture
def pomerium() -> Iterator[PomeriumTestServer]:
    with PomeriumTestServer() as server:
        yield server


@pytest.fixture
def extension(jp_serverapp: Any) -> PomeriumExtension:
    apps = jp_serverapp.extension_manager.extension_apps["pomerium_jupyter"]
    (app,) = apps
    assert isinstance(app, PomeriumExtension)
    return app


@pytest.fixture
def jupyter_origin(http_server: Any, jp_http_port: int) -> str:
    """The origin of the listening Jupyter server."""
    return f"http://127.0.0.1:{jp_http_port}"


@pytest.fixture
def server_logs(jp_serverapp: Any) -> Iterator[io.StringIO]:
    """Every log record of the Jupyter process at DEBUG, access log included.

    The extension's logger does not propagate, so the handler is attached to
    it and to the root logger. Two sources are left out because they stand
    for other processes: the test Pomerium's logger, and httpcore, whose DEBUG
    lines show the response headers that the in-test browser receives,
    including Pomerium's redirect that carries the token.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.addFilter(
        lambda record: (
            not record.name.startswith(("pomerium_jupyter.testing", "httpcore"))
        )
    )
    loggers = [logging.getLogger(), logging.getLogger("PomeriumExtension")]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def fetch(jp_fetch: Fetch, *parts: str, **kwargs: Any) -> HTTPResponse:
    """jp_fetch that returns error responses instead of raising."""
    kwargs.setdefault("follow_redirects", False)
    try:
        return await jp_fetch(*parts, **kwargs)
    except HTTPClientError as error:
        assert error.response is not None
        return error.response


def body_json(response: HTTPResponse) -> dict[str, Any]:
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return document


def start_params(
    route: str, origin: str, request: str = "req-1", **extra: str
) -> dict[str, str]:
    return {"route": route, "origin": origin, "request": request, **extra}


async def start_flow(
    jp_fetch: Fetch,
    route: str,
    origin: str,
    request: str = "req-1",
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    """Request the start of a sign-in flow for `route`."""
    return await fetch(
        jp_fetch,
        "pomerium",
        "start",
        params=start_params(route, origin, request),
        headers=headers,
    )


async def request_state(jp_fetch: Fetch, request: str) -> dict[str, Any]:
    """Return the state of a sign-in request, as its endpoint reports it."""
    return body_json(await fetch(jp_fetch, "pomerium", "api", "requests", request))


async def sign_out(jp_fetch: Fetch, route: str | None = None) -> HTTPResponse:
    """Sign out of the deployment of `route`, or of every deployment without one."""
    body = "{}" if route is None else json.dumps({"route": route})
    return await fetch(jp_fetch, "pomerium", "api", "logout", method="POST", body=body)


def sign_in(location: str, username: str = "alice") -> str:
    """Sign in at Pomerium like a browser and return the final callback URL."""
    browser = ScriptedBrowser(username, deliver=False)
    try:
        browser(location)
    finally:
        browser.close()
    assert browser.error is None, browser.error
    assert browser.final_url is not None
    return browser.final_url


def callback_query(callback_url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(callback_url).query)
    return query["flow"][0], query["pomerium_jwt"][0]


async def start_and_sign_in(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    origin: str,
    request: str = "req-1",
    headers: dict[str, str] | None = None,
) -> tuple[str, str, str, str]:
    """Start a flow as a Jupyter user, sign in, return (location, url, flow, token)."""
    response = await start_flow(
        jp_fetch, pomerium.route_url("app"), origin, request, headers=headers
    )
    assert response.code == 302
    location = response.headers["Location"]
    callback_url = sign_in(location)
    flow, token = callback_query(callback_url)
    return location, callback_url, flow, token


async def post_completion(
    jp_fetch: Fetch, flow: str, body: str, headers: dict[str, str] | None = None
) -> HTTPResponse:
    """POST `body` as is to the completion endpoint of `flow`."""
    return await fetch(
        jp_fetch,
        "pomerium",
        "api",
        "flows",
        flow,
        "complete",
        method="POST",
        body=body,
        headers=headers,
    )


async def complete(
    jp_fetch: Fetch, flow: str, token: str, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return await post_completion(
        jp_fetch, flow, json.dumps({"token": token}), headers=headers
    )


# Authentication rules


async def test_anonymous_requests_rejected(
    jupyter_origin: str, jp_base_url: str, extension: PomeriumExtension
) -> None:
    base = f"{jupyter_origin}{jp_base_url}pomerium/"
    async with httpx.AsyncClient() as client:
        start = await client.get(f"{base}start?route=http://127.0.0.1:1&request=r")
        status = await client.get(f"{base}api/status")
        request = await client.get(f"{base}api/requests/r")
        done = await client.post(f"{base}api/flows/x/complete", json={"token": "t"})
        logout = await client.post(f"{base}api/logout", json={})
        callback = await client.get(f"{base}callback?flow=x&pomerium_jwt=t")

    assert start.status_code == 302
    assert "/login?next=" in start.headers["location"]
    assert status.status_code == 403
    assert request.status_code == 403
    assert done.status_code == 403
    assert logout.status_code == 403
    assert callback.status_code == 200
    assert len(extension.flows) == 0


class DenyPomeriumAuthorizer(Authorizer):
    """Allows everything except actions on the "pomerium" resource."""

    def is_authorized(
        self, handler: Any, user: User, action: str, resource: str
    ) -> bool:
        return resource != "pomerium"


async def test_authorizer_can_deny_endpoints(
    jp_fetch: Fetch, jp_web_app: Any, jupyter_origin: str, extension: PomeriumExtension
) -> None:
    jp_web_app.settings["authorizer"] = DenyPomeriumAuthorizer()
    start = await start_flow(jp_fetch, "http://127.0.0.1:1", jupyter_origin)
    status = await fetch(jp_fetch, "pomerium", "api", "status")
    logout = await sign_out(jp_fetch)

    assert start.code == 403
    assert status.code == 403
    assert logout.code == 403
    assert len(extension.flows) == 0


async def test_scrub_setting_lists_token_param(jp_web_app: Any) -> None:
    keys = jp_web_app.settings["extra_log_scrub_param_keys"]
    assert "pomerium_jwt" in keys


# The whole flow with token authentication


async def test_token_auth_flow_stores_token(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    jupyter_origin: str,
    jp_base_url: str,
    token_dir: Path,
    server_logs: io.StringIO,
) -> None:
    route = pomerium.route_url("app")
    responses: list[HTTPResponse] = []

    started = await start_flow(jp_fetch, route, jupyter_origin)
    responses.append(started)
    assert started.code == 302
    location = started.headers["Location"]
    assert location.startswith(f"{pomerium.authenticate_url}/.pomerium/sign_in?")
    redirect_uri = parse_qs(urlsplit(location).query)["pomerium_redirect_uri"][0]
    assert redirect_uri.startswith(f"{jupyter_origin}{jp_base_url}pomerium/callback?")

    pending = await fetch(jp_fetch, "pomerium", "api", "requests", "req-1")
    responses.append(pending)
    assert body_json(pending)["status"] == "pending"
    assert 300 < body_json(pending)["expires_in"] <= 360

    callback_url = sign_in(location)
    flow, token = callback_query(callback_url)
    assert callback_url.startswith(redirect_uri.split("?")[0])

    page = await fetch(
        jp_fetch,
        "pomerium",
        "callback",
        params={"flow": flow, "pomerium_jwt": token},
    )
    responses.append(page)
    assert page.code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    csp = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in page.body.decode()
    assert "history.replaceState" in page.body.decode()

    done = await complete(jp_fetch, flow, token)
    responses.append(done)
    assert done.code == 200
    expected_deployment = deployment_key(route, location)
    assert body_json(done) == {
        "status": "done",
        "user": "alice",
        "deployment": expected_deployment,
        "request": "req-1",
    }

    store = FileTokenStore(token_dir)
    stored = store.get(expected_deployment)
    assert stored is not None
    assert stored.value == token
    assert store.deployment_for(origin_of(route)) == expected_deployment

    state = await fetch(jp_fetch, "pomerium", "api", "requests", "req-1")
    responses.append(state)
    assert body_json(state)["status"] == "done"
    assert body_json(state)["user"] == "alice"
    assert body_json(state)["deployment"] == expected_deployment

    status = await fetch(jp_fetch, "pomerium", "api", "status")
    responses.append(status)
    (entry,) = body_json(status)["deployments"]
    assert entry["deployment"] == expected_deployment
    assert entry["user"] == "alice"
    assert entry["routes"] == [origin_of(route)]
    assert body_json(status)["allowed_routes"] is None

    # The stored token really signs the user in at Pomerium.
    async with httpx.AsyncClient() as client:
        echo = await client.get(
            f"{pomerium.route_url('api')}/whoami",
            headers={"Authorization": f"Pomerium {token}"},
        )
    assert echo.status_code == 200
    assert echo.json()["user"] == "alice"

    for response in responses:
        assert token not in response.body.decode()
        assert token not in str(response.headers)
    logs = server_logs.getvalue()
    assert "pomerium_jwt=[secret]" in logs
    assert token not in logs
    assert "Pomerium sign-in completed: alice" in logs


async def test_logout_removes_token(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    pomerium_server_factory: Callable[..., PomeriumTestServer],
    jupyter_origin: str,
    token_dir: Path,
) -> None:
    other_deployment = pomerium_server_factory()
    _, _, flow, token = await start_and_sign_in(jp_fetch, pomerium, jupyter_origin)
    assert (await complete(jp_fetch, flow, token)).code == 200
    store = FileTokenStore(token_dir)
    assert len(store.entries()) == 1

    other = await sign_out(jp_fetch, other_deployment.route_url("app"))
    assert other.code == 200
    assert len(body_json(other)["deployments"]) == 1

    # The token came through the "app" route; "api" is a route of the same
    # deployment that the store has not seen.
    out = await sign_out(jp_fetch, pomerium.route_url("api"))
    assert out.code == 200
    assert body_json(out)["deployments"] == []
    assert store.entries() == []

    invalid = await sign_out(jp_fetch, "not a url")
    assert invalid.code == 400


async def test_logout_all_clears_store(
    jp_fetch: Fetch, pomerium: PomeriumTestServer, token_dir: Path
) -> None:
    store = FileTokenStore(token_dir)
    store.put("https://a.example#idp=x", Token(pomerium.mint_token("alice")))
    store.put("https://b.example#idp=y", Token(pomerium.mint_token("bob")))

    out = await sign_out(jp_fetch)
    assert out.code == 200
    assert body_json(out)["deployments"] == []
    assert store.entries() == []


def reject_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not valid JSON")


async def test_status_drops_infinite_expiry(jp_fetch: Fetch, token_dir: Path) -> None:
    # The exp claim is unverified; 1e400 decodes to infinity, which
    # json.dumps writes as Infinity and browsers then fail to parse.
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    payload = b'{"email": "mallory@example.com", "exp": 1e400}'
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    FileTokenStore(token_dir).put("https://odd.example", Token(f"{header}.{body}.sig"))

    status = await fetch(jp_fetch, "pomerium", "api", "status")
    assert status.code == 200
    document = json.loads(status.body, parse_constant=reject_constant)
    (entry,) = document["deployments"]
    assert entry["user"] == "mallory@example.com"
    assert entry["expires_at"] is None


async def test_logout_skips_disallowed_route(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    pomerium_server_factory: Callable[..., PomeriumTestServer],
    extension: PomeriumExtension,
) -> None:
    # Discovering a route's deployment is a request to that route, which
    # allowed_routes keeps the server from sending.
    other = pomerium_server_factory()
    extension.allowed_routes = [pomerium.route_url("app")]
    calls = other.login_api_calls

    out = await sign_out(jp_fetch, other.route_url("app"))
    assert out.code == 200
    assert other.login_api_calls == calls


# Cookie and XSRF authentication, as in a browser


async def browser_login(client: httpx.AsyncClient, base: str) -> str:
    """Log in through the /login form and return the _xsrf cookie value."""
    form = await client.get(f"{base}login")
    assert form.status_code == 200
    xsrf = client.cookies["_xsrf"]
    response = await client.post(
        f"{base}login", data={"_xsrf": xsrf, "password": ALICE_TOKEN}
    )
    assert response.status_code == 302
    assert any(name.startswith("username-") for name in client.cookies)
    return xsrf


async def test_cookie_auth_requires_xsrf(
    pomerium: PomeriumTestServer,
    jupyter_origin: str,
    jp_base_url: str,
    token_dir: Path,
    extension: PomeriumExtension,
) -> None:
    base = f"{jupyter_origin}{jp_base_url}"
    route = pomerium.route_url("app")
    async with httpx.AsyncClient() as client:
        xsrf = await browser_login(client, base)
        params = start_params(route, jupyter_origin, "cookie-req")

        no_xsrf = await client.get(f"{base}pomerium/start?{urlencode(params)}")
        assert no_xsrf.status_code == 403
        assert len(extension.flows) == 0

        # jupyter_server accepts a same-origin Referer in place of the XSRF
        # token on GET; starting a sign-in must not.
        referred = await client.get(
            f"{base}pomerium/start?{urlencode(params)}",
            headers={"Referer": f"{base}lab"},
        )
        assert referred.status_code == 403
        assert len(extension.flows) == 0

        query = urlencode({**params, "_xsrf": xsrf})
        started = await client.get(f"{base}pomerium/start?{query}")
        assert started.status_code == 302
        callback_url = sign_in(started.headers["location"])
        flow, token = callback_query(callback_url)

        page = await client.get(callback_url)
        assert page.status_code == 200
        assert token not in page.text

        complete_url = f"{base}pomerium/api/flows/{flow}/complete"
        rejected = await client.post(complete_url, json={"token": token})
        assert rejected.status_code == 403
        assert token not in rejected.text

        state = await client.get(
            f"{base}pomerium/api/requests/cookie-req",
            headers={"X-XSRFToken": xsrf},
        )
        assert state.json()["status"] == "pending"

        done = await client.post(
            complete_url, json={"token": token}, headers={"X-XSRFToken": xsrf}
        )
        assert done.status_code == 200
        assert done.json()["user"] == "alice"

        status = await client.get(
            f"{base}pomerium/api/status", headers={"X-XSRFToken": xsrf}
        )
        assert status.status_code == 200
        assert status.json()["deployments"][0]["user"] == "alice"
        assert token not in status.text

        logout_url = f"{base}pomerium/api/logout"
        forged = await client.post(logout_url, json={})
        assert forged.status_code == 403
        assert len(FileTokenStore(token_dir).entries()) == 1
        out = await client.post(logout_url, json={}, headers={"X-XSRFToken": xsrf})
        assert out.status_code == 200
        assert FileTokenStore(token_dir).entries() == []


# Failures at start


async def test_redirect_not_allowed_reported(
    jp_fetch: Fetch,
    pomerium_server_factory: Callable[..., PomeriumTestServer],
    jupyter_origin: str,
) -> None:
    pomerium = pomerium_server_factory(allow_list=("notebooks.example.org",))
    page = await start_flow(
        jp_fetch, pomerium.route_url("app"), jupyter_origin, "denied"
    )
    assert page.code == 200
    text = page.body.decode()
    assert "programmatic_redirect_domain_whitelist" in text
    assert "&#x27;127.0.0.1&#x27;" in text
    assert page.headers["Cache-Control"] == "no-store"

    state = await request_state(jp_fetch, "denied")
    assert state["status"] == "error"
    assert (
        "'127.0.0.1' is not in its programmatic_redirect_domain_whitelist"
        in (state["message"])
    )


async def test_route_outside_allowed_routes(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    jupyter_origin: str,
    extension: PomeriumExtension,
) -> None:
    extension.allowed_routes = [pomerium.route_url("api") + "/some/path"]
    calls = pomerium.login_api_calls

    page = await start_flow(
        jp_fetch, pomerium.route_url("app"), jupyter_origin, "r-app"
    )
    assert page.code == 200
    assert "PomeriumExtension.allowed_routes" in page.body.decode()
    assert pomerium.login_api_calls == calls
    state = await request_state(jp_fetch, "r-app")
    assert state["status"] == "error"

    allowed = await start_flow(
        jp_fetch, pomerium.route_url("api"), jupyter_origin, "r-api"
    )
    assert allowed.code == 302
    status = body_json(await fetch(jp_fetch, "pomerium", "api", "status"))
    assert status["allowed_routes"] == [pomerium.route_url("api")]


async def test_foreign_origin_rejected(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    jp_http_port: int,
    extension: PomeriumExtension,
) -> None:
    route = pomerium.route_url("app")
    for origin in ("http://evil.example.org", "javascript:alert(1)", "http://a@b"):
        page = await start_flow(jp_fetch, route, origin, "o")
        assert page.code == 200
        assert "Pomerium sign-in failed" in page.body.decode()

    localhost = f"http://localhost:{jp_http_port}"
    refused = await start_flow(jp_fetch, route, localhost, "o")
    assert refused.code == 200

    extension.callback_hosts = ["localhost"]
    accepted = await start_flow(jp_fetch, route, localhost, "o")
    assert accepted.code == 302
    query = parse_qs(urlsplit(accepted.headers["Location"]).query)
    assert query["pomerium_redirect_uri"][0].startswith(f"{localhost}/a%40b/")


async def test_invalid_start_arguments(
    jp_fetch: Fetch, pomerium: PomeriumTestServer, jupyter_origin: str
) -> None:
    no_request = await fetch(
        jp_fetch,
        "pomerium",
        "start",
        params={"route": pomerium.route_url("app"), "origin": jupyter_origin},
    )
    assert no_request.code == 400

    bad_route = await start_flow(
        jp_fetch, "ftp://files.example.org", jupyter_origin, "bad"
    )
    assert bad_route.code == 200
    state = await request_state(jp_fetch, "bad")
    assert state["status"] == "error"
    assert "ftp://files.example.org" in state["message"]


async def test_callback_url_setting_used(
    jp_fetch: Fetch,
    pomerium_server_factory: Callable[..., PomeriumTestServer],
    extension: PomeriumExtension,
) -> None:
    pomerium = pomerium_server_factory(allow_list=("notebooks.example.org",))
    public = "https://notebooks.example.org/jupyter/pomerium/callback"
    extension.callback_url = public
    started = await start_flow(
        jp_fetch, pomerium.route_url("app"), "http://ignored", "p"
    )
    assert started.code == 302
    query = parse_qs(urlsplit(started.headers["Location"]).query)
    assert query["pomerium_redirect_uri"][0].startswith(f"{public}?flow=")

    with pytest.raises(TraitError):
        extension.callback_url = "https://notebooks.example.org/elsewhere"
    with pytest.raises(TraitError):
        extension.allowed_routes = ["not a url"]
    with pytest.raises(TraitError):
        extension.flow_timeout = 0


# Rejected completions


async def test_other_user_cannot_complete(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    jupyter_origin: str,
    token_dir: Path,
    server_logs: io.StringIO,
) -> None:
    _, _, flow, token = await start_and_sign_in(
        jp_fetch, pomerium, jupyter_origin, request="alice-req"
    )
    bob = {"Authorization": f"token {BOB_TOKEN}"}

    stolen = await complete(jp_fetch, flow, token, headers=bob)
    assert stolen.code == 403
    assert body_json(stolen)["reason"] == "other-user"
    assert body_json(stolen)["request"] is None
    assert token not in stolen.body.decode()
    assert FileTokenStore(token_dir).entries() == []

    hidden = await fetch(
        jp_fetch, "pomerium", "api", "requests", "alice-req", headers=bob
    )
    assert hidden.code == 404

    warnings = [
        line
        for line in server_logs.getvalue().splitlines()
        if "Rejected a Pomerium sign-in completion" in line
    ]
    assert len(warnings) == 1
    assert "Jupyter user bob from 127.0.0.1: other-user" in warnings[0]

    # The rejected attempt left the flow usable for its owner.
    owner = await complete(jp_fetch, flow, token)
    assert owner.code == 200
    assert token not in server_logs.getvalue()


async def test_expired_flow_rejected(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    jupyter_origin: str,
    extension: PomeriumExtension,
    token_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, flow, token = await start_and_sign_in(jp_fetch, pomerium, jupyter_origin)
    real_clock = extension.flows.clock
    monkeypatch.setattr(extension.flows, "clock", lambda: real_clock() + 361)

    late = await complete(jp_fetch, flow, token)
    assert late.code == 410
    assert body_json(late)["reason"] == "expired"
    assert body_json(late)["request"] == "req-1"
    assert FileTokenStore(token_dir).entries() == []

    state = await request_state(jp_fetch, "req-1")
    assert state["status"] == "expired"
    assert state["expires_in"] == 0
    assert state["message"]


async def test_replayed_flow_rejected(
    jp_fetch: Fetch, pomerium: PomeriumTestServer, jupyter_origin: str
) -> None:
    _, _, flow, token = await start_and_sign_in(jp_fetch, pomerium, jupyter_origin)
    assert (await complete(jp_fetch, flow, token)).code == 200

    again = await complete(jp_fetch, flow, pomerium.mint_token("bob"))
    assert again.code == 410
    assert body_json(again)["reason"] == "used"
    status = body_json(await fetch(jp_fetch, "pomerium", "api", "status"))
    assert [entry["user"] for entry in status["deployments"]] == ["alice"]


async def test_unknown_flow_rejected(
    jp_fetch: Fetch, pomerium: PomeriumTestServer, token_dir: Path
) -> None:
    unknown = await complete(jp_fetch, "no-such-flow", pomerium.mint_token("alice"))
    assert unknown.code == 404
    assert body_json(unknown)["reason"] == "unknown"
    assert FileTokenStore(token_dir).entries() == []

    missing = await fetch(jp_fetch, "pomerium", "api", "requests", "never-started")
    assert missing.code == 404


async def test_completion_without_token_rejected(
    jp_fetch: Fetch, pomerium: PomeriumTestServer, jupyter_origin: str
) -> None:
    _, _, flow, token = await start_and_sign_in(jp_fetch, pomerium, jupyter_origin)
    for body in ("{}", "not json", json.dumps({"token": "two words"})):
        response = await post_completion(jp_fetch, flow, body)
        assert response.code == 400
        assert body_json(response)["reason"] == "no-token"

    assert (await complete(jp_fetch, flow, token)).code == 200


# The callback page's script in a real browser


@contextlib.asynccontextmanager
async def async_chromium() -> AsyncIterator[Any]:
    """Run Debian's Chromium on the test's event loop, next to the Jupyter server."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.mark.browser
async def test_popup_completes_sign_in(
    pomerium: PomeriumTestServer,
    jupyter_origin: str,
    jp_base_url: str,
    token_dir: Path,
    server_logs: io.StringIO,
) -> None:
    async with async_chromium() as chromium:
        base = f"{jupyter_origin}{jp_base_url}"
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(f"{base}login")
        await page.fill("input[name=password]", ALICE_TOKEN)
        async with page.expect_navigation():
            await page.press("input[name=password]", "Enter")
        cookies = {c["name"]: c["value"] for c in await context.cookies()}
        query = urlencode(
            {
                **start_params(pomerium.route_url("app"), jupyter_origin, "popup-req"),
                "_xsrf": cookies["_xsrf"],
            }
        )
        await page.evaluate(
            """() => {
                window.pomeriumMessages = [];
                window.pomeriumChannel = new BroadcastChannel("pomerium_jupyter");
                window.pomeriumChannel.onmessage = (event) => {
                    window.pomeriumMessages.push(event.data);
                };
            }"""
        )

        async with page.expect_popup() as popup_info:
            await page.evaluate(
                "url => { window.open(url); }", f"{base}pomerium/start?{query}"
            )
        popup = await popup_info.value
        await popup.wait_for_selector("input[name=username]")
        await popup.fill("input[name=username]", "alice")
        await popup.fill("input[name=password]", "alice-password")
        async with popup.expect_event("close", timeout=15000):
            await popup.click("#sign-in")

        await page.wait_for_function("window.pomeriumMessages.length > 0")
        messages = await page.evaluate("window.pomeriumMessages")
        assert messages == [{"request": "popup-req", "status": "done", "user": "alice"}]
        (entry,) = FileTokenStore(token_dir).entries()
        assert entry.token.user == "alice"
        assert entry.token.value not in server_logs.getvalue()
        await context.close()


@pytest.mark.browser
async def test_callback_page_without_jupyter_login(
    jp_fetch: Fetch,
    pomerium: PomeriumTestServer,
    jupyter_origin: str,
    jp_base_url: str,
    token_dir: Path,
) -> None:
    _, callback_url, _, token = await start_and_sign_in(
        jp_fetch, pomerium, jupyter_origin
    )
    async with async_chromium() as chromium:
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(callback_url)
        status = page.locator('[data-pomerium="callback-status"][data-state="error"]')
        await status.wait_for()

        assert await status.text_content() == (
            "Sign in to Jupyter in this browser, then start the sign-in again."
        )
        assert page.url == f"{jupyter_origin}{jp_base_url}pomerium/callback"
        assert token not in await page.content()
        assert FileTokenStore(token_dir).entries() == []
        await context.close()
