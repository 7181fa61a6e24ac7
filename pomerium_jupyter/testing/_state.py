"""Deployment-wide settings, version behaviour and the adjustable clock."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

_VERSION_PATTERN = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class Behaviour:
    """Version-dependent behaviour of the emulated Pomerium release."""

    version: tuple[int, int, int]

    @classmethod
    def parse(cls, text: str) -> Behaviour:
        match = _VERSION_PATTERN.match(text.strip())
        if match is None:
            raise ValueError(
                f"invalid Pomerium version {text!r}: expected MAJOR.MINOR[.PATCH], "
                "for example 0.33 or 0.32.0"
            )
        major, minor, patch = (int(part) if part else 0 for part in match.groups())
        return cls((major, minor, patch))

    @property
    def label(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def always_redirect(self) -> bool:
        """Up to v0.14 every unauthenticated request gets a 302 to sign in."""
        return self.version < (0, 15, 0)

    @property
    def header_token_unauthorized(self) -> bool:
        """From v0.33 a token in a header or query yields 401, never a redirect."""
        return self.version >= (0, 33, 0)

    @property
    def legacy_claims(self) -> bool:
        """v0.13 to v0.16 tokens carry exp, nbf, ver and programmatic."""
        return self.version < (0, 17, 0)

    @property
    def stale_expiry(self) -> bool:
        """v0.32.0 to v0.32.5 tokens may carry an already-past exp and nbf."""
        return (0, 32, 0) <= self.version < (0, 32, 6)

    @property
    def pomerium_authorization_header(self) -> bool:
        """X-Pomerium-Authorization is read from v0.16."""
        return self.version >= (0, 16, 0)

    @property
    def json_denials(self) -> bool:
        """From v0.26 authorize denials use {"error", "request_id"} JSON bodies."""
        return self.version >= (0, 26, 0)

    @property
    def error_field_in_json(self) -> bool:
        """Up to v0.19 HTTPError JSON bodies also carry the message as "Error"."""
        return self.version < (0, 20, 0)

    @property
    def user_endpoint(self) -> bool:
        return self.version >= (0, 27, 0)

    @property
    def routes_endpoint(self) -> bool:
        return self.version >= (0, 29, 0)


class Clock:
    """Wall-clock time plus an offset that tests move forward with advance()."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
