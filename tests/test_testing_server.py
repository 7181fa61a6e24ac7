"""Tests of the Pomerium test server in pomerium_jupyter.testing, over real HTTP."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote_plus, urlsplit

import httpx
import jwt
import pytest

from pomerium_jupyter.testing import (
    PomeriumTestServer,
    RecordingServer,
    ScriptedBrowser,
)

Factory = Callable[..., PomeriumTestServer]
LOGIN = "/.pomerium/api/v1/login"
CALLBACK = "http://127.0.0.1:9/cb"


@pytest.fixture(scope="module")
def shared() -> Iterator[PomeriumTestServer]:
    """A default server for tests that change no server state."""
    with PomeriumTestServer() as server:
        yield server


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def login_url(
    server: PomeriumTestServer, redirect_uri: str, route: str | None = None
) -> str:
    response = httpx.get(
        server.route_url(route) + LOGIN,
        params={"pomerium_redirect_uri": redirect_uri},
        verify=server.ca_file or True,
    )
    assert response.status_code == 200, response.text
    return response.text


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def browser_token(
    server: PomeriumTestServer,
    recorder: RecordingServer,
    browser: ScriptedBrowser | None = None,
    route: str | None = None,
) -> str:
    browser = browser or ScriptedBrowser()
    browser(login_url(server, recorder.url + "/cb", route))
    assert browser.error is None
    assert browser.final_url is not None
    return parse_qs(urlsplit(browser.final_url).query)["pomerium_jwt"][0]


# Login API


def test_login_api_returns_sign_in_url(shared: PomeriumTestServer) -> None:
    before = shared.login_api_calls
    response = httpx.get(
        shared.route_url() + LOGIN,
        params={"pomerium_redirect_uri": "http://127.0.0.1:9/cb?state=n"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert not response.text.endswith("\n")
    assert response.text.startswith(shared.authenticate_url + "/.pomerium/sign_in?")
    pairs = parse_qsl(urlsplit(response.text).query)
    keys = [key for key, _ in pairs]
    assert keys == sorted(keys)
    values = dict(pairs)
    assert values["pomerium_programmatic"] == "true"
    assert values["pomerium_redirect_uri"] == "http://127.0.0.1:9/cb?state=n"
    assert values["pomerium_idp_id"] == "test-idp"
    assert int(values["pomerium_expiry"]) - int(values["pomerium_issued"]) == 300
    callback = values["pomerium_callback_uri"]
    assert callback.startswith(shared.route_url() + "/.pomerium/callback/?")
    assert "pomerium_redirect_uri=" in callback
    assert shared.login_api_calls == before + 1


def test_login_api_callback_uses_request_host(shared: PomeriumTestServer) -> None:
    port = urlsplit(shared.route_url()).port
    response = httpx.get(
        shared.route_url() + LOGIN,
        params={"pomerium_redirect_uri": CALLBACK},
        headers={"Host": f"localhost:{port}"},
    )
    callback = dict(parse_qsl(urlsplit(response.text).query))["pomerium_callback_uri"]
    assert callback.startswith(f"http://localhost:{port}/.pomerium/callback/")


def test_login_api_missing_parameter(shared: PomeriumTestServer) -> None:
    before = shared.login_api_calls
    response = httpx.get(shared.route_url() + LOGIN)
    assert response.status_code == 404
    assert response.text == "Not Found\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert shared.login_api_calls == before


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD"])
def test_login_api_rejects_other_methods(
    shared: PomeriumTestServer, method: str
) -> None:
    response = httpx.request(
        method, shared.route_url() + LOGIN, params={"pomerium_redirect_uri": CALLBACK}
    )
    assert response.status_code == 405
    if method != "HEAD":
        assert response.text == "Method Not Allowed\n"


def test_other_api_paths_not_found(shared: PomeriumTestServer) -> None:
    response = httpx.get(shared.route_url() + "/.pomerium/api/v1/logout")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "",
        "not a url",
        "/cb",
        "http://",
        "127.0.0.1:8000/cb",
        "localhost:8000/cb",
        "http://[::1",
        "http://127.0.0.1:abc/",
        "myapp://127.0.0.1/cb",
        "javascript:alert(1)",
        "ftp://localhost/cb",
    ],
)
def test_login_api_rejects_invalid_uri(
    shared: PomeriumTestServer, redirect_uri: str
) -> None:
    response = httpx.get(
        shared.route_url() + LOGIN, params={"pomerium_redirect_uri": redirect_uri}
    )
    assert response.status_code == 400
    assert response.headers["x-pomerium-intercepted-response"] == "true"


DEFAULT_LIST_CASES = [
    ("http://localhost:1/cb", True),
    ("https://localhost/cb", True),
    ("HTTP://localhost/cb", True),
    ("http://127.0.0.1:8000/cb?x=1", True),
    ("http://127.22.0.1/", True),
    ("http://127.255.255.254:5/", True),
    ("http://[::1]:5000/cb", True),
    ("http://[::ffff:127.0.0.1]/cb", True),
    ("http://[::2]/cb", False),
    ("http://LOCALHOST/cb", False),
    ("http://test.localhost.pomerium.io/cb", False),
    ("http://localhost.example.com/cb", False),
    ("http://128.0.0.1/cb", False),
    ("http://example.com/cb", False),
    ("http://127.0.0.1@example.com/cb", False),
    ("http://example.com@127.0.0.1/cb", True),
    ("myapp://localhost/cb", False),
]

CUSTOM_LIST_CASES = [
    ("http://example.com/cb", True),
    ("https://example.com:8443/any/path?q=1", True),
    ("http://sub.example.com/cb", False),
    ("http://EXAMPLE.com/cb", False),
    ("http://example.com.evil.net/cb", False),
    ("http://example.com@evil.net/cb", False),
    ("http://evil.net@example.com/cb", True),
    ("http://evil.net\\@example.com/cb", False),
    ("http://127.0.0.1/cb", False),
    ("myapp://example.com/cb", False),
]


def test_allow_list_default(shared: PomeriumTestServer) -> None:
    for redirect_uri, allowed in DEFAULT_LIST_CASES:
        response = httpx.get(
            shared.route_url() + LOGIN, params={"pomerium_redirect_uri": redirect_uri}
        )
        assert response.status_code == (200 if allowed else 400), redirect_uri


def test_allow_list_exact_hosts(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(allow_list=["example.com"])
    for redirect_uri, allowed in CUSTOM_LIST_CASES:
        response = httpx.get(
            server.route_url() + LOGIN, params={"pomerium_redirect_uri": redirect_uri}
        )
        assert response.status_code == (200 if allowed else 400), redirect_uri


def test_no_allow_list_accepts_any_url(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(allow_list=None)
    for redirect_uri in ("http://evil.example/cb", "myapp://host/cb"):
        response = httpx.get(
            server.route_url() + LOGIN, params={"pomerium_redirect_uri": redirect_uri}
        )
        assert response.status_code == 200, redirect_uri
    response = httpx.get(
        server.route_url() + LOGIN, params={"pomerium_redirect_uri": ""}
    )
    assert response.status_code == 400


def test_login_api_400_body_json(shared: PomeriumTestServer) -> None:
    response = httpx.get(
        shared.route_url() + LOGIN,
        params={"pomerium_redirect_uri": "http://example.com/"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-pomerium-intercepted-response"] == "true"
    assert response.text.endswith("}\n")
    body = response.json()
    assert list(body) == ["Status", "RequestID"]
    assert body["Status"] == 400


def test_login_api_400_body_html(shared: PomeriumTestServer) -> None:
    response = httpx.get(
        shared.route_url() + LOGIN,
        params={"pomerium_redirect_uri": "http://example.com/"},
        headers={"Accept": "application/json, text/html"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-pomerium-intercepted-response"] == "true"


def test_login_api_400_legacy_error_field(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(version="0.16")
    response = httpx.get(
        server.route_url() + LOGIN,
        params={"pomerium_redirect_uri": "http://example.com/"},
        headers={"Accept": "application/json"},
    )
    assert list(response.json()) == ["Status", "Error", "RequestID"]


# Sign-in, identity provider and callback


def test_sign_in_flow_step_by_step(
    pomerium_server_factory: Factory, recorder: RecordingServer
) -> None:
    server = pomerium_server_factory()
    sign_in = login_url(
        server, recorder.url + "/cb/path?state=abc&pomerium_jwt=old&a=1"
    )
    client = httpx.Client()
    first = client.get(sign_in)
    assert first.status_code == 302
    idp_url = first.headers["location"]
    assert idp_url.startswith(server.authenticate_url + "/idp/authorize?")
    form = client.get(idp_url)
    assert form.status_code == 200
    assert form.headers["content-type"].startswith("text/html")
    assert "http" not in form.text.split("<body>", 1)[1].replace('autocomplete="', "")
    state = parse_qs(urlsplit(idp_url).query)["state"][0]
    wrong = client.post(
        server.authenticate_url + "/idp/authorize",
        data={"username": "alice", "password": "nope", "state": state},
    )
    assert wrong.status_code == 200
    assert "Invalid username or password." in wrong.text
    right = client.post(
        server.authenticate_url + "/idp/authorize",
        data={"username": "alice", "password": "alice-password", "state": state},
    )
    assert right.status_code == 302
    oauth = client.get(right.headers["location"])
    assert oauth.status_code == 302
    assert oauth.headers["location"] == sign_in
    assert "_pomerium_authenticate=" in oauth.headers["set-cookie"]
    silent = client.get(sign_in)
    assert silent.status_code == 302
    callback = silent.headers["location"]
    assert callback.startswith(server.route_url() + "/.pomerium/callback/?")
    final = client.get(callback)
    assert final.status_code == 302
    assert final.headers["x-pomerium-intercepted-response"] == "true"
    cookie = final.headers["set-cookie"]
    assert cookie.startswith("_pomerium=ey")
    assert "Path=/" in cookie
    assert "HttpOnly" in cookie
    location = urlsplit(final.headers["location"])
    assert location.netloc == urlsplit(recorder.url).netloc
    assert location.path == "/cb/path"
    pairs = parse_qsl(location.query)
    assert [key for key, _ in pairs] == ["a", "pomerium_jwt", "state"]
    values = dict(pairs)
    assert values["state"] == "abc"
    assert values["pomerium_jwt"] != "old"
    assert cookie.startswith(f"_pomerium={values['pomerium_jwt']};")


def test_scripted_browser_delivers_token(
    pomerium_server_factory: Factory, recorder: RecordingServer
) -> None:
    server = pomerium_server_factory()
    browser = ScriptedBrowser("bob")
    token = browser_token(server, recorder, browser)
    assert browser.delivery_status == 200
    assert recorder.requests[-1].path.startswith("/cb?pomerium_jwt=")
    assert claims_of(token)["sub"] == "bob"
    assert browser.opened[0].startswith(server.authenticate_url)
    response = httpx.get(
        server.route_url("api") + "/anything",
        headers={"Authorization": f"Pomerium {token}"},
    )
    assert response.status_code == 200
    assert response.json()["user"] == "bob"


def test_scripted_browser_without_delivery(
    pomerium_server_factory: Factory, recorder: RecordingServer
) -> None:
    server = pomerium_server_factory()
    browser = ScriptedBrowser(deliver=False)
    browser(login_url(server, recorder.url + "/cb"))
    assert browser.final_url is not None
    assert recorder.requests == []


def test_scripted_browser_wrong_password(
    pomerium_server_factory: Factory, recorder: RecordingServer
) -> None:
    server = pomerium_server_factory()
    browser = ScriptedBrowser("alice", "wrong")
    browser(login_url(server, recorder.url + "/cb"))
    assert browser.final_url is None
    assert browser.error is not None


def test_silent_second_sign_in_keeps_jti(
    pomerium_server_factory: Factory, recorder: RecordingServer
) -> None:
    server = pomerium_server_factory()
    browser = ScriptedBrowser()
    first = browser_token(server, recorder, browser)
    idp_visits = sum("/idp/" in r.path for r in server.requests)
    second = browser_token(server, recorder, browser, route="api")
    assert sum("/idp/" in r.path for r in server.requests) == idp_visits
    assert claims_of(first)["jti"] == claims_of(second)["jti"]
    other = browser_token(server, recorder, ScriptedBrowser())
    assert claims_of(other)["jti"] != claims_of(first)["jti"]


@pytest.mark.parametrize(("seconds", "status"), [(350, 302), (370, 400)])
def test_sign_in_url_expiry(
    pomerium_server_factory: Factory, seconds: float, status: int
) -> None:
    server = pomerium_server_factory()
    sign_in = login_url(server, CALLBACK)
    browser = ScriptedBrowser(deliver=False)
    browser(login_url(server, CALLBACK))
    server.advance(seconds)
    response = browser.client.get(sign_in)
    assert response.status_code == status


def test_expiry_checked_after_identity_provider(
    pomerium_server_factory: Factory,
) -> None:
    server = pomerium_server_factory()
    sign_in = login_url(server, CALLBACK)
    server.advance(400)
    browser = ScriptedBrowser(deliver=False)
    browser(sign_in)
    assert any("/idp/authorize" in r.path for r in server.requests)
    assert browser.final_url is None
    assert browser.last_status == 400


def test_sign_in_bad_signature(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory()
    browser = ScriptedBrowser(deliver=False)
    browser(login_url(server, CALLBACK))
    sign_in = login_url(server, CALLBACK)
    tampered = sign_in.replace("127.0.0.1%3A9", "127.0.0.1%3A10")
    assert tampered != sign_in
    assert browser.client.get(tampered).status_code == 400
    assert browser.client.get(sign_in + "x").status_code == 400


def test_callback_rejects_tampering(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory()
    browser = ScriptedBrowser(deliver=False)
    browser(login_url(server, CALLBACK))
    callback = browser.client.get(login_url(server, CALLBACK)).headers["location"]
    assert callback.startswith(server.route_url())
    parts = urlsplit(callback)
    values = dict(parse_qsl(parts.query))
    sealed = values["pomerium_session_encrypted"]
    raw = bytearray(base64.urlsafe_b64decode(sealed))
    raw[20] ^= 1
    altered = base64.urlsafe_b64encode(bytes(raw)).decode()
    tampered = callback.replace(quote_plus(sealed), quote_plus(altered))
    assert tampered != callback
    assert browser.client.get(tampered).status_code == 400
    assert browser.client.get(callback + "&extra=1").status_code == 400
    server.advance(400)
    assert browser.client.get(callback).status_code == 400


@pytest.mark.parametrize(("error", "status"), [("access_denied", 401), ("x", 400)])
def test_identity_provider_errors(
    shared: PomeriumTestServer, error: str, status: int
) -> None:
    response = httpx.get(
        shared.authenticate_url + "/oauth2/callback", params={"error": error}
    )
    assert response.status_code == status


def test_deny_button_gives_401(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory()
    client = httpx.Client(follow_redirects=False)
    idp_url = client.get(login_url(server, CALLBACK)).headers["location"]
    state = parse_qs(urlsplit(idp_url).query)["state"][0]
    denied = client.post(
        server.authenticate_url + "/idp/authorize",
        data={"action": "deny", "state": state},
    )
    assert client.get(denied.headers["location"]).status_code == 401


def test_xhr_sign_in_without_session(shared: PomeriumTestServer) -> None:
    response = httpx.get(
        login_url(shared, CALLBACK), headers={"X-Requested-With": "XMLHttpRequest"}
    )
    assert response.status_code == 401


def test_sign_in_coop_header(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(sign_in_coop=True)
    client = httpx.Client()
    first = client.get(login_url(server, CALLBACK))
    assert first.headers["cross-origin-opener-policy"] == "same-origin"
    form = client.get(first.headers["location"])
    assert form.headers["cross-origin-opener-policy"] == "same-origin"


# Tokens


@pytest.mark.parametrize("version", ["0.33", "0.31", "0.16", "0.14", "0.32.0"])
def test_token_claims_by_version(
    pomerium_server_factory: Factory, recorder: RecordingServer, version: str
) -> None:
    server = pomerium_server_factory(version=version, session_lifetime=1000)
    token = browser_token(server, recorder)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token,
        server.shared_secret,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_aud": False, "verify_nbf": False},
    )
    authenticate_host = urlsplit(server.authenticate_url).netloc
    assert claims["iss"] == authenticate_host
    assert claims["aud"] == [
        authenticate_host,
        urlsplit(recorder.url).netloc,
        urlsplit(server.route_url()).netloc,
    ]
    for key in ("jti", "sub", "iat", "databroker_server_version"):
        assert key in claims
    assert "databroker_record_version" in claims
    if version in ("0.16", "0.14"):
        assert claims["exp"] == pytest.approx(claims["iat"] + 1000, abs=2)
        assert "nbf" in claims
        assert "ver" in claims
        assert claims["programmatic"] is True
        assert "idp_id" not in claims
    elif version == "0.32.0":
        assert claims["exp"] < claims["iat"]
        assert claims["nbf"] < claims["iat"]
        assert claims["idp_id"] == "test-idp"
    else:
        assert "exp" not in claims
        assert "nbf" not in claims
        assert claims["idp_id"] == "test-idp"


def test_stale_expiry_token_still_accepted(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(version="0.32.0")
    token = server.mint_token("alice")
    response = httpx.get(
        server.route_url() + "/anything", headers={"Authorization": f"Pomerium {token}"}
    )
    assert response.status_code == 200


# Protected requests


def echo(server: PomeriumTestServer, **kwargs: Any) -> httpx.Response:
    return httpx.get(server.route_url() + "/anything", **kwargs)


def test_token_sources_accepted(shared: PomeriumTestServer) -> None:
    token = shared.mint_token("alice")
    cases: list[dict[str, Any]] = [
        {"headers": {"Authorization": f"Pomerium {token}"}},
        {"headers": {"Authorization": f"Bearer Pomerium-{token}"}},
        {"headers": {"X-Pomerium-Authorization": token}},
        {"headers": {"Cookie": f"_pomerium={token}"}},
        {"params": {"pomerium_session": token}},
    ]
    for case in cases:
        assert echo(shared, **case).status_code == 200, case


def test_token_prefixes_case_sensitive(shared: PomeriumTestServer) -> None:
    token = shared.mint_token("alice")
    for value in (f"pomerium {token}", f"bearer Pomerium-{token}", f"Bearer {token}"):
        response = echo(shared, headers={"Authorization": value, "Accept": "*/*"})
        assert response.status_code == 302, value


def test_first_present_source_wins(shared: PomeriumTestServer) -> None:
    token = shared.mint_token("alice")
    json_accept = {"Accept": "application/json"}
    cases = [
        {"Cookie": "_pomerium=bad", "Authorization": f"Pomerium {token}"},
        {"X-Pomerium-Authorization": "bad", "Authorization": f"Pomerium {token}"},
    ]
    for headers in cases:
        assert echo(shared, headers={**headers, **json_accept}).status_code == 401
    response = echo(
        shared,
        headers={"Authorization": "Pomerium bad", **json_accept},
        params={"pomerium_session": token},
    )
    assert response.status_code == 401
    response = echo(
        shared,
        headers={"Cookie": f"_pomerium={token}", "Authorization": "Pomerium bad"},
    )
    assert response.status_code == 200


def test_credentials_stripped_before_upstream(shared: PomeriumTestServer) -> None:
    token = shared.mint_token("alice")
    response = echo(
        shared,
        headers={
            "Authorization": f"Pomerium {token}",
            "X-Pomerium-Authorization": token,
            "Cookie": f"theme=dark; _pomerium={token}; lang=en",
        },
    )
    headers = response.json()["headers"]
    assert "authorization" not in headers
    assert "x-pomerium-authorization" not in headers
    assert headers["cookie"] == "theme=dark; lang=en"
    bearer = echo(shared, headers={"Authorization": f"Bearer Pomerium-{token}"})
    assert bearer.json()["headers"]["authorization"] == f"Bearer Pomerium-{token}"


def test_echo_reports_request(shared: PomeriumTestServer) -> None:
    token = shared.mint_token("bob")
    response = httpx.post(
        shared.route_url("api") + "/anything/x?a=1&a=2",
        headers={"Authorization": f"Pomerium {token}"},
        content=b"hello",
    )
    body = response.json()
    assert body["route"] == "api"
    assert body["method"] == "POST"
    assert body["path"] == "/anything/x"
    assert body["query"] == "a=1&a=2"
    assert body["user"] == "bob"
    assert body["email"] == "bob@example.com"
    assert body["body"] == "hello"


def test_requests_recorded_with_raw_headers(shared: PomeriumTestServer) -> None:
    httpx.get(shared.route_url() + "/ping", headers={"X-Pomerium-Authorization": "t1"})
    record = shared.requests[-1]
    assert record.path == "/ping"
    assert record.method == "GET"
    assert record.headers["x-pomerium-authorization"] == "t1"
    assert record.host_port.endswith(f":{urlsplit(shared.route_url()).port}")


def test_policy_denial(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(policy={"app": ["alice"], "api": []})
    alice = server.mint_token("alice")
    bob = server.mint_token("bob")
    assert (
        echo(server, headers={"Authorization": f"Pomerium {alice}"}).status_code == 200
    )
    denied_json = echo(
        server,
        headers={"Authorization": f"Pomerium {bob}", "Accept": "application/json"},
    )
    assert denied_json.status_code == 403
    assert denied_json.json()["error"] == "Forbidden"
    assert "request_id" in denied_json.json()
    assert "x-pomerium-intercepted-response" not in denied_json.headers
    denied_html = echo(server, headers={"Authorization": f"Pomerium {bob}"})
    assert denied_html.status_code == 403
    assert denied_html.headers["content-type"].startswith("text/html")
    assert denied_html.headers["x-pomerium-intercepted-response"] == "true"
    routes = httpx.get(
        server.route_url("app") + "/.pomerium/api/v1/routes",
        headers={"Authorization": f"Pomerium {alice}"},
    )
    assert [route["name"] for route in routes.json()["routes"]] == ["app"]


ACCEPT_CASES = [
    (None, 302),
    ("*/*", 302),
    ("text/html", 302),
    ("application/json", 401),
    ("text/plain", 401),
    ("application/json, text/html", 401),
    ("text/html, application/json", 302),
    ("application/json;q=0.5, text/html", 302),
    ("text/html;q=0.5, application/json", 401),
    ("text/html;q=0, application/json;q=0.9", 302),
    ("application/*", 401),
    ("text/*", 302),
    ("image/png", 302),
    ("application/json; charset=utf-8", 302),
    ("text/html,application/xhtml+xml,*/*;q=0.8", 302),
    ("application/json, */*;q=0.1", 401),
    ("garbage", 302),
]


@pytest.mark.parametrize(("accept", "status"), ACCEPT_CASES)
def test_no_token_accept_rules(
    shared: PomeriumTestServer, accept: str | None, status: int
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    client = httpx.Client()
    if accept is None:
        del client.headers["Accept"]
    response = client.get(shared.route_url() + "/some/path?q=1", headers=headers)
    assert response.status_code == status


def test_no_token_redirect_details(shared: PomeriumTestServer) -> None:
    response = httpx.get(shared.route_url() + "/some/path?q=1")
    assert response.status_code == 302
    assert response.headers["x-pomerium-intercepted-response"] == "true"
    assert response.headers["content-type"].startswith("text/html")
    location = response.headers["location"]
    assert location.startswith(shared.authenticate_url + "/.pomerium/sign_in?")
    values = dict(parse_qsl(urlsplit(location).query))
    assert values["pomerium_redirect_uri"] == shared.route_url() + "/some/path?q=1"
    assert set(values) == {
        "pomerium_redirect_uri",
        "pomerium_idp_id",
        "pomerium_issued",
        "pomerium_expiry",
        "pomerium_signature",
    }


def test_no_token_json_401(shared: PomeriumTestServer) -> None:
    response = echo(shared, headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert "x-pomerium-intercepted-response" not in response.headers
    assert response.json()["error"] == "Unauthenticated"
    assert "request_id" in response.json()


def test_browser_flow_without_programmatic(
    pomerium_server_factory: Factory,
) -> None:
    server = pomerium_server_factory()
    browser = ScriptedBrowser()
    response = browser.client.get(server.route_url() + "/anything?x=1")
    for _ in range(10):
        if not response.is_redirect:
            break
        response = browser.client.get(response.headers["location"])
        if response.status_code == 200 and "password" in response.text:
            state = parse_qs(urlsplit(str(response.url)).query)["state"][0]
            response = browser.client.post(
                str(response.url).split("?")[0],
                data={
                    "username": "alice",
                    "password": "alice-password",
                    "state": state,
                },
            )
    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    assert response.json()["query"] == "x=1"


# (version, source, accept) -> status for a revoked token
REVOKED_CASES = [
    ("0.33", "header", "*/*", 401),
    ("0.33", "header", "application/json", 401),
    ("0.33", "query", "*/*", 401),
    ("0.33", "cookie", "*/*", 302),
    ("0.33", "cookie", "application/json", 401),
    ("0.32.0", "header", "*/*", 302),
    ("0.32.0", "header", "application/json", 401),
    ("0.31", "header", "*/*", 302),
    ("0.31", "header", "application/json", 401),
    ("0.31", "query", "text/plain", 401),
    ("0.16", "header", "*/*", 302),
    ("0.16", "header", "application/json", 401),
    ("0.14", "header", "application/json", 302),
    ("0.14", "cookie", "application/json", 302),
]


def present(token: str, source: str) -> dict[str, Any]:
    if source == "header":
        return {"headers": {"Authorization": f"Pomerium {token}"}}
    if source == "cookie":
        return {"headers": {"Cookie": f"_pomerium={token}"}}
    return {"params": {"pomerium_session": token}}


@pytest.mark.parametrize(("version", "source", "accept", "status"), REVOKED_CASES)
def test_revoked_token_by_version(
    pomerium_server_factory: Factory,
    version: str,
    source: str,
    accept: str,
    status: int,
) -> None:
    server = pomerium_server_factory(version=version)
    token = server.mint_token("alice")
    request = present(token, source)
    request.setdefault("headers", {})["Accept"] = accept
    assert echo(server, **request).status_code == 200
    server.revoke(claims_of(token)["jti"])
    assert echo(server, **request).status_code == status


def test_legacy_401_body(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(version="0.16")
    response = echo(server, headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json()["Status"] == 401
    text_plain = echo(server, headers={"Accept": "text/plain"})
    assert text_plain.status_code == 401
    assert text_plain.headers["content-type"].startswith("text/html")


def test_invalid_tokens_rejected(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(session_lifetime=100)
    token = server.mint_token("alice")
    jti = claims_of(token)["jti"]
    wrong_idp = jwt.encode(
        {"jti": jti, "sub": "alice", "idp_id": "other"},
        server.shared_secret,
        algorithm="HS256",
    )
    wrong_key = jwt.encode({"jti": jti, "sub": "alice"}, b"x" * 32, algorithm="HS256")
    for bad in ("abc", "a.b.c", wrong_idp, wrong_key, token + "x"):
        response = echo(server, headers={"Authorization": f"Pomerium {bad}"})
        assert response.status_code == 401, bad
    assert (
        echo(server, headers={"Authorization": f"Pomerium {token}"}).status_code == 200
    )
    server.advance(101)
    assert (
        echo(server, headers={"Authorization": f"Pomerium {token}"}).status_code == 401
    )


def test_revoke_user_and_sign_out_all(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory()
    alice = server.mint_token("alice")
    bob = server.mint_token("bob")
    server.revoke_user("alice")
    assert (
        echo(server, headers={"Authorization": f"Pomerium {alice}"}).status_code == 401
    )
    assert echo(server, headers={"Authorization": f"Pomerium {bob}"}).status_code == 200
    server.sign_out_all()
    assert echo(server, headers={"Authorization": f"Pomerium {bob}"}).status_code == 401


def test_service_accounts(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory()
    forever = server.mint_service_account("robot")
    short = server.mint_service_account("robot", expires_in=60)
    claims = claims_of(short)
    assert set(claims) == {"jti", "sub", "iat", "nbf", "exp"}
    assert "exp" not in claims_of(forever)
    for token in (forever, short):
        response = echo(server, headers={"Authorization": f"Bearer Pomerium-{token}"})
        assert response.status_code == 200
        assert response.json()["user"] == "robot"
    server.advance(61)
    assert (
        echo(server, headers={"Authorization": f"Pomerium {short}"}).status_code == 401
    )
    assert (
        echo(server, headers={"Authorization": f"Pomerium {forever}"}).status_code
        == 200
    )
    server.revoke(claims_of(forever)["jti"])
    assert (
        echo(server, headers={"Authorization": f"Pomerium {forever}"}).status_code
        == 401
    )


# Other endpoints


def test_user_endpoint(shared: PomeriumTestServer) -> None:
    url = shared.route_url() + "/.pomerium/user"
    assert httpx.get(url, headers={"Accept": "application/json"}).status_code == 401
    assert httpx.get(url).status_code == 302
    token = shared.mint_token("alice")
    response = httpx.get(url, headers={"Authorization": f"Pomerium {token}"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"sub", "user", "email", "groups", "sid", "name"}
    assert body["sid"] == claims_of(token)["jti"]


def test_user_endpoint_absent_before_027(pomerium_server_factory: Factory) -> None:
    server = pomerium_server_factory(version="0.16")
    token = server.mint_token("alice")
    response = httpx.get(
        server.route_url() + "/.pomerium/user",
        headers={"Authorization": f"Pomerium {token}"},
    )
    assert response.status_code == 404


def test_jwt_endpoint(shared: PomeriumTestServer) -> None:
    url = shared.route_url() + "/.pomerium/jwt"
    assert httpx.get(url, headers={"Accept": "application/json"}).status_code == 401
    token = shared.mint_token("alice")
    response = httpx.get(url, headers={"Authorization": f"Pomerium {token}"})
    assert response.status_code == 404


def test_public_endpoints(shared: PomeriumTestServer) -> None:
    for path in ("/healthz", "/ping"):
        response = httpx.get(
            shared.route_url() + path, headers={"Authorization": "Pomerium bad"}
        )
        assert response.status_code == 200
        assert response.text == "OK\n"
    dashboard = httpx.get(shared.route_url() + "/.pomerium/")
    assert dashboard.status_code == 200
    assert dashboard.headers["content-type"].startswith("text/html")
    well_known = httpx.get(shared.route_url() + "/.well-known/pomerium")
    assert well_known.status_code == 200
    assert well_known.headers["access-control-allow-origin"] == "*"
    assert set(well_known.json()) == {
        "issuer",
        "authentication_callback_endpoint",
        "jwks_uri",
        "frontchannel_logout_uri",
    }


def test_routes_endpoint(shared: PomeriumTestServer) -> None:
    url = shared.route_url() + "/.pomerium/api/v1/routes"
    assert httpx.get(url, headers={"Accept": "application/json"}).status_code == 401
    token = shared.mint_token("alice")
    response = httpx.get(url, headers={"Authorization": f"Bearer Pomerium-{token}"})
    assert [route["name"] for route in response.json()["routes"]] == ["app", "api"]


def test_sign_out(pomerium_server_factory: Factory, recorder: RecordingServer) -> None:
    server = pomerium_server_factory()
    header_token = server.mint_token("bob")
    browser = ScriptedBrowser()
    token = browser_token(server, recorder, browser)
    sign_out = browser.client.get(server.route_url() + "/.pomerium/sign_out")
    assert sign_out.status_code == 302
    assert "_pomerium=;" in sign_out.headers["set-cookie"]
    location = sign_out.headers["location"]
    assert location.startswith(server.authenticate_url + "/.pomerium/sign_out?")
    headers_only = httpx.get(
        server.route_url() + "/.pomerium/sign_out",
        headers={"Authorization": f"Pomerium {header_token}"},
    )
    httpx.get(headers_only.headers["location"])
    assert browser.client.get(location).status_code == 302
    for value in (token, header_token):
        response = echo(server, headers={"Authorization": f"Pomerium {value}"})
        assert response.status_code == (401 if value == token else 200)


def test_upstream_redirect_and_status(
    shared: PomeriumTestServer, recorder: RecordingServer
) -> None:
    auth = {"Authorization": f"Pomerium {shared.mint_token('alice')}"}
    response = httpx.get(
        shared.route_url() + "/redirect",
        params={"to": recorder.url + "/x", "status": "307"},
        headers=auth,
    )
    assert response.status_code == 307
    assert response.headers["location"] == recorder.url + "/x"
    assert (
        httpx.get(shared.route_url() + "/status/418", headers=auth).status_code == 418
    )


# Robustness


def test_thousand_concurrent_connections(shared: PomeriumTestServer) -> None:
    port = urlsplit(shared.route_url()).port
    assert port is not None
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in sockets:
            sock.settimeout(20)
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        for sock in sockets:
            sock.close()


def test_garbage_input_survives(shared: PomeriumTestServer) -> None:
    port = urlsplit(shared.route_url()).port
    assert port is not None
    payloads = [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /anything HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    ]
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
            sock.recv(1024)
    assert httpx.get(shared.route_url() + "/healthz").status_code == 200


def test_keep_alive_reuses_connection(shared: PomeriumTestServer) -> None:
    with httpx.Client() as client:
        first = client.get(shared.route_url() + "/healthz")
        second = client.get(shared.route_url() + "/ping")
    assert first.http_version == "HTTP/1.1"
    assert "close" not in first.headers.get("connection", "")
    assert second.status_code == 200


def test_tls_mode(pomerium_server_factory: Factory, recorder: RecordingServer) -> None:
    pytest.importorskip("cryptography")
    server = pomerium_server_factory(tls=True)
    assert server.ca_file is not None
    assert server.route_url().startswith("https://")
    browser = ScriptedBrowser(verify=server.ca_file)
    token = browser_token(server, recorder, browser)
    response = httpx.get(
        server.route_url() + "/anything",
        headers={"Authorization": f"Pomerium {token}"},
        verify=server.ca_file,
    )
    assert response.status_code == 200


def test_invalid_version_rejected() -> None:
    with pytest.raises(ValueError, match="invalid Pomerium version"):
        PomeriumTestServer(version="latest")


def test_fixtures_module_imports_cheaply() -> None:
    code = (
        "import sys, pomerium_jupyter.testing.fixtures as f; "
        "print('pomerium_jupyter.testing._pomerium' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"


def test_command_line_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pomerium_jupyter.testing",
            "--route",
            "notebook",
            "--user",
            "carol:secret",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("Press Ctrl-C") or not line:
            break
    output = "".join(lines)
    route_line = next(line for line in lines if line.startswith("route notebook:"))
    route = route_line.split(": ", 1)[1].strip()
    assert httpx.get(route + "/healthz").text == "OK\n"
    assert "carol / secret" in output
    assert "curl" in output
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_quiet_stderr(
    pomerium_server_factory: Factory, capfd: pytest.CaptureFixture[str]
) -> None:
    server = pomerium_server_factory()
    httpx.get(server.route_url() + "/anything")
    port = urlsplit(server.route_url()).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
        sock.recv(1024)
    assert capfd.readouterr().err == ""
