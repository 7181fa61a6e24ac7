"""pytest plugin with fixtures that run PomeriumTestServer instances.

Registered through the `pytest11` entry point, so it loads in every pytest run
where this package is installed. It imports nothing heavy until a fixture runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._pomerium import PomeriumTestServer


@pytest.fixture
def pomerium_server() -> Iterator[PomeriumTestServer]:
    """A running PomeriumTestServer with default settings."""
    from ._pomerium import PomeriumTestServer

    with PomeriumTestServer() as server:
        yield server


@pytest.fixture
def pomerium_server_factory() -> Iterator[Callable[..., PomeriumTestServer]]:
    """Start servers from PomeriumTestServer keyword arguments; stop all at teardown."""
    from ._pomerium import PomeriumTestServer

    servers: list[PomeriumTestServer] = []

    def start(**options: Any) -> PomeriumTestServer:
        server = PomeriumTestServer(**options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
