"""Token lookup and the allow/deny/sign-in decision for route requests.

Follows `config/session.go`, `internal/sessions/header/header.go` and
`authorize/check_response.go` in Pomerium.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._deployment import ROUTE_COOKIE, Deployment, read_cookie
from ._http import Request, Response
from ._responses import denied, prefers_html
from ._tokens import Principal


@dataclass(frozen=True)
class TokenLookup:
    """The token that wins the reader order, and where tokens were present."""

    token: str | None
    source: str | None
    in_header: bool
    in_query: bool


def header_token(request: Request, deployment: Deployment) -> str | None:
    """Return the token carried in headers (TokenFromHeaders), if any."""
    if deployment.behaviour.pomerium_authorization_header:
        value = request.header("X-Pomerium-Authorization")
        if value:
            return value
    authorization = request.header("Authorization") or ""
    for prefix in ("Pomerium ", "Bearer Pomerium-"):
        # Prefixes are matched case-sensitively.
        if authorization.startswith(prefix) and authorization[len(prefix) :]:
            return authorization[len(prefix) :]
    return None


def find_token(request: Request, deployment: Deployment) -> TokenLookup:
    """Read cookie, then headers, then query; the first present source wins."""
    from_cookie = read_cookie(request.header_values("Cookie"), ROUTE_COOKIE)
    from_header = header_token(request, deployment)
    query_keys = [key for key, _ in request.query_pairs()]
    from_query = request.query_value("pomerium_session") or None
    in_header = from_header is not None
    in_query = "pomerium_session" in query_keys
    if from_cookie is not None:
        return TokenLookup(from_cookie, "cookie", in_header, in_query)
    if from_header is not None:
        return TokenLookup(from_header, "header", in_header, in_query)
    if from_query is not None:
        return TokenLookup(from_query, "query", in_header, in_query)
    return TokenLookup(None, None, in_header, in_query)


def sign_in_redirect_url(request: Request, deployment: Deployment) -> str:
    return deployment.sign_in_url(
        [
            ("pomerium_redirect_uri", request.origin + request.target),
            ("pomerium_idp_id", deployment.idp_id),
        ]
    )


def unauthenticated(
    request: Request, deployment: Deployment, lookup: TokenLookup
) -> Response:
    """Answer a request without a valid session: 302 to sign in, or 401."""
    behaviour = deployment.behaviour
    if behaviour.always_redirect:
        should_redirect = True
    elif behaviour.header_token_unauthorized and (lookup.in_header or lookup.in_query):
        should_redirect = False
    else:
        should_redirect = prefers_html(request)
    if not should_redirect:
        return denied(401, "Unauthenticated", request, behaviour)
    return denied(
        302,
        "Login",
        request,
        behaviour,
        location=sign_in_redirect_url(request, deployment),
    )


def authorize(
    request: Request, deployment: Deployment, route: str
) -> Principal | Response:
    """Return the principal for an allowed request, else the denial response."""
    lookup = find_token(request, deployment)
    principal = None
    if lookup.token is not None:
        principal = deployment.store.authenticate(lookup.token)
    if principal is None:
        return unauthenticated(request, deployment, lookup)
    if not deployment.is_allowed(route, principal.user):
        return denied(403, "Forbidden", request, deployment.behaviour)
    return principal


def current_principal(request: Request, deployment: Deployment) -> Principal | None:
    """Return the session of a request without enforcing anything."""
    lookup = find_token(request, deployment)
    if lookup.token is None:
        return None
    return deployment.store.authenticate(lookup.token)


def upstream_headers(request: Request) -> list[tuple[str, str]]:
    """Remove Pomerium credentials as clean-upstream.lua does before the upstream.

    Authorization goes only when it starts with "Pomerium ", so a
    "Bearer Pomerium-" header reaches the upstream app.
    """
    headers: list[tuple[str, str]] = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == "x-pomerium-authorization":
            continue
        if lowered == "authorization" and value.startswith("Pomerium "):
            continue
        if lowered == "cookie":
            kept = [
                item.strip()
                for item in value.split(";")
                if item.strip().partition("=")[0] != ROUTE_COOKIE and item.strip()
            ]
            if not kept:
                continue
            value = "; ".join(kept)
        headers.append((name, value))
    return headers
