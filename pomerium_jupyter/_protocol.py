"""Pomerium's programmatic-login protocol, as seen by a client.

The client asks a route's login API for a sign-in URL that carries a callback
URL, a browser signs in, and Pomerium redirects the browser to the callback
with the token in the `pomerium_jwt` query parameter. Pomerium keeps the
callback's own query parameters (re-encoded with sorted keys), so a one-time
`state` value survives the round trip.
"""

from __future__ import annotations

import secrets
import ssl
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from ._errors import (
    CallbackError,
    NotAPomeriumRoute,
    PomeriumUnreachable,
    RedirectNotAllowed,
)

LOGIN_API_PATH = "/.pomerium/api/v1/login"
SIGN_IN_PATH = "/.pomerium/sign_in"
USER_INFO_PATH = "/.pomerium/user"
TOKEN_PARAM = "pomerium_jwt"
STATE_PARAM = "state"

# Hosted authenticate services serve many unrelated deployments, so their host
# cannot identify a deployment (internal/urlutil/hostedauthenticate.go).
HOSTED_AUTHENTICATE_HOSTS = frozenset(
    {"authenticate.pomerium.app", "authenticate.staging.pomerium.app"}
)
# Seconds to wait for the login API, which does no I/O beyond signing a URL
# (pomerium-cli uses the same 10 s limit).
LOGIN_API_TIMEOUT = 10.0


def origin_of(url: str | httpx.URL) -> str:
    """Return scheme://host[:port] with default ports dropped, lower-cased."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"Invalid Pomerium route URL {str(url)!r}: expected an http(s) URL "
            "with a host, such as https://app.example.com."
        )
    host = parsed.host
    if ":" in host:
        host = f"[{host}]"
    port = parsed.port
    default = {"http": 80, "https": 443}[parsed.scheme]
    suffix = f":{port}" if port and port != default else ""
    return f"{parsed.scheme}://{host.lower()}{suffix}"


def new_state() -> str:
    """Return an unguessable one-time value for a callback URL."""
    return secrets.token_urlsafe(32)


def with_query(url: str, **params: str) -> str:
    """Return `url` with the given query parameters set (others kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if k not in params] + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def login_api_url(route_url: str, callback_url: str) -> str:
    # An explicit default port in the route URL would change the callback
    # Pomerium signs, so the origin is normalised first.
    query = urlencode({"pomerium_redirect_uri": callback_url})
    return f"{origin_of(route_url)}{LOGIN_API_PATH}?{query}"


def _callback_host(callback_url: str) -> str:
    return urlsplit(callback_url).hostname or callback_url


def read_sign_in_url(
    response: httpx.Response, route_url: str, callback_url: str
) -> str:
    """Return the sign-in URL from a login API response, or raise a typed error."""
    status = response.status_code
    if status == 400:
        raise RedirectNotAllowed(route_url, callback_url, _callback_host(callback_url))
    if status in (404, 405):
        raise NotAPomeriumRoute(
            route_url,
            f"its login API {LOGIN_API_PATH} answered {status} "
            f"{response.reason_phrase}, so either the host is not behind "
            "Pomerium or Pomerium is older than 0.6",
        )
    if response.is_redirect:
        location = response.headers.get("location", "")
        raise NotAPomeriumRoute(
            route_url,
            f"its login API answered {status} with a redirect to "
            f"{origin_or_text(location)}; Pomerium answers the login API "
            "without a redirect, so another proxy or login page is in front",
        )
    if status != 200:
        raise NotAPomeriumRoute(
            route_url,
            f"its login API answered {status} {response.reason_phrase}",
        )
    body = response.text.strip()
    content_type = response.headers.get("content-type", "")
    if not body:
        raise NotAPomeriumRoute(
            route_url, "its login API answered 200 with an empty body"
        )
    if "html" in content_type or body.startswith("<"):
        raise NotAPomeriumRoute(
            route_url,
            "its login API answered with an HTML page instead of a sign-in URL",
        )
    parsed = urlsplit(body)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or "\n" in body:
        raise NotAPomeriumRoute(
            route_url, "its login API answered 200 with a body that is not a URL"
        )
    if "\\" in body or "@" in parsed.netloc or "\r" in body:
        # Browsers and Python disagree on the host of such URLs, so a hostile
        # host could send the browser somewhere other than where it appears.
        raise NotAPomeriumRoute(
            route_url,
            "its login API answered with a URL that has user information or a "
            "backslash, which Pomerium never sends",
        )
    return body


def origin_or_text(url: str) -> str:
    """Return the origin of a URL for a message, never its query string."""
    try:
        return origin_of(url)
    except ValueError:
        return "a non-HTTP address"


def describe_transport_error(
    route_url: str, exc: httpx.TransportError
) -> PomeriumUnreachable:
    """Translate an httpx transport error into a PomeriumUnreachable error."""
    cause: BaseException | None = exc
    tls = False
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            tls = True
            break
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        detail = f"the request timed out ({type(exc).__name__})"
    elif tls or "CERTIFICATE" in str(exc).upper() or "SSL" in str(exc).upper():
        tls = True
        detail = f"the TLS handshake failed ({exc})"
    else:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return PomeriumUnreachable(route_url, detail, tls=tls)


def request_sign_in_url(client: httpx.Client, route_url: str, callback_url: str) -> str:
    """Ask the route's login API for a sign-in URL that returns to `callback_url`."""
    url = login_api_url(route_url, callback_url)
    try:
        response = client.get(url, follow_redirects=False, timeout=LOGIN_API_TIMEOUT)
    except httpx.TransportError as exc:
        raise describe_transport_error(route_url, exc) from None
    return read_sign_in_url(response, route_url, callback_url)


async def arequest_sign_in_url(
    client: httpx.AsyncClient, route_url: str, callback_url: str
) -> str:
    """Async variant of `request_sign_in_url`."""
    url = login_api_url(route_url, callback_url)
    try:
        response = await client.get(
            url, follow_redirects=False, timeout=LOGIN_API_TIMEOUT
        )
    except httpx.TransportError as exc:
        raise describe_transport_error(route_url, exc) from None
    return read_sign_in_url(response, route_url, callback_url)


def deployment_key(route_url: str, sign_in_url: str) -> str:
    """Identify the Pomerium deployment behind a route from its sign-in URL.

    A self-hosted deployment is identified by its authenticate service and
    identity provider, because Pomerium accepts a token on every route that
    shares both. Tokens stored under that key are sent to every route that
    maps to it, so the login API's response is trusted only as far as a hostile
    host cannot forge it. The route origin is the key (and nothing is shared)
    when:

    - the authenticate host is a hosted service that serves many deployments;
    - the sign-in URL's `pomerium_callback_uri`, which Pomerium builds from the
      route's own Host header and signs, names another host or port;
    - the route is not in the authenticate host's parent domain (for
      `authenticate.corp.example`, routes must be `corp.example` or under it;
      IP addresses and single-label names must match exactly).
    """
    route_origin = origin_of(route_url)
    route = httpx.URL(route_origin)
    route_host = route.host
    try:
        parsed = httpx.URL(sign_in_url)
    except httpx.InvalidURL:
        return route_origin
    host = parsed.host
    if not host or parsed.userinfo or host in HOSTED_AUTHENTICATE_HOSTS:
        return route_origin
    query = dict(parse_qsl(parsed.query.decode()))
    callback = query.get("pomerium_callback_uri")
    if callback is None or _authority_of(callback) != (route_host, route.port):
        return route_origin
    if not _same_site(route_host, host):
        return route_origin
    authenticate = origin_of(parsed)
    idp = query.get("pomerium_idp_id", "")
    return f"{authenticate}#idp={idp}" if idp else authenticate


def _authority_of(url: str) -> tuple[str, int | None] | None:
    """Return the host and port of a URL; Pomerium forces https on callbacks."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    if parsed.userinfo:
        return None
    return parsed.host, parsed.port


def _same_site(route_host: str, authenticate_host: str) -> bool:
    """Tell whether a route lies in the authenticate host's parent domain."""
    if route_host == authenticate_host:
        return True
    labels = authenticate_host.split(".")
    if len(labels) < 3 or all(label.isdigit() for label in labels) or ":" in route_host:
        return False
    parent = ".".join(labels[1:])
    return route_host == parent or route_host.endswith(f".{parent}")


def parse_callback(url: str, expected_state: str) -> str:
    """Return the token from a callback URL after checking its state value.

    Raises CallbackError when the state is missing or foreign, or the token is
    missing. The error message never contains the URL, which contains the token.
    """
    query = parse_qsl(urlsplit(url.strip()).query, keep_blank_values=True)
    states = [v for k, v in query if k == STATE_PARAM]
    tokens = [v for k, v in query if k == TOKEN_PARAM]
    if not states:
        raise CallbackError(
            "The callback URL has no state parameter; paste the whole address "
            "from the browser's address bar after the sign-in finished."
        )
    if len(states) != 1 or not secrets.compare_digest(states[0], expected_state):
        raise CallbackError(
            "The callback URL belongs to another sign-in attempt (its state "
            "does not match this one). Use the address from the sign-in you "
            "just started."
        )
    if len(tokens) != 1 or not tokens[0].strip():
        raise CallbackError(
            "The callback URL has no pomerium_jwt parameter: Pomerium did not "
            "complete the sign-in. Try again; if it repeats, check that the "
            "route allows your user."
        )
    return tokens[0].strip()


def is_sign_in_redirect(response: httpx.Response) -> bool:
    """Tell whether a response redirects to Pomerium's sign-in page."""
    if not response.is_redirect:
        return False
    location = response.headers.get("location", "")
    path: str = urlsplit(location).path
    return path.rstrip("/") == SIGN_IN_PATH
