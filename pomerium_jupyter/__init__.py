"""Sign in to Pomerium-protected services from Python and Jupyter.

Example::

    >>> import pomerium_jupyter
    >>> with pomerium_jupyter.client("https://app.example.com") as client:
    ...     items = client.get("/api/items").json()
"""

from __future__ import annotations

from typing import Any

from ._auth import (
    PomeriumAuth,
    async_client,
    client,
    is_interactive,
    service_account_token,
)
from ._errors import (
    CallbackError,
    LoginError,
    LoginRequired,
    LoginTimeout,
    NotAPomeriumRoute,
    PomeriumError,
    PomeriumUnreachable,
    RedirectNotAllowed,
    RequestNotReplayable,
    TokenRejected,
)
from ._login import LoginMethod, LoopbackLogin, PasteBackLogin, SignIn
from ._store import FileTokenStore, MemoryTokenStore, StoredEntry, TokenStore
from ._token import Token

__version__ = "0.1.0"

__all__ = [
    "CallbackError",
    "FileTokenStore",
    "LoginError",
    "LoginMethod",
    "LoginRequired",
    "LoginTimeout",
    "LoopbackLogin",
    "MemoryTokenStore",
    "NotAPomeriumRoute",
    "PasteBackLogin",
    "PomeriumAuth",
    "PomeriumError",
    "PomeriumUnreachable",
    "RedirectNotAllowed",
    "RequestNotReplayable",
    "SignIn",
    "StoredEntry",
    "Token",
    "TokenRejected",
    "TokenStore",
    "__version__",
    "async_client",
    "client",
    "is_interactive",
    "service_account_token",
]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "pomerium-jupyter-labextension"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server import PomeriumExtension

    return [{"module": "pomerium_jupyter.server", "app": PomeriumExtension}]


def load_ipython_extension(ipython: Any) -> None:
    from .kernel import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .kernel import unload_ipython_extension as unload

    unload(ipython)
