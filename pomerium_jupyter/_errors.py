"""Exceptions raised by pomerium_jupyter.

Every message states what failed, on which value, and what to do next. No message,
repr or traceback argument ever contains a token.

    PomeriumError
    ├── LoginRequired            no live token and nobody to sign in
    ├── TokenRejected            Pomerium refused a token fresh from sign-in
    ├── RequestNotReplayable     the request body cannot be sent a second time
    └── LoginError               a sign-in attempt failed
        ├── RedirectNotAllowed   login API answered 400 for the callback URL
        ├── NotAPomeriumRoute    the URL does not behave like a Pomerium route
        ├── PomeriumUnreachable  connection, timeout or TLS failure
        ├── CallbackError        the callback had a wrong state or no token
        └── LoginTimeout         nobody finished the sign-in in time
"""

from __future__ import annotations


class PomeriumError(Exception):
    """Base class of every error raised by pomerium_jupyter."""


class LoginRequired(PomeriumError):
    """No live token is available and this run cannot ask a human to sign in."""

    def __init__(self, route_url: str, reason: str = "") -> None:
        self.route_url = route_url
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"Sign-in to {route_url} is required{detail}, but this run is "
            "non-interactive. Run `jupyter pomerium login "
            f"{route_url}` in a terminal, or set POMERIUM_JUPYTER_TOKEN or "
            "POMERIUM_JUPYTER_TOKEN_FILE to a service-account token."
        )


class TokenRejected(PomeriumError):
    """Pomerium rejected a token that was just obtained or configured."""

    def __init__(self, route_url: str, source: str) -> None:
        self.route_url = route_url
        self.source = source
        if source == "service account":
            hint = (
                "The service-account token is invalid or expired; ask the "
                "Pomerium admin for a new one."
            )
        else:
            hint = (
                "The route may use another identity provider than the one "
                "you signed in with; check the route's idp settings, or run "
                f"`jupyter pomerium logout {route_url}` and sign in again."
            )
        super().__init__(
            f"Pomerium rejected the token from {source} for {route_url} "
            f"right after it was obtained. {hint}"
        )


class RequestNotReplayable(PomeriumError):
    """The token died mid-request and the request body was a one-shot stream."""

    def __init__(self, method: str, url: str) -> None:
        super().__init__(
            f"The Pomerium token expired while sending {method} {url}; the "
            "sign-in was renewed, but the request body is a stream that "
            "cannot be sent again. Send the body as bytes (content=...), or "
            "repeat the request now that the token is fresh."
        )


class LoginError(PomeriumError):
    """A sign-in attempt failed."""


class RedirectNotAllowed(LoginError):
    """Pomerium's login API rejected the callback URL with 400."""

    def __init__(self, route_url: str, callback_url: str, host: str) -> None:
        self.route_url = route_url
        self.host = host
        super().__init__(
            f"Pomerium at {route_url} rejected the callback URL with 400: the "
            f"host {host!r} is not in its programmatic_redirect_domain_whitelist "
            "(the default allows loopback hosts only). Ask the Pomerium admin "
            f"to add this line to the list:\n  - {host}\n"
            f"Callback URL: {callback_url}"
        )


class NotAPomeriumRoute(LoginError):
    """The login API responded in a way Pomerium never does."""

    def __init__(self, route_url: str, detail: str) -> None:
        self.route_url = route_url
        super().__init__(
            f"{route_url} does not look like a Pomerium route: {detail}. "
            "Check the URL: it must be the address of an application behind "
            "Pomerium, such as https://app.example.com."
        )


class PomeriumUnreachable(LoginError):
    """The route could not be reached (DNS, connection, timeout or TLS)."""

    def __init__(self, route_url: str, detail: str, *, tls: bool = False) -> None:
        self.route_url = route_url
        if tls:
            hint = (
                "If the deployment uses a private certificate authority, pass "
                "its bundle with ca_file=... (or --ca-file), or set "
                "SSL_CERT_FILE; verify=False turns checking off for testing."
            )
        else:
            hint = "Check the URL, your network, and any HTTPS_PROXY setting."
        super().__init__(f"Could not reach {route_url}: {detail}. {hint}")


class CallbackError(LoginError):
    """A callback URL did not carry the expected state or a token."""


class LoginTimeout(LoginError):
    """The browser sign-in did not finish in time."""

    def __init__(self, route_url: str, seconds: float) -> None:
        self.route_url = route_url
        super().__init__(
            f"Sign-in to {route_url} did not finish within {seconds:.0f} s; "
            "Pomerium's sign-in URL expires after about 6 minutes. Start the "
            "sign-in again."
        )
