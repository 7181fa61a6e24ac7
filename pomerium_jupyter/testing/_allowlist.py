"""Redirect-URI checks of the login API.

The rules follow `internal/urlutil/url.go` (`ParseAndValidateURL`) and
`internal/urlutil/whitelist.go` (`IsRedirectAllowed`, `IsLoopback`) in Pomerium.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

_FORBIDDEN_HOST_CHARACTERS = set(' \t"<>\\^`{|}')
# Characters Go's url.Parse accepts in userinfo (validUserinfo). Browsers read a
# backslash there as a path separator, so rejecting it closes an open redirect.
_USERINFO_CHARACTERS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@"
)


def parse_and_validate_url(raw: str) -> SplitResult | None:
    """Parse `raw`, or return None when it is empty, unparsable or lacks scheme/host."""
    if raw == "" or any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw):
        return None
    try:
        parts = urlsplit(raw)
        # Accessing the port validates it, as Go's url.Parse does.
        parts.port  # noqa: B018
    except ValueError:
        return None
    if parts.scheme == "" or authority_host(parts) == "":
        return None
    userinfo = parts.netloc.rpartition("@")[0]
    if not set(userinfo) <= _USERINFO_CHARACTERS:
        return None
    if _FORBIDDEN_HOST_CHARACTERS & set(authority_host(parts)):
        return None
    return parts


def authority_host(parts: SplitResult) -> str:
    """Return host[:port] of the URL without userinfo, like Go's URL.Host."""
    return parts.netloc.rpartition("@")[2]


def hostname(parts: SplitResult) -> str:
    """Return the host without port or IPv6 brackets, case preserved.

    Python's SplitResult.hostname lowercases, but Go's URL.Hostname() does not,
    and the allow list compares case-sensitively.
    """
    host = authority_host(parts)
    if host.startswith("["):
        closing = host.find("]")
        return host[1:closing] if closing != -1 else host[1:]
    name, colon, port = host.rpartition(":")
    if colon and (port == "" or port.isdigit()):
        return name
    return host


def is_loopback(parts: SplitResult) -> bool:
    host = hostname(parts)
    if host == "localhost":
        return True
    if "%" in host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_redirect_allowed(parts: SplitResult, allow_list: Sequence[str]) -> bool:
    """Apply programmatic_redirect_domain_whitelist to a parsed redirect URI."""
    if parts.scheme not in ("http", "https"):
        return False
    for entry in allow_list:
        if entry == "localhost" and is_loopback(parts):
            return True
        if hostname(parts) == entry:
            return True
    return False
