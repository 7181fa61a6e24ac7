"""Request handlers of the Pomerium server extension.

Every handler states its authentication rule with a decorator, so the
extension works with `ServerApp.allow_unauthenticated_access = False`. Only the
callback page is public, and it performs no action itself.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from .._errors import PomeriumError
from .._protocol import (
    TOKEN_PARAM,
    arequest_sign_in_url,
    deployment_key,
    origin_of,
    origin_or_text,
    with_query,
)
from .._store import TokenStore
from .._token import Token
from .flows import REQUEST_ID_PATTERN, Flow, FlowRegistry, FlowRejected
from .pages import callback_page, page_security_policy, start_error_page

if TYPE_CHECKING:
    from .app import PomeriumExtension

# The authorizer receives this resource name, so deployments with a custom
# Authorizer can grant or deny Pomerium sign-in separately from other actions.
AUTH_RESOURCE = "pomerium"
# Pomerium tokens are a few hundred bytes, so anything much larger is not one.
MAX_TOKEN_LENGTH = 16384

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _authorized_write(method: _Method) -> _Method:
    """Authorize a GET that changes state as a "write" action."""
    decorated: _Method = authorized("write")(method)
    return decorated


class _PomeriumMixin(ExtensionHandlerMixin):
    """Access to the extension's configuration, flows and token store."""

    auth_resource = AUTH_RESOURCE

    @property
    def pomerium(self) -> PomeriumExtension:
        return cast("PomeriumExtension", self.extensionapp)

    @property
    def flows(self) -> FlowRegistry:
        return self.pomerium.flows

    @property
    def store(self) -> TokenStore:
        return self.pomerium.store


def _username(handler: JupyterHandler) -> str:
    user = handler.current_user
    return str(user.username)


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no infinity or NaN, and an unverified exp claim can decode to
    # either, so such a value is reported as unknown.
    return value if value is not None and math.isfinite(value) else None


def _status_document(extension: PomeriumExtension) -> dict[str, Any]:
    deployments = [
        {
            "deployment": entry.deployment,
            "user": entry.token.user,
            "obtained_at": _finite_or_none(entry.token.obtained_at),
            "expires_at": _finite_or_none(entry.token.expires_at),
            "routes": list(entry.routes),
        }
        for entry in extension.store.entries()
    ]
    allowed = extension.allowed_route_origins()
    return {
        "deployments": deployments,
        "allowed_routes": list(allowed) if allowed else None,
    }


class _PopupPage(JupyterHandler):
    """A page opened in the sign-in popup: private, uncached and unframeable."""

    def compute_etag(self) -> None:
        # Each response has its own nonce and must not be cached anyway.
        return None

    def _send_page(self, render: Any, *args: Any, status: int = 200) -> None:
        nonce = secrets.token_urlsafe(18)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Content-Security-Policy", page_security_policy(nonce))
        self.finish(render(*args, nonce))


class StartHandler(_PomeriumMixin, _PopupPage):
    """Start a flow and redirect the popup to Pomerium's sign-in page."""

    @web.authenticated
    @_authorized_write
    async def get(self) -> None:
        # GET is exempt from tornado's XSRF check, but this GET creates a flow
        # and calls the login API, so the widget sends the _xsrf argument.
        # tornado's own check is called directly because jupyter_server accepts
        # a same-origin Referer instead on GET, and JupyterHub's single-user
        # server skips the check for navigations such as this popup. A request
        # authenticated by a token header cannot be forged by another site.
        if not self.token_authenticated:
            web.RequestHandler.check_xsrf_cookie(self)
        owner = _username(self)
        request_id = self.get_query_argument("request", "")
        if not REQUEST_ID_PATTERN.fullmatch(request_id):
            self._fail(
                None,
                "The sign-in request has a missing or invalid request id; reload "
                "the notebook page and click the sign-in button again.",
                status=400,
            )
            return
        route = self.get_query_argument("route", "")
        flow = self.flows.create(owner, route, request_id)
        server_owner = self.pomerium.server_owner
        if server_owner is not None and owner != server_owner:
            self._fail(
                flow,
                f"This Jupyter server belongs to {server_owner}, and tokens "
                f"obtained on it are stored for {server_owner}, so only that "
                "user can sign in to Pomerium here. Sign in from a notebook on "
                "your own server.",
            )
            return
        try:
            route_origin = origin_of(route)
        except ValueError as exc:
            self._fail(flow, str(exc))
            return
        if not self.pomerium.is_route_allowed(route_origin):
            self._fail(
                flow,
                f"Signing in to {route_origin} is not allowed on this Jupyter "
                "server. Ask its administrator to add the route to "
                "PomeriumExtension.allowed_routes.",
            )
            return
        try:
            callback = self._callback_url(flow)
        except ValueError as exc:
            self._fail(flow, str(exc))
            return

        try:
            verify = self.pomerium.verify_setting()
            async with httpx.AsyncClient(verify=verify) as client:
                sign_in_url = await arequest_sign_in_url(client, route, callback)
        except PomeriumError as exc:
            self._fail(flow, str(exc))
            return
        # The flow may have been replaced or pruned during the login API request.
        if self.flows.for_request(owner, request_id) is not flow:
            self._fail(
                None,
                "This sign-in was replaced by a newer one; use the newest "
                "sign-in window.",
                status=409,
            )
            return
        flow.sign_in_url = sign_in_url
        self.redirect(sign_in_url)

    def _callback_url(self, flow: Flow) -> str:
        configured = self.pomerium.callback_url
        if configured:
            return with_query(configured, flow=flow.id)
        origin = self.get_query_argument("origin", "") or (
            f"{self.request.protocol}://{self.request.host}"
        )
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise ValueError(
                f"The browser origin {origin!r} is not a valid http(s) origin; "
                "reload the notebook page and try again."
            )
        if not self.pomerium.is_callback_host_allowed(parts, self.request.host):
            raise ValueError(
                f"The browser origin {parts.scheme}://{parts.netloc} does not "
                f"match the address of this Jupyter server ({self.request.host}). "
                "If Jupyter is reached through a proxy, set "
                "PomeriumExtension.callback_url or add the host to "
                "PomeriumExtension.callback_hosts."
            )
        path = url_path_join(self.base_url, "pomerium/callback")
        return f"{parts.scheme}://{parts.netloc}{path}?flow={flow.id}"

    def _fail(self, flow: Flow | None, message: str, status: int = 200) -> None:
        if flow is not None:
            self.flows.fail(flow, message)
        route = self.get_query_argument("route", "")
        self.log.warning(
            "Pomerium sign-in for Jupyter user %s to %s failed: %s",
            _username(self),
            origin_or_text(route),
            message,
        )
        self._send_page(start_error_page, message, status=status)


class CallbackHandler(_PomeriumMixin, _PopupPage):
    """Serve the static page that completes a flow from the browser.

    The token is in this request's query string, but the handler never reads
    it: the page's script sends it to `CompleteHandler` with a same-origin
    POST, which requires the Jupyter login and the XSRF token.
    """

    @allow_unauthenticated
    def get(self) -> None:
        self._scrub_request_uri()
        self._send_page(callback_page)

    def _scrub_request_uri(self) -> None:
        # The access log is written after the response from `request.uri`.
        # jupyter_server scrubs the token parameter through its own log
        # function, but the JupyterHub single-user server (6.1) installs its
        # own, whose list of scrubbed keys does not match pomerium_jwt. Masking
        # the value here keeps it out of any log function.
        request = self.request
        if TOKEN_PARAM not in request.query_arguments:
            return
        pairs = [
            (key, "[secret]" if key == TOKEN_PARAM else value)
            for key, value in parse_qsl(request.query, keep_blank_values=True)
        ]
        request.query = urlencode(pairs, safe="[]")
        request.uri = f"{request.path}?{request.query}"
        request.query_arguments.pop(TOKEN_PARAM, None)
        request.arguments.pop(TOKEN_PARAM, None)


class _PomeriumAPIHandler(_PomeriumMixin, APIHandler):
    def write_json(self, status: int, document: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(document))


class CompleteHandler(_PomeriumAPIHandler):
    """Complete a flow with the token from the callback page and store it."""

    @web.authenticated
    @authorized
    def post(self, flow_id: str) -> None:
        owner = _username(self)
        try:
            flow = self.flows.claim(flow_id, owner)
            token = self._read_token()
        except FlowRejected as rejected:
            self._reject(owner, rejected)
            return

        deployment = deployment_key(flow.route, flow.sign_in_url or "")
        try:
            self.store.put(deployment, token)
            self.store.remember_route(origin_of(flow.route), deployment)
        except OSError as exc:
            self.log.error(
                "Could not store the Pomerium token for deployment %s (Jupyter "
                "user %s): %s",
                deployment,
                owner,
                exc,
            )
            self.write_json(
                500,
                {
                    "status": "error",
                    "reason": "store",
                    "message": "The Jupyter server could not save the token "
                    f"({exc.strerror or type(exc).__name__}). Check the token "
                    "cache directory, then start the sign-in again.",
                    "request": flow.request,
                },
            )
            return

        self.flows.finish(flow, token.user, deployment)
        self.log.info(
            "Pomerium sign-in completed: %s is signed in to deployment %s "
            "(Jupyter user %s).",
            token.user or "an unnamed user",
            deployment,
            owner,
        )
        self.write_json(
            200,
            {
                "status": "done",
                "user": token.user,
                "deployment": deployment,
                "request": flow.request,
            },
        )

    def _read_token(self) -> Token:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        value = body.get("token") if isinstance(body, dict) else None
        if (
            not isinstance(value, str)
            or not value.strip()
            or len(value) > MAX_TOKEN_LENGTH
            or any(c.isspace() for c in value.strip())
        ):
            raise FlowRejected(
                400,
                "no-token",
                "The sign-in result did not contain a Pomerium token. Start "
                "the sign-in again from the notebook.",
            )
        return Token(value, source="browser")

    def _reject(self, owner: str, rejected: FlowRejected) -> None:
        self.log.warning(
            "Rejected a Pomerium sign-in completion for Jupyter user %s from %s: %s",
            owner,
            self.request.remote_ip,
            rejected.reason,
        )
        # Only the flow's owner learns which notebook request it belonged to.
        flow = rejected.flow
        request = flow.request if flow is not None and flow.owner == owner else None
        self.write_json(
            rejected.status_code,
            {
                "status": "error",
                "reason": rejected.reason,
                "message": rejected.message,
                "request": request,
            },
        )


class RequestStateHandler(_PomeriumAPIHandler):
    """Report the state of the flow a widget started with a client request id."""

    @web.authenticated
    @authorized
    def get(self, request_id: str) -> None:
        flow = self.flows.for_request(_username(self), request_id)
        if flow is None:
            self.write_json(
                404,
                {
                    "status": "error",
                    "reason": "unknown",
                    "message": "No sign-in with this request id is known to the "
                    "Jupyter server.",
                },
            )
            return
        status = self.flows.status_of(flow)
        message = flow.message
        if status == "expired":
            message = (
                "The sign-in expired before it finished. Click the sign-in "
                "button to start again."
            )
        self.write_json(
            200,
            {
                "status": status,
                "message": message,
                "user": flow.user,
                "deployment": flow.deployment,
                "expires_in": round(self.flows.expires_in(flow)),
            },
        )


class StatusHandler(_PomeriumAPIHandler):
    """List the signed-in deployments without their tokens."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.write_json(200, _status_document(self.pomerium))


class LogoutHandler(_PomeriumAPIHandler):
    """Remove the stored token of one route's deployment, or all tokens."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.write_json(
                400,
                {
                    "status": "error",
                    "message": 'The request body must be a JSON object: {"route": '
                    "<route URL>} or {} to sign out everywhere.",
                },
            )
            return
        route = body.get("route")
        owner = _username(self)
        if route is None:
            self.store.clear()
            self.log.info("Removed all Pomerium tokens (Jupyter user %s).", owner)
            self.write_json(200, _status_document(self.pomerium))
            return
        try:
            route_origin = origin_of(str(route))
        except ValueError as exc:
            self.write_json(400, {"status": "error", "message": str(exc)})
            return
        deployment = self.store.deployment_for(route_origin)
        # Discovery sends a request to the route, which allowed_routes forbids
        # for other routes. A route the store already recorded is still found
        # above, so only a deployment it never saw through this route is left.
        if deployment is None and self.pomerium.is_route_allowed(route_origin):
            deployment = await self._discover_deployment(str(route))
        if deployment is not None and self.store.delete(deployment):
            self.log.info(
                "Removed the Pomerium token of deployment %s (Jupyter user %s).",
                deployment,
                owner,
            )
        self.write_json(200, _status_document(self.pomerium))

    async def _discover_deployment(self, route: str) -> str | None:
        """Find the deployment of a route this store has not seen yet.

        A token obtained through one route is valid on every route of its
        deployment, so signing out of a new route must find that deployment.
        The login API call uses the callback a sign-in from here would use.
        """
        callback = self.pomerium.callback_url or (
            f"{self.request.protocol}://{self.request.host}"
            f"{url_path_join(self.base_url, 'pomerium/callback')}"
        )
        try:
            verify = self.pomerium.verify_setting()
            async with httpx.AsyncClient(verify=verify) as client:
                sign_in_url = await arequest_sign_in_url(client, route, callback)
        except PomeriumError as exc:
            self.log.warning(
                "Could not find the Pomerium deployment of %s to sign out: %s",
                origin_or_text(route),
                exc,
            )
            return None
        return deployment_key(route, sign_in_url)
