"""A route origin: Pomerium's /.pomerium/ endpoints in front of the upstream app.

Follows `proxy/handlers.go` and `internal/authenticateflow/stateful.go`
(`Callback`) in Pomerium.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from urllib.parse import urlunsplit

from ._allowlist import is_redirect_allowed, parse_and_validate_url
from ._authorize import authorize, current_principal, upstream_headers
from ._deployment import ROUTE_COOKIE, Deployment
from ._http import Request, Response
from ._responses import (
    html_page,
    http_error,
    json_response,
    new_request_id,
    ok_text,
    plain_error,
    redirect,
)
from ._signing import (
    encode_query,
    open_sealed,
    parse_query,
    sign_url,
    verify_signed_url,
)
from ._tokens import Principal
from ._upstream import upstream_app
from ._wellknown import well_known

_Handler = Callable[[Request, Principal], Response]

LOGIN_PATH = "/.pomerium/api/v1/login"
CALLBACK_PATHS = ("/.pomerium/callback/", "/.pomerium/callback")


class RouteApp:
    def __init__(self, deployment: Deployment, name: str) -> None:
        self.deployment = deployment
        self.name = name

    def __call__(self, request: Request) -> Response:
        path = request.path
        behaviour = self.deployment.behaviour
        if path in ("/healthz", "/ping"):
            return ok_text()
        if path in ("/.well-known/pomerium", "/.well-known/pomerium/"):
            return well_known(self.deployment, request.origin)
        if not path.startswith("/.pomerium/"):
            return self._protected(request)
        if path == LOGIN_PATH:
            return self._login_api(request)
        if path in CALLBACK_PATHS:
            return self._callback(request)
        if path == "/.pomerium/":
            return self._dashboard(request)
        if path == "/.pomerium/sign_out":
            return self._sign_out(request)
        if path == "/.pomerium/user" and behaviour.user_endpoint:
            return self._gated(request, self._user_info)
        if path == "/.pomerium/api/v1/routes" and behaviour.routes_endpoint:
            return self._gated(request, self._routes)
        if path == "/.pomerium/jwt":
            # Login-gated; from v0.27 the handler is not registered by default.
            return self._gated(
                request, lambda r, _: http_error(404, r, self.deployment.behaviour)
            )
        return http_error(404, request, behaviour)

    def _gated(
        self,
        request: Request,
        handler: _Handler,
    ) -> Response:
        result = authorize(request, self.deployment, self.name)
        if isinstance(result, Response):
            return result
        return handler(request, result)

    def _protected(self, request: Request) -> Response:
        result = authorize(request, self.deployment, self.name)
        if isinstance(result, Response):
            return result
        headers = upstream_headers(request)
        headers.append(("X-Forwarded-Proto", request.scheme))
        headers.append(("X-Request-Id", new_request_id()))
        return upstream_app(self.name, request, headers, result)

    def _login_api(self, request: Request) -> Response:
        deployment = self.deployment
        if request.method != "GET":
            return plain_error(405, "Method Not Allowed")
        raw = request.query_value("pomerium_redirect_uri")
        if raw is None:
            return plain_error(404, "Not Found")
        parts = parse_and_validate_url(raw)
        if parts is None:
            return http_error(
                400, request, deployment.behaviour, "invalid redirect uri"
            )
        if deployment.allow_list is not None and not is_redirect_allowed(
            parts, deployment.allow_list
        ):
            return http_error(
                400, request, deployment.behaviour, "invalid redirect uri"
            )
        # The callback reuses the request URL, query string included.
        callback = f"{request.origin}/.pomerium/callback/"
        if request.query:
            callback += f"?{request.query}"
        sign_in = deployment.sign_in_url(
            [
                ("pomerium_callback_uri", callback),
                ("pomerium_programmatic", "true"),
                ("pomerium_redirect_uri", raw),
                ("pomerium_idp_id", deployment.idp_id),
            ]
        )
        deployment.count_login()
        return Response(
            200, sign_in.encode(), [("Content-Type", "text/plain; charset=utf-8")]
        )

    def _callback(self, request: Request) -> Response:
        deployment = self.deployment
        behaviour = deployment.behaviour
        if request.method != "GET":
            return plain_error(405, "Method Not Allowed")
        if not verify_signed_url(
            deployment.secret, request.origin + request.target, deployment.clock.now()
        ):
            return http_error(400, request, behaviour, "invalid signature")
        redirect_uri = request.query_value("pomerium_redirect_uri") or ""
        redirect_parts = parse_and_validate_url(redirect_uri)
        if redirect_parts is None:
            return http_error(400, request, behaviour, "invalid redirect uri")
        sealed = request.query_value("pomerium_session_encrypted") or ""
        opened = open_sealed(deployment.secret, sealed)
        if opened is None:
            return http_error(400, request, behaviour, "invalid session")
        token = opened.decode("ascii", "replace")
        if deployment.store.decode(token) is None:
            return http_error(400, request, behaviour, "invalid session")
        location = redirect_uri
        if request.query_value("pomerium_programmatic") == "true":
            pairs = [
                (key, value)
                for key, value in parse_query(redirect_parts.query)
                if key != "pomerium_jwt"
            ]
            pairs.append(("pomerium_jwt", token))
            location = urlunsplit(redirect_parts._replace(query=encode_query(pairs)))
        response = redirect(location)
        response.add_header("Set-Cookie", deployment.cookie(ROUTE_COOKIE, token))
        return response

    def _dashboard(self, request: Request) -> Response:
        principal = current_principal(request, self.deployment)
        if principal is None:
            body = "<h1>Not signed in</h1>"
        else:
            body = (
                f"<h1>Signed in</h1>\n<p>User: {html.escape(principal.user)}</p>\n"
                f"<p>Session: {html.escape(principal.session_id)}</p>"
            )
        return Response(
            200,
            html_page("Pomerium", body),
            [("Content-Type", "text/html; charset=UTF-8")],
        )

    def _sign_out(self, request: Request) -> Response:
        deployment = self.deployment
        target = request.query_value("pomerium_redirect_uri") or f"{request.origin}/"
        query = encode_query([("pomerium_redirect_uri", target)])
        sign_out = sign_url(
            deployment.secret,
            f"{deployment.authenticate_url}/.pomerium/sign_out?{query}",
            deployment.clock.now(),
        )
        response = redirect(sign_out)
        response.add_header("Set-Cookie", deployment.expired_cookie(ROUTE_COOKIE))
        return response

    def _user_info(self, request: Request, principal: Principal) -> Response:
        return json_response(
            200,
            {
                "sub": principal.user,
                "user": principal.user,
                "email": principal.email,
                "groups": [],
                "sid": principal.session_id,
                "name": principal.user,
            },
        )

    def _routes(self, request: Request, principal: Principal) -> Response:
        routes = [
            {
                "id": name,
                "name": name,
                "type": "http",
                "from": url,
                "description": "",
                "logo_url": "",
            }
            for name, url in self.deployment.route_urls.items()
            if self.deployment.is_allowed(name, principal.user)
        ]
        return json_response(200, {"routes": routes})
