"""The Pomerium token: an opaque bearer secret with unverified hints."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

# 9999-12-31T23:59:59Z, the last second datetime can represent.
_MAX_TIMESTAMP = 253402300799


def get_unverified_claims(value: str) -> dict[str, Any]:
    """Decode the token's claims without checking its signature.

    Pomerium signs the token with its own shared secret, so a client cannot
    verify it. The claims serve as display hints only; liveness is decided by
    Pomerium's responses. Returns an empty dict for a value that is not a JWT.
    """
    # pyjwt pulls in cryptography when it is installed; importing it here
    # keeps `import pomerium_jupyter` cheap.
    import jwt

    try:
        claims = jwt.decode(
            value,
            options={"verify_signature": False, "verify_exp": False},
            algorithms=["HS256", "ES256", "RS256"],
        )
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


class Token:
    """A Pomerium token and what is known about it.

    The raw value is available as `value` and never appears in `repr`, `str`,
    comparisons' output or pickles of error messages. `expires_at` comes from
    an unverified `exp` claim when present: Pomerium >= 0.17 sends none, and
    0.32.0-0.32.5 may send one that has already passed, so it is a hint only.
    """

    __slots__ = ("_value", "claims", "obtained_at", "source")

    def __init__(
        self,
        value: str,
        *,
        obtained_at: float | None = None,
        source: str = "browser",
    ) -> None:
        value = value.strip()
        if not value:
            raise ValueError("A Pomerium token cannot be empty.")
        self._value = value
        self.claims: Mapping[str, Any] = get_unverified_claims(value)
        self.obtained_at = time.time() if obtained_at is None else obtained_at
        self.source = source

    @property
    def value(self) -> str:
        """The raw token, for the Authorization header. Treat it as a password."""
        return self._value

    @property
    def user(self) -> str | None:
        """The user id or e-mail claimed by the token, if any."""
        for name in ("email", "user", "sub"):
            claim = self.claims.get(name)
            if isinstance(claim, str) and claim:
                return claim
        return None

    @property
    def issuer(self) -> str | None:
        claim = self.claims.get("iss")
        return claim if isinstance(claim, str) else None

    @property
    def session_id(self) -> str | None:
        claim = self.claims.get("jti")
        return claim if isinstance(claim, str) else None

    @property
    def expires_at(self) -> float | None:
        """The unverified `exp` claim in Unix seconds, or None when absent."""
        claim = self.claims.get("exp")
        if not isinstance(claim, (int, float)) or isinstance(claim, bool):
            return None
        # Values past 9999-12-31 or not finite would make time.ctime() and
        # datetime.fromtimestamp() raise, so they count as absent.
        if not 0 <= claim <= _MAX_TIMESTAMP:
            return None
        return float(claim)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Token):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return (
            f"<Token user={self.user!r} issuer={self.issuer!r} "
            f"source={self.source!r} obtained_at={self.obtained_at:.0f}>"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(
            "Pomerium tokens are not picklable; store them with TokenStore."
        )
