"""The authenticate origin: sign-in, sign-out and the OAuth callback.

Follows the stateful flow of Pomerium's `authenticate/handlers.go` and
`internal/authenticateflow/stateful.go`.
"""

from __future__ import annotations

import html
from urllib.parse import urlunsplit

from ._allowlist import authority_host, parse_and_validate_url
from ._deployment import AUTHENTICATE_COOKIE, Deployment, read_cookie
from ._http import Request, Response
from ._idp import IdentityProvider
from ._responses import html_page, http_error, ok_text, redirect, status_text
from ._signing import (
    encode_query,
    parse_query,
    read_state,
    seal,
    sign_url,
    verify_signed_url,
)
from ._tokens import Session
from ._wellknown import well_known

# cryptutil.ValidTimestamp: the OAuth state may be this many seconds old or early.
STATE_MAX_SKEW = 300.0


class AuthenticateApp:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.idp = IdentityProvider(deployment)

    def __call__(self, request: Request) -> Response:
        path = request.path
        if path in ("/healthz", "/ping"):
            return ok_text()
        if path in ("/.well-known/pomerium", "/.well-known/pomerium/"):
            return well_known(self.deployment, request.origin)
        if path == "/":
            return redirect("/.pomerium/")
        if path.startswith(IdentityProvider.PREFIX):
            return self._with_coop(self.idp.handle(request))
        if path == "/oauth2/callback":
            return self._with_coop(self._oauth_callback(request))
        if path == "/.pomerium/sign_in":
            return self._with_coop(self._sign_in(request))
        if path == "/.pomerium/sign_out":
            return self._sign_out(request)
        if path == "/.pomerium/signed_out":
            return Response(
                200,
                html_page("Signed out", "<h1>You have been signed out.</h1>"),
                [("Content-Type", "text/html; charset=UTF-8")],
            )
        if path == "/.pomerium/":
            return self._dashboard(request)
        return http_error(404, request, self.deployment.behaviour)

    def _with_coop(self, response: Response) -> Response:
        if self.deployment.sign_in_coop:
            response.set_header("Cross-Origin-Opener-Policy", "same-origin")
        return response

    def _session(self, request: Request) -> Session | None:
        """Return the live session named by the authenticate cookie, if any."""
        token = read_cookie(request.header_values("Cookie"), AUTHENTICATE_COOKIE)
        if token is None:
            return None
        claims = self.deployment.store.decode(token)
        if claims is None or not isinstance(claims.get("jti"), str):
            return None
        session = self.deployment.store.live_session(claims["jti"])
        if session is None or session.idp_id != self.deployment.idp_id:
            return None
        return session

    def _reauthenticate_or_fail(self, request: Request) -> Response:
        """Send the browser to the identity provider (reauthenticateOrFail)."""
        requested_with = request.header("X-Requested-With") or ""
        if requested_with.lower() == "xmlhttprequest":
            # A redirect would break the CORS rules of an XHR caller.
            return http_error(401, request, self.deployment.behaviour)
        return_to = self.deployment.authenticate_url + request.target
        response = self.idp.authorization_redirect(return_to)
        response.add_header(
            "Set-Cookie", self.deployment.expired_cookie(AUTHENTICATE_COOKIE)
        )
        return response

    def _sign_in(self, request: Request) -> Response:
        deployment = self.deployment
        session = self._session(request)
        if session is None:
            return self._reauthenticate_or_fail(request)
        # The signature is checked only now, after any identity-provider round
        # trip, so a slow login can outlive the URL.
        if not verify_signed_url(
            deployment.secret, request.origin + request.target, deployment.clock.now()
        ):
            return http_error(400, request, deployment.behaviour, "invalid signature")
        redirect_uri = request.query_value("pomerium_redirect_uri") or ""
        redirect_parts = parse_and_validate_url(redirect_uri)
        if redirect_parts is None:
            return http_error(400, request, deployment.behaviour, "invalid redirect")
        audience = [deployment.authenticate_host, authority_host(redirect_parts)]
        callback_raw = request.query_value("pomerium_callback_uri")
        if callback_raw:
            callback_parts = parse_and_validate_url(callback_raw)
            if callback_parts is None:
                return http_error(400, request, deployment.behaviour)
            audience.append(authority_host(callback_parts))
        else:
            callback_parts = redirect_parts._replace(
                path="/.pomerium/callback/", query="", fragment=""
            )
        token = deployment.store.mint_session_token(
            session, issuer=deployment.authenticate_host, audience=audience
        )
        pairs = [
            (key, value)
            for key, value in parse_query(callback_parts.query)
            if key not in ("pomerium_session_encrypted", "pomerium_redirect_uri")
        ]
        if request.query_value("pomerium_programmatic") == "true":
            pairs = [(k, v) for k, v in pairs if k != "pomerium_programmatic"]
            pairs.append(("pomerium_programmatic", "true"))
        pairs.append(
            ("pomerium_session_encrypted", seal(deployment.secret, token.encode()))
        )
        pairs.append(("pomerium_redirect_uri", redirect_uri))
        callback = urlunsplit(callback_parts._replace(query=encode_query(pairs)))
        return redirect(sign_url(deployment.secret, callback, deployment.clock.now()))

    def _oauth_callback(self, request: Request) -> Response:
        deployment = self.deployment
        behaviour = deployment.behaviour
        error = request.query_value("error")
        if error:
            status = 401 if error in ("access_denied", "unauthorized_client") else 400
            return http_error(status, request, behaviour, f"identity provider: {error}")
        code = request.query_value("code") or ""
        if not code:
            return http_error(
                400, request, behaviour, "identity provider returned empty code"
            )
        state = read_state(deployment.secret, request.query_value("state") or "")
        if state is None:
            return http_error(400, request, behaviour, "invalid state")
        issued, return_to = state
        if abs(deployment.clock.now() - issued) > STATE_MAX_SKEW:
            return http_error(400, request, behaviour, "The request expired.")
        user = deployment.redeem_code(code)
        if user is None:
            return http_error(400, request, behaviour, "invalid authorization code")
        session = deployment.store.create_session(user)
        cookie_token = deployment.store.mint_session_token(
            session,
            issuer=deployment.authenticate_host,
            audience=[deployment.authenticate_host],
        )
        response = redirect(return_to)
        response.add_header(
            "Set-Cookie", deployment.cookie(AUTHENTICATE_COOKIE, cookie_token)
        )
        return response

    def _sign_out(self, request: Request) -> Response:
        deployment = self.deployment
        url = request.origin + request.target
        if not verify_signed_url(deployment.secret, url, deployment.clock.now()):
            # Without a signed URL Pomerium shows a confirmation page first.
            confirm = sign_url(
                deployment.secret,
                f"{deployment.authenticate_url}/.pomerium/sign_out",
                deployment.clock.now(),
            )
            body = f'<h1>Sign out?</h1>\n<p><a href="{confirm}">Sign out</a></p>'
            return Response(
                200,
                html_page("Sign out", body),
                [("Content-Type", "text/html; charset=UTF-8")],
            )
        session = self._session(request)
        if session is not None:
            deployment.store.delete(session.id)
        target = request.query_value("pomerium_redirect_uri") or (
            f"{deployment.authenticate_url}/.pomerium/signed_out"
        )
        response = redirect(target)
        response.add_header(
            "Set-Cookie", deployment.expired_cookie(AUTHENTICATE_COOKIE)
        )
        return response

    def _dashboard(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._reauthenticate_or_fail(request)
        body = f"<h1>Signed in</h1>\n<p>User: {html.escape(session.user)}</p>"
        return Response(
            200,
            html_page(status_text(200), body),
            [("Content-Type", "text/html; charset=UTF-8")],
        )
