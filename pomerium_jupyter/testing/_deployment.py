"""State shared by the authenticate origin and every route origin."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import urlsplit

from ._signing import encode_query, sign_url
from ._state import Behaviour, Clock
from ._tokens import SessionStore

ROUTE_COOKIE = "_pomerium"
# Pomerium names the authenticate-host cookie like the route cookie, but cookies
# ignore ports, so all origins of this server on one host would see each
# other's cookies under a shared name.
AUTHENTICATE_COOKIE = "_pomerium_authenticate"
# Lifetime of an authorization code issued by the fake identity provider.
AUTHORIZATION_CODE_LIFETIME = 60.0


@dataclass
class Deployment:
    behaviour: Behaviour
    clock: Clock
    store: SessionStore
    secret: bytes
    idp_id: str
    users: Mapping[str, str]
    policy: Mapping[str, Collection[str]] | None
    allow_list: tuple[str, ...] | None
    session_lifetime: float
    sign_in_coop: bool
    scheme: str
    authenticate_url: str = ""
    route_urls: dict[str, str] = field(default_factory=dict)
    login_api_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _codes: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def authenticate_host(self) -> str:
        return urlsplit(self.authenticate_url).netloc

    def count_login(self) -> None:
        with self._lock:
            self.login_api_calls += 1

    def is_allowed(self, route: str, user: str) -> bool:
        if self.policy is None:
            return True
        return user in self.policy.get(route, ())

    def sign_in_url(self, pairs: list[tuple[str, str]]) -> str:
        """Build a signed authenticate /.pomerium/sign_in URL with `pairs`."""
        unsigned = f"{self.authenticate_url}/.pomerium/sign_in?{encode_query(pairs)}"
        return sign_url(self.secret, unsigned, self.clock.now())

    def issue_code(self, user: str) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = (user, self.clock.now() + AUTHORIZATION_CODE_LIFETIME)
        return code

    def redeem_code(self, code: str) -> str | None:
        """Return the user of a one-time authorization code, or None."""
        with self._lock:
            entry = self._codes.pop(code, None)
        if entry is None or self.clock.now() > entry[1]:
            return None
        return entry[0]

    def cookie(self, name: str, value: str) -> str:
        # Expires uses the real wall clock because browsers compare against it.
        expires = formatdate(time.time() + self.session_lifetime, usegmt=True)
        attributes = f"{name}={value}; Path=/; Expires={expires}; HttpOnly"
        if self.scheme == "https":
            attributes += "; Secure"
        return attributes + "; SameSite=Lax"

    def expired_cookie(self, name: str) -> str:
        return (
            f"{name}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; "
            "HttpOnly; SameSite=Lax"
        )


def read_cookie(header_values: list[str], name: str) -> str | None:
    """Return the first non-empty cookie `name` from Cookie header values."""
    for header in header_values:
        for item in header.split(";"):
            key, separator, value = item.strip().partition("=")
            if separator and key == name and value:
                return value.strip('"')
    return None
