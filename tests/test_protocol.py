"""Login API responses, callback parsing and deployment keys."""

from urllib.parse import quote

import httpx
import pytest

from pomerium_jupyter import (
    CallbackError,
    NotAPomeriumRoute,
    PomeriumUnreachable,
    RedirectNotAllowed,
)
from pomerium_jupyter._protocol import (
    deployment_key,
    is_sign_in_redirect,
    login_api_url,
    origin_of,
    parse_callback,
    request_sign_in_url,
)

ROUTE = "https://app.example.com"
CALLBACK = "https://hub.example.com/user/alice/pomerium/callback?flow=abc"
SIGN_IN = (
    "https://authenticate.example.com/.pomerium/sign_in?pomerium_expiry=2"
    "&pomerium_idp_id=idp1&pomerium_issued=1&pomerium_signature=x"
)


def answer(response: httpx.Response) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda request: response))


def test_login_api_url_strips_default_port() -> None:
    url = login_api_url("https://app.example.com:443/some/path", CALLBACK)
    assert url.startswith("https://app.example.com/.pomerium/api/v1/login?")
    assert "pomerium_redirect_uri=https%3A%2F%2Fhub.example.com" in url


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://App.Example.com/x", "https://app.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize("url", ["app.example.com", "ftp://x.example", "https://"])
def test_origin_of_invalid(url: str) -> None:
    with pytest.raises(ValueError, match="Invalid Pomerium route URL"):
        origin_of(url)


def test_sign_in_url_returned() -> None:
    client = answer(
        httpx.Response(200, text=SIGN_IN, headers={"content-type": "text/plain"})
    )
    assert request_sign_in_url(client, ROUTE, CALLBACK) == SIGN_IN


def test_400_names_host_to_allow() -> None:
    client = answer(httpx.Response(400, json={"Status": 400}))
    with pytest.raises(RedirectNotAllowed) as caught:
        request_sign_in_url(client, ROUTE, CALLBACK)
    message = str(caught.value)
    assert caught.value.host == "hub.example.com"
    assert "- hub.example.com" in message
    assert "programmatic_redirect_domain_whitelist" in message
    assert "loopback" in message


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (httpx.Response(404, text="Not Found\n"), "answered 404"),
        (httpx.Response(405, text="Method Not Allowed\n"), "answered 405"),
        (httpx.Response(200, text=""), "empty body"),
        (
            httpx.Response(
                200, text="<html>hi</html>", headers={"content-type": "text/html"}
            ),
            "HTML page",
        ),
        (httpx.Response(200, text="hello world"), "not a URL"),
        (
            httpx.Response(302, headers={"location": "https://sso.example/login?x=1"}),
            "redirect to https://sso.example",
        ),
        (httpx.Response(500, text="boom"), "answered 500"),
    ],
    ids=["404", "405", "empty", "html", "text", "redirect", "500"],
)
def test_not_a_route(response: httpx.Response, fragment: str) -> None:
    with pytest.raises(NotAPomeriumRoute, match=fragment):
        request_sign_in_url(answer(response), ROUTE, CALLBACK)


def test_redirect_message_hides_query() -> None:
    response = httpx.Response(302, headers={"location": "https://sso.example/?q=s3"})
    with pytest.raises(NotAPomeriumRoute) as caught:
        request_sign_in_url(answer(response), ROUTE, CALLBACK)
    assert "s3" not in str(caught.value)


def raising(exc: Exception) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_connection_error_named() -> None:
    client = raising(httpx.ConnectError("Connection refused"))
    with pytest.raises(PomeriumUnreachable, match="Connection refused") as caught:
        request_sign_in_url(client, ROUTE, CALLBACK)
    assert "HTTPS_PROXY" in str(caught.value)


def test_timeout_named() -> None:
    with pytest.raises(PomeriumUnreachable, match="timed out"):
        request_sign_in_url(raising(httpx.ReadTimeout("slow")), ROUTE, CALLBACK)


def test_tls_error_names_ca_options() -> None:
    error = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    with pytest.raises(PomeriumUnreachable) as caught:
        request_sign_in_url(raising(error), ROUTE, CALLBACK)
    message = str(caught.value)
    assert "ca_file" in message
    assert "SSL_CERT_FILE" in message


def test_parse_callback_accepts_matching_state() -> None:
    url = "http://127.0.0.1:5000/cb?pomerium_jwt=tok.en.value&state=s1"
    assert parse_callback(url, "s1") == "tok.en.value"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1/cb?pomerium_jwt=t", "no state"),
        ("http://127.0.0.1/cb?pomerium_jwt=t&state=other", "another sign-in"),
        ("http://127.0.0.1/cb?pomerium_jwt=t&state=s1&state=s1", "another sign-in"),
        ("http://127.0.0.1/cb?state=s1", "no pomerium_jwt"),
        ("http://127.0.0.1/cb?state=s1&pomerium_jwt=", "no pomerium_jwt"),
    ],
    ids=["missing", "foreign", "doubled", "no-token", "empty-token"],
)
def test_parse_callback_rejects(url: str, fragment: str) -> None:
    with pytest.raises(CallbackError, match=fragment) as caught:
        parse_callback(url, "s1")
    assert "pomerium_jwt=t" not in str(caught.value)


def sign_in_for(
    route: str, authenticate: str = "https://authenticate.example.com"
) -> str:
    callback = quote(f"{route}/.pomerium/callback/", safe="")
    return (
        f"{authenticate}/.pomerium/sign_in?pomerium_callback_uri={callback}"
        "&pomerium_idp_id=idp1&pomerium_signature=x"
    )


def test_deployment_key_shared_by_routes() -> None:
    key_app = deployment_key(ROUTE, sign_in_for(ROUTE))
    key_api = deployment_key(
        "https://api.example.com", sign_in_for("https://api.example.com")
    )
    assert key_app == key_api == "https://authenticate.example.com#idp=idp1"


def test_deployment_key_differs_by_idp_and_host() -> None:
    sign_in = sign_in_for(ROUTE)
    other_idp = sign_in.replace("idp1", "idp2")
    other_host = sign_in_for(ROUTE, "https://auth2.example.com")
    keys = {
        deployment_key(ROUTE, sign_in),
        deployment_key(ROUTE, other_idp),
        deployment_key(ROUTE, other_host),
    }
    assert len(keys) == 3


def test_hosted_authenticate_keys_by_route() -> None:
    hosted = "https://authenticate.pomerium.app/.pomerium/sign_in?k=a&q=b"
    assert (
        deployment_key("https://app.one.example", hosted) == "https://app.one.example"
    )
    assert (
        deployment_key("https://app.two.example", hosted) == "https://app.two.example"
    )


@pytest.mark.parametrize(
    ("route", "sign_in"),
    [
        # A real sign-in URL replayed by another host names the real route.
        ("https://evil.example", sign_in_for(ROUTE)),
        # A forged one naming the hostile host lies outside the parent domain.
        ("https://evil.example", sign_in_for("https://evil.example")),
        (
            "https://example.com.evil.example",
            sign_in_for("https://example.com.evil.example"),
        ),
        # No callback URI: nothing ties the response to the route.
        ("https://app.example.com", SIGN_IN),
        (
            "https://app.example.com",
            "https://u@authenticate.example.com/.pomerium/sign_in",
        ),
        ("https://app.example.com", "not a url at all"),
    ],
    ids=["replayed", "forged", "suffix-trick", "no-callback", "userinfo", "garbage"],
)
def test_deployment_key_untrusted_answers(route: str, sign_in: str) -> None:
    assert deployment_key(route, sign_in) == origin_of(route)


@pytest.mark.parametrize(
    ("route", "authenticate", "shared"),
    [
        ("http://127.0.0.1:8001", "http://127.0.0.1:8000", True),
        ("http://127.0.0.2:8001", "http://127.0.0.1:8000", False),
        ("https://example.com", "https://authenticate.example.com", True),
        ("https://a.b.example.com", "https://authenticate.example.com", True),
        ("https://app.other.com", "https://authenticate.example.com", False),
        ("https://app.example.com", "https://example.com", False),
    ],
)
def test_deployment_key_site_rule(route: str, authenticate: str, shared: bool) -> None:
    key = deployment_key(route, sign_in_for(route, authenticate))
    assert (key != origin_of(route)) is shared


@pytest.mark.parametrize(
    "body",
    [
        "https://evil.example\\@authenticate.example.com/.pomerium/sign_in",
        "https://user@authenticate.example.com/.pomerium/sign_in",
    ],
    ids=["backslash", "userinfo"],
)
def test_ambiguous_sign_in_url_rejected(body: str) -> None:
    client = answer(httpx.Response(200, text=body))
    with pytest.raises(NotAPomeriumRoute, match="user information or a backslash"):
        request_sign_in_url(client, ROUTE, CALLBACK)


@pytest.mark.parametrize(
    ("status", "location", "expected"),
    [
        (302, "https://auth.example/.pomerium/sign_in?x=1", True),
        (307, "/.pomerium/sign_in/", True),
        (302, "https://app.example/elsewhere", False),
        (200, "https://auth.example/.pomerium/sign_in", False),
    ],
)
def test_sign_in_redirect(status: int, location: str, expected: bool) -> None:
    response = httpx.Response(status, headers={"location": location})
    assert is_sign_in_redirect(response) is expected
