"""Kernel side of pomerium_jupyter: the %pomerium magic and the login widget.

Load it in a notebook or IPython with ``%load_ext pomerium_jupyter``. It
reaches the Jupyter server only through the widget's HTTP requests from the
page and through the shared token store, never by importing server code.
"""

from __future__ import annotations

from typing import Any

from ._environment import can_prompt, detect_frontend
from ._magics import PomeriumMagics
from ._methods import LinkLoopbackLogin, WidgetLogin
from ._widget import LoginWidget

__all__ = [
    "LinkLoopbackLogin",
    "LoginWidget",
    "PomeriumMagics",
    "WidgetLogin",
    "can_prompt",
    "detect_frontend",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register the %pomerium magic."""
    ipython.register_magics(PomeriumMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the %pomerium magic."""
    magics = ipython.magics_manager.magics
    magics["line"].pop("pomerium", None)
    ipython.magics_manager.registry.pop("PomeriumMagics", None)
