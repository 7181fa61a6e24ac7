"""Origins of the running test servers, so ScriptedBrowser can tell them apart."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

_lock = threading.Lock()
_origins: dict[str, int] = {}


def origin_of(url: str) -> str:
    """Return scheme://host:port in lowercase, with the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def register(urls: Iterable[str]) -> None:
    with _lock:
        for url in urls:
            key = origin_of(url)
            _origins[key] = _origins.get(key, 0) + 1


def unregister(urls: Iterable[str]) -> None:
    with _lock:
        for url in urls:
            key = origin_of(url)
            remaining = _origins.get(key, 0) - 1
            if remaining > 0:
                _origins[key] = remaining
            else:
                _origins.pop(key, None)


def is_test_server(url: str) -> bool:
    with _lock:
        return origin_of(url) in _origins
