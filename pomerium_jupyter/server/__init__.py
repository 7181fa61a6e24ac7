"""Jupyter server extension: the Jupyter server as Pomerium's callback server.

Enable it with `jupyter server extension enable pomerium_jupyter`; see
`pomerium_jupyter.server.app` for the endpoints and a configuration example.
"""

from __future__ import annotations

from typing import Any

from .app import PomeriumExtension

__all__ = ["PomeriumExtension"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "pomerium_jupyter.server", "app": PomeriumExtension}]
