"""A fake OpenID Connect identity provider with a username/password form."""

from __future__ import annotations

import hmac
import html
from urllib.parse import parse_qsl

from ._deployment import Deployment
from ._http import Request, Response
from ._responses import html_page, http_error, redirect
from ._signing import encode_query, make_state

_FORM = """<h1>Sign in to the test identity provider</h1>
{error}<form method="post" action="{action}">
<input type="hidden" name="state" value="{state}">
<p><label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="{username}"></p>
<p><label for="password">Password</label>
<input id="password" name="password" type="password"
 autocomplete="current-password"></p>
<p><button id="sign-in" type="submit" name="action" value="sign-in">Sign in</button>
<button id="deny" type="submit" name="action" value="deny">Deny access</button></p>
</form>"""


class IdentityProvider:
    """Serves the sign-in form under PREFIX on the authenticate origin."""

    PREFIX = "/idp/"
    AUTHORIZE_PATH = "/idp/authorize"

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    @property
    def callback_url(self) -> str:
        return f"{self.deployment.authenticate_url}/oauth2/callback"

    def authorization_redirect(self, return_to: str) -> Response:
        """Redirect to the login form; `return_to` is sealed into the OAuth state."""
        deployment = self.deployment
        state = make_state(deployment.secret, return_to, deployment.clock.now())
        query = encode_query(
            [
                ("client_id", "pomerium"),
                ("redirect_uri", self.callback_url),
                ("response_type", "code"),
                ("scope", "openid email profile"),
                ("state", state),
            ]
        )
        return redirect(f"{deployment.authenticate_url}{self.AUTHORIZE_PATH}?{query}")

    def handle(self, request: Request) -> Response:
        if request.path != self.AUTHORIZE_PATH:
            return http_error(404, request, self.deployment.behaviour)
        if request.method == "GET":
            state = request.query_value("state")
            if not state:
                return http_error(
                    400, request, self.deployment.behaviour, "missing state"
                )
            return self._form(state, username="", error="")
        if request.method != "POST":
            return Response(405, b"Method Not Allowed\n", [("Allow", "GET, POST")])
        form = dict(
            parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        )
        state = form.get("state", "")
        if not state:
            return http_error(400, request, self.deployment.behaviour, "missing state")
        if form.get("action") == "deny":
            query = encode_query([("error", "access_denied"), ("state", state)])
            return redirect(f"{self.callback_url}?{query}")
        username = form.get("username", "")
        expected = self.deployment.users.get(username)
        password = form.get("password", "")
        if expected is None or not hmac.compare_digest(
            expected.encode(), password.encode()
        ):
            return self._form(
                state, username=username, error="Invalid username or password."
            )
        code = self.deployment.issue_code(username)
        query = encode_query([("code", code), ("state", state)])
        return redirect(f"{self.callback_url}?{query}")

    def _form(self, state: str, *, username: str, error: str) -> Response:
        error_html = (
            f'<p id="error" role="alert">{html.escape(error)}</p>\n' if error else ""
        )
        body = _FORM.format(
            error=error_html,
            action=self.AUTHORIZE_PATH,
            state=html.escape(state),
            username=html.escape(username),
        )
        return Response(
            200,
            html_page("Sign in", body),
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
            ],
        )
