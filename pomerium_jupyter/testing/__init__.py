"""A local Pomerium stand-in for tests: servers, a scripted browser, fixtures.

Names are imported on first use, so that loading the pytest plugin in
`fixtures` stays cheap for projects that never start a server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._browser import ScriptedBrowser
    from ._cli import main
    from ._pomerium import PomeriumTestServer, RecordedRequest
    from ._recording import RecordingServer

__all__ = [
    "PomeriumTestServer",
    "RecordedRequest",
    "RecordingServer",
    "ScriptedBrowser",
    "main",
]

_MODULES = {
    "PomeriumTestServer": "._pomerium",
    "RecordedRequest": "._pomerium",
    "RecordingServer": "._recording",
    "ScriptedBrowser": "._browser",
    "main": "._cli",
}


def __getattr__(name: str) -> Any:
    module_name = _MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
