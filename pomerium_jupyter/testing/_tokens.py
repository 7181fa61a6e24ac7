"""Session table, service accounts and HS256 session tokens."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from ._state import Behaviour, Clock


@dataclass
class Session:
    """A databroker session record; its id is the token's jti."""

    id: str
    user: str
    idp_id: str
    created_at: float
    expires_at: float
    record_version: int


@dataclass
class ServiceAccount:
    id: str
    user: str
    expires_at: float | None


@dataclass(frozen=True)
class Principal:
    """The identity behind a valid token."""

    user: str
    session_id: str
    is_service_account: bool = False

    @property
    def email(self) -> str:
        return f"{self.user}@example.com"


class SessionStore:
    """Server-side state that decides whether a presented token is alive."""

    def __init__(
        self,
        *,
        secret: bytes,
        idp_id: str,
        behaviour: Behaviour,
        clock: Clock,
        session_lifetime: float,
    ) -> None:
        self._secret = secret
        self._idp_id = idp_id
        self._behaviour = behaviour
        self._clock = clock
        self._lifetime = session_lifetime
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._service_accounts: dict[str, ServiceAccount] = {}
        self._record_version = 0
        self.server_version = secrets.randbits(63)

    def create_session(self, user: str) -> Session:
        now = self._clock.now()
        with self._lock:
            self._record_version += 1
            session = Session(
                id=secrets.token_hex(16),
                user=user,
                idp_id=self._idp_id,
                created_at=now,
                expires_at=now + self._lifetime,
                record_version=self._record_version,
            )
            self._sessions[session.id] = session
        return session

    def live_session(self, session_id: str) -> Session | None:
        now = self._clock.now()
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or now >= session.expires_at:
            return None
        return session

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
            self._service_accounts.pop(session_id, None)

    def delete_user(self, user: str) -> None:
        with self._lock:
            for session_id in [
                key for key, value in self._sessions.items() if value.user == user
            ]:
                del self._sessions[session_id]

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()

    def mint_session_token(
        self, session: Session, *, issuer: str, audience: Sequence[str]
    ) -> str:
        """Sign a token for `session` with the claims of the emulated version."""
        now = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": list(audience),
            "sub": session.user,
            "iat": now,
            "jti": session.id,
            "databroker_server_version": self.server_version,
            "databroker_record_version": session.record_version,
        }
        if self._behaviour.legacy_claims:
            # v0.13 to v0.16 (internal/sessions/state.go): the login time plus
            # cookie_expire, and no IdP id.
            claims["exp"] = int(session.expires_at)
            claims["nbf"] = int(session.created_at)
            # NOTE: the exact value of "ver" in those releases is not confirmed.
            claims["ver"] = "v1"
            claims["programmatic"] = True
        else:
            claims["idp_id"] = session.idp_id
        if self._behaviour.stale_expiry:
            # v0.32.0 to v0.32.5 copied exp and nbf from an old IdP ID token.
            claims["nbf"] = now - 3660
            claims["exp"] = now - 60
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def mint_service_account(self, user: str, expires_in: float | None) -> str:
        """Sign a service-account token as `pkg/cryptutil/service_account.go` does."""
        now = self._clock.now()
        account = ServiceAccount(
            id=secrets.token_hex(16),
            user=user,
            expires_at=None if expires_in is None else now + expires_in,
        )
        with self._lock:
            self._service_accounts[account.id] = account
        claims: dict[str, Any] = {
            "jti": account.id,
            "sub": user,
            "iat": int(now),
            "nbf": int(now),
        }
        if account.expires_at is not None:
            claims["exp"] = int(account.expires_at)
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def decode(self, token: str) -> dict[str, Any] | None:
        """Return the claims of a token signed with the shared secret, else None."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError:
            return None
        return claims

    def authenticate(self, token: str) -> Principal | None:
        """Return who `token` belongs to, or None when it grants no session."""
        claims = self.decode(token)
        if claims is None or not isinstance(claims.get("jti"), str):
            return None
        if "idp_id" in claims and claims["idp_id"] != self._idp_id:
            # Handles from another identity provider are ignored
            # (ReadSessionHandleAndCheckIDP in config/session.go).
            return None
        now = self._clock.now()
        if self._behaviour.legacy_claims:
            # Before v0.17 the token's own exp and nbf were enforced.
            expiry = claims.get("exp")
            not_before = claims.get("nbf")
            if isinstance(expiry, int | float) and now >= expiry:
                return None
            if isinstance(not_before, int | float) and now < not_before:
                return None
        session = self.live_session(claims["jti"])
        if session is not None:
            return Principal(user=session.user, session_id=session.id)
        with self._lock:
            account = self._service_accounts.get(claims["jti"])
        if account is None:
            return None
        if account.expires_at is not None and now >= account.expires_at:
            return None
        return Principal(
            user=account.user, session_id=account.id, is_service_account=True
        )
